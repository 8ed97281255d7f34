"""The main use case, written once: a store message becomes journaled state.

    receive  the adapter authenticates and verifies the raw message (nothing is stored for a
             message it refuses)
    dedupe   a cheap journal look-up of the store's message id skips a store API call for a
             redelivery (the journal's unique message id stays the real guard)
    resolve  the adapter reads the store's truth and turns it into events; a message with
             nothing left to resolve keeps its verdict (`settled`)
    journal  one entry per message, built here and only here (`entry`): the raw message or
             request and every store API answer its events came from, read at the service
             clock's `now`, so `receiptd replay` can re-derive them
    ingest   the entry, the events and the adapter's follow-up rows in one transaction
             (EntitlementService.ingest)
    after    the adapter's follow-up after the commit (a Play acknowledgement)

Callers: the store webhooks (`notification`), app submissions (`submission`), reconciliation
(`receive` … `record` with its run position in the same transaction) and the console's and
reconciliation's re-reads (`refreshed`, `statement`).

Poison: once a webhook message is authenticated and verified, a failure to turn it into events
that no retry can cure (a translator bug, a store payload shape we do not read: any exception
that is not an outage) is journaled `rejected`, with the exception's type as the reason, so
the store does not redeliver it for days; it is logged as an error, with ids only. Outages
keep their error (the store or the database is away: the redelivery will work).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import aiohttp
import asyncpg
import structlog

from entitlements.audit import Actor
from entitlements.errors import DatabaseUnavailable, EntitlementError
from entitlements.journal import JournalEntry
from entitlements.model import Clock, Store
from entitlements.reconcile import corrections
from receipts.errors import (
    MalformedPayload,
    ProductNotOurs,
    PurchaseNotFound,
    ReceiptError,
    StoreUnavailable,
)
from receipts.port import (
    RECONCILE,
    SUBMISSION,
    SUBMISSION_FIELDS,
    Inbound,
    Reconciling,
    Resolution,
    StoreAdapter,
)
from receipts.recording import reads_document
from services.ingest import EntitlementService, IngestOutcome
from storage.database import DB_DOWN_ERRORS, TransactionWrite

log = structlog.get_logger(__name__)

FollowUp = Literal["processed", "stored", "always"]

# A store or the database away: the redelivery will work, so never poison.
OUTAGES: tuple[type[BaseException], ...] = (StoreUnavailable, DatabaseUnavailable)
# A connection cut or timed out that no store client translated: an outage as well.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (*DB_DOWN_ERRORS, aiohttp.ClientError)


@dataclass(frozen=True, slots=True)
class Source:
    """What a journal entry says about where its message came from (all but the verdict and
    the store answers, which the resolution gives)."""

    store: Store
    message_id: str
    type_name: str | None
    subtype: str | None
    stated_at: datetime | None
    purchase_id: str | None
    payload: str
    app: str | None = None

    @classmethod
    def of_inbound(cls, inbound: Inbound) -> Source:
        """A store notification, as received."""
        return cls(
            inbound.store,
            inbound.message_id,
            inbound.type_name,
            inbound.subtype,
            inbound.stated_at,
            inbound.purchase_id,
            inbound.payload,
            inbound.app,
        )

    @classmethod
    def of_submission(
        cls, store: Store, submission: Mapping[str, Any], resolution: Resolution
    ) -> Source:
        """An app submission: its store fields only. Not the submitter's id: the journal is
        about purchases, and a body naming the person would outlive an erasure once the
        purchase moved to another user."""
        body = {k: submission[k] for k in SUBMISSION_FIELDS if k in submission}
        return cls(
            store,
            f"submission:{uuid.uuid4()}",
            SUBMISSION,
            None,
            None,
            resolution.events[0].purchase_id,
            json.dumps(body, sort_keys=True),
            resolution.events[0].app,
        )

    @classmethod
    def of_statement(
        cls,
        store: Store,
        request: Mapping[str, Any],
        resolution: Resolution,
        *,
        message_id: str | None = None,
        stated_at: datetime | None = None,
    ) -> Source:
        """A store statement read with `refresh` (type RECONCILE, its request as the
        payload; a message id of its own unless the store's listing gave one)."""
        return cls(
            store,
            message_id or f"reconcile:{uuid.uuid4()}",
            RECONCILE,
            str(request.get("read")),
            stated_at,
            resolution.events[0].purchase_id,
            json.dumps(dict(request), sort_keys=True),
            resolution.events[0].app,
        )


def entry(source: Source, resolution: Resolution, now: datetime) -> JournalEntry:
    """The journal entry of a message: its source, the verdict of its processing and the
    store answers it used (read at `now`). The only builder of journal entries."""
    return JournalEntry(
        store=source.store,
        message_id=source.message_id,
        notification_type=source.type_name,
        subtype=source.subtype,
        signed_at=source.stated_at,
        purchase_id=source.purchase_id,
        result=resolution.result,
        reason=resolution.reason,
        payload=source.payload,
        reads=reads_document(now, resolution.reads),
        app=source.app or next((e.app for e in resolution.events if e.app), None),
    )


class StoreMessages:
    """Store messages → journal → state (see the module docstring)."""

    def __init__(self, service: EntitlementService, clock: Clock) -> None:
        self._service = service
        self._clock = clock

    async def notification(
        self, adapter: StoreAdapter, authorization: str | None, body: bytes, line: dict[str, Any]
    ) -> str:
        """A store's webhook delivery, start to end: its result (`processed`, `duplicate`,
        `ignored`, `rejected`). `line` collects the ids of the one canonical log line."""
        inbound = await adapter.receive(authorization, body)
        line.update(inbound.log)
        now = self._clock()
        resolution = settled(inbound)
        if resolution is None:
            if await self.seen(inbound):
                return "duplicate"
            resolution = await self._resolve_or_poison(adapter, inbound, now, line)
            line.update(resolution.log)
        outcome = await self.record(entry(Source.of_inbound(inbound), resolution, now), resolution)
        return outcome.status

    async def seen(self, inbound: Inbound) -> bool:
        """Whether the journal holds this message already (a redelivery)."""
        return await self._service.journal_seen(inbound.store, inbound.message_id)

    async def resolve(self, adapter: StoreAdapter, inbound: Inbound, now: datetime) -> Resolution:
        """The events of a received message: its verdict when it is settled, else the
        adapter's reading of the store's truth (errors propagate)."""
        return settled(inbound) or await adapter.resolve(inbound, now)

    async def _resolve_or_poison(
        self, adapter: StoreAdapter, inbound: Inbound, now: datetime, line: dict[str, Any]
    ) -> Resolution:
        """The adapter's resolution, or a `rejected` one when the message is poison."""
        try:
            return await adapter.resolve(inbound, now)
        except OUTAGES:
            raise
        except CONNECTION_ERRORS as exc:
            raise StoreUnavailable() from exc
        except MalformedPayload as exc:  # a shape we do not read: our messages never quote values
            reason = f"unreadable: {exc.message}"
        except (ReceiptError, EntitlementError):
            raise  # one of our verdicts (not found, not ours, …): its status stands
        except Exception as exc:
            reason = f"translation failed: {type(exc).__name__}"  # str(exc) may quote the payload
        log.error("store_notification_poisoned", reason=reason, **inbound.log)
        line["reason"] = reason
        return Resolution([], result="rejected", reason=reason)

    async def submission(
        self,
        adapter: StoreAdapter,
        submission: Mapping[str, Any],
        *,
        submitted_by: str,
        vouched: bool,
        actor: Actor | None = None,
    ) -> IngestOutcome:
        """An app's purchase submission, validated with the store and linked to
        `submitted_by`. It proves ownership when the store's answer does, or when the caller
        `vouched` for its user (a backend key); ProductNotOurs when the store names none."""
        now = self._clock()
        resolution = await adapter.submit(submission, now)
        if not resolution.events:
            raise ProductNotOurs("the store returned no purchase for this proof")
        source = Source.of_submission(adapter.store, submission, resolution)
        return await self.record(
            entry(source, resolution, now),
            resolution,
            submitted_by=submitted_by,
            proven=resolution.proves_holding or vouched,
            actor=actor,
            follow_up="always",
        )

    async def refreshed(
        self,
        adapter: Reconciling,
        purchase_id: str,
        environment: str | None,
        app: str | None = None,
    ) -> tuple[dict[str, Any], Resolution]:
        """The store's statement about a purchase we hold (bought in `app`, when known): the
        first of its re-read requests the store answers (PurchaseNotFound when none does)."""
        missing = PurchaseNotFound()
        for request in adapter.reread_requests(purchase_id, environment, app):
            try:
                return request, await adapter.refresh(request, self._clock())
            except PurchaseNotFound as exc:
                missing = exc
        raise missing

    async def statement(
        self, store: Store, request: Mapping[str, Any], resolution: Resolution, now: datetime
    ) -> bool:
        """A re-read's events, journaled and applied when they change what clients read.
        True when they did (False: the store says what we hold, or another got there first)."""
        if not resolution.events:
            return False
        stored = await self._service.states_of(store, resolution.events)
        if not corrections(stored, resolution.events):
            return False
        source = Source.of_statement(store, request, resolution)
        outcome = await self.record(entry(source, resolution, now), resolution, follow_up="stored")
        return outcome.status != "duplicate"

    async def record(
        self,
        journal: JournalEntry,
        resolution: Resolution,
        *,
        also: TransactionWrite | None = None,
        follow_up: FollowUp = "processed",
        **ingest: Any,
    ) -> IngestOutcome:
        """Journal and apply in one transaction (with the adapter's writes, then `also`),
        then the adapter's follow-up when `follow_up` says: after a `processed` entry (a
        webhook), after any entry `stored` now (a statement read back), or `always` (a
        submission: its acknowledgement is due whatever the journal held)."""
        outcome = await self._service.ingest(
            journal, resolution.events, also=_both(resolution.write, also), **ingest
        )
        if (
            follow_up == "always"
            or outcome.status == "processed"
            or (follow_up == "stored" and outcome.status != "duplicate")
        ):
            await resolution.after_commit()
        return outcome


def _both(first: TransactionWrite | None, then: TransactionWrite | None) -> TransactionWrite | None:
    """One transaction write doing `first`, then `then` (either may be absent)."""
    if first is None or then is None:
        return first or then
    steps = (first, then)

    async def both(conn: asyncpg.Connection) -> None:
        for step in steps:
            await step(conn)

    return both


def settled(inbound: Inbound) -> Resolution | None:
    """A message with nothing left to resolve: journaled with its verdict, no events (None
    when it is to be resolved)."""
    if inbound.settled is None:
        return None
    return Resolution([], result=inbound.settled, reason=inbound.reason)
