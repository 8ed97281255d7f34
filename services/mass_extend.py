"""`receiptd extend`: the same extension for every renewing subscription after an outage
(contract §3, "Refund requests and store actions").

    one run at a time (a session advisory lock); a run's arguments and counts live in
    `extend_runs`, and every thing it asks a store in `extend_items`, planned whole at its
    start from the renewing subscriptions held then (active or in a grace period, not
    replaced; `product` restricts), so that an interrupted run, resumed with the same
    arguments, asks no store twice for the same item; other arguments are refused until
    `restart` abandons the interrupted run
    Apple → one mass extension (Extend Subscription Renewal Dates for All Active Subscribers)
      per app, environment and product, under a request identifier kept with the item; then,
      once Play is done, Get Status of Subscription-Renewal-Date Extensions until complete
      (confirmed) or `wait` has passed (interrupted: the next run follows it). Each request is
      kept in `store_actions` (no customer; purchase_id = the product, action `mass_extend`).
      Customers' states change with Apple's RENEWAL_EXTENDED notifications, as for one
      customer's extension
    Play → one deferral per subscription token (PlayActions.extend, on a fresh etag), kept in
      `store_actions` (action `extend`) with an audit row for the customer; then the purchase
      is re-read and journaled like any statement: confirmed when its stored expiry moved by
      at least the days asked, else left requested (Google's notification confirms it later)
    an item is marked `sending` before its request: one cut off there (Ctrl-C, a crash) is
    not asked again on resume — Apple's is found by its status (asked again only when Apple
    does not know it), Play's is re-read (confirmed when it shows the deferral, else failed)
    a store that cannot answer (StoreUnavailable) interrupts the run (run again to resume);
    a refusal is the store's answer about one item and the run goes on
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg
import structlog

from entitlements.audit import AuditEntry
from entitlements.model import Clock, Store
from entitlements.replay import purchase_ref
from receipts.errors import (
    PurchaseNotFound,
    ReceiptError,
    StoreActionRefused,
    StoreRequestRejected,
)
from receipts.port import ActionOutcome, ActionTarget, Reconciling, StoreActing
from services.store_messages import StoreMessages
from services.support_actions import APPLE_MAX_DAYS, PLAY_MAX_DAYS, REASONS
from storage import customers as customers_db
from storage import extend_runs as db
from storage import store_actions as actions_db
from storage.extend_runs import AppleProduct, Item, NewItem, PlaySubscription, Run

log = structlog.get_logger(__name__)

ACTOR = "receiptd extend"  # the actor of its store_actions and audit rows
POLL_SECONDS = 10.0  # between two rounds of Apple status polls
NOT_EXTENDABLE = frozenset({"Xcode", "LocalTesting"})  # Apple environments without the API
PENDING, SENDING, REQUESTED, CONFIRMED, REFUSED, FAILED = (
    "pending",
    "sending",
    "requested",
    "confirmed",
    "refused",
    "failed",
)
STORE_NAMES = {Store.APP_STORE: "apple", Store.PLAY_STORE: "google"}


@dataclass(frozen=True, slots=True)
class Options:
    """What a run was asked: `days`, Apple's `reason` word, an optional `product`; `restart`
    abandons an interrupted run, `wait` is how long to follow Apple's work."""

    days: int
    reason: str
    product: str | None = None
    restart: bool = False
    wait: timedelta = timedelta(hours=1)

    def arguments(self) -> dict[str, Any]:
        """The options as the run stores them (JSON), to tell whether a resume was asked the
        same (`restart` and `wait` are not part of it)."""
        return {"days": self.days, "reason": self.reason, "product": self.product}


@dataclass(frozen=True, slots=True)
class Counts:
    """Items of one store: the store accepted (`requested`, `confirmed` among them: Apple's
    status complete, Play's re-read shows the deferral), refused, could not be asked
    (`failed`), and not done yet (`pending`, an interrupted run)."""

    requested: int = 0
    confirmed: int = 0
    refused: int = 0
    failed: int = 0
    pending: int = 0

    def to_json(self) -> dict[str, int]:
        """The counts as the run stores them."""
        return {
            "requested": self.requested,
            "confirmed": self.confirmed,
            "refused": self.refused,
            "failed": self.failed,
            "pending": self.pending,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """The counts of the whole run (a resumed one's too) per store asked, the subscriptions
    Apple's completed mass extensions extended and did not, and, when the run stopped before
    its end, why (run again to resume)."""

    counts: Mapping[Store, Counts]
    apple_extended: int = 0
    apple_not_extended: int = 0
    interrupted: str | None = None

    @property
    def failed(self) -> int:
        """Items that failed, all stores."""
        return sum(c.failed for c in self.counts.values())


class AlreadyRunning(Exception):
    """Another `receiptd extend` is running."""


class CannotStart(Exception):
    """The run cannot start as asked (the message says why); nothing was asked of a store."""


class Observer(Protocol):
    """Where a run reports: its progress, each item a store refused or that failed, notes."""

    def progress(self, counts: Counts, where: str, done: int | None, total: int | None) -> None:
        """After each item (counts of all stores together)."""

    def answered(self, store: Store, label: str, status: str, detail: str) -> None:
        """An item refused by its store, or failed."""

    def note(self, text: str) -> None:
        """Something the operator should know (a resumed run, products left out)."""


class MassExtending(Protocol):
    """What a run asks of the App Store Server API (server.stores.AppleMassExtensions)."""

    def for_app(self, bundle_id: str | None) -> MassExtending:
        """The client asking about `bundle_id` (None: the configured app)."""
        ...

    async def mass_extend(
        self,
        environment: str,
        *,
        product_id: str,
        days: int,
        reason: str,
        request_identifier: str,
    ) -> None:
        """Extend Subscription Renewal Dates for All Active Subscribers (`reason`: one of
        REASONS, in our words)."""
        ...

    async def mass_extend_status(
        self, environment: str, product_id: str, request_identifier: str
    ) -> dict[str, Any]:
        """Get Status of Subscription-Renewal-Date Extensions."""
        ...


class _Interrupted(Exception):
    """The run cannot go on now; the message says why."""


# --- pure pieces ---------------------------------------------------------------------------


def invalid(options: Options, *, apple: bool) -> str | None:
    """What is wrong with the arguments (None: nothing), given whether Apple is asked (Apple
    extends by 1 to 90 days, Play defers by up to 365)."""
    if options.reason not in REASONS:
        return f"--reason must be one of {', '.join(REASONS)}"
    limit = APPLE_MAX_DAYS if apple else PLAY_MAX_DAYS
    if not 1 <= options.days <= limit:
        if apple:
            return (
                f"--days must be from 1 to {limit} (Apple extends by at most 90 days; "
                "--product can pick Play products only)"
            )
        return f"--days must be from 1 to {limit}"
    return None


def apple_environment(environment: str | None) -> str:
    """The App Store Server API environment of a stored purchase's environment."""
    return "Sandbox" if environment == "Sandbox" else environment or "Production"


def plan_apple(
    products: Iterable[AppleProduct], new_id: Callable[[], str]
) -> tuple[list[NewItem], list[AppleProduct]]:
    """One mass extension per (app, environment, product), each with a request identifier of
    its own; and the products left out (environments the API does not serve: Xcode)."""
    items: dict[str, NewItem] = {}
    left_out = []
    for p in products:
        environment = apple_environment(p.environment)
        if environment in NOT_EXTENDABLE:
            left_out.append(p)
            continue
        key = f"{p.app or ''}|{environment}|{p.product_id}"
        if key not in items:
            items[key] = NewItem(
                Store.APP_STORE, key, p.app, environment, p.product_id, request_id=new_id()
            )
    return list(items.values()), left_out


def plan_play(subscriptions: Iterable[PlaySubscription], request_id: str) -> list[NewItem]:
    """One deferral per subscription token (a deferral moves every line item of it: the rows
    of add-on line items, `token|product`, are one item), oldest row first, with the latest
    stored expiry to tell later whether the deferral shows."""
    tokens: dict[str, list[PlaySubscription]] = {}
    for s in subscriptions:
        tokens.setdefault(s.purchase_id.split("|", 1)[0], []).append(s)
    items = []
    for token, rows in tokens.items():
        first = rows[0]
        expiries = [r.expires_at for r in rows if r.expires_at is not None]
        items.append(
            NewItem(
                Store.PLAY_STORE,
                token,
                first.app,
                first.environment,
                first.product_id,
                request_id=request_id,
                app_user_id=first.app_user_id,
                expires_before=max(expiries) if expiries else None,
            )
        )
    return items


def tally(statuses: Iterable[tuple[Store, str]]) -> dict[Store, Counts]:
    """The counts per store of items in these statuses (a confirmed item is requested too;
    one `sending` is not done)."""
    return counts_of(Counter(statuses))


def counts_of(seen: Mapping[tuple[Store, str], int]) -> dict[Store, Counts]:
    """`tally` of the number of items per (store, status)."""
    out: dict[Store, Counts] = {}
    for store in sorted({store for store, _ in seen}, key=lambda s: s.value):
        n = {status: seen.get((store, status), 0) for status in (*_DONE, PENDING, SENDING)}
        out[store] = Counts(
            requested=n[REQUESTED] + n[CONFIRMED],
            confirmed=n[CONFIRMED],
            refused=n[REFUSED],
            failed=n[FAILED],
            pending=n[PENDING] + n[SENDING],
        )
    return out


def total(counts: Iterable[Counts]) -> Counts:
    """The counts of several stores together."""
    c = list(counts)
    return Counts(
        requested=sum(x.requested for x in c),
        confirmed=sum(x.confirmed for x in c),
        refused=sum(x.refused for x in c),
        failed=sum(x.failed for x in c),
        pending=sum(x.pending for x in c),
    )


def deferral_shows(before: datetime | None, after: datetime | None, days: int) -> bool:
    """Whether the stored expiry after a deferral's re-read shows it: moved by at least the
    days asked (a stored expiry that was stale moved by more)."""
    if after is None:
        return False
    return before is None or after >= before + timedelta(days=days)


def summary_line(
    store: Store, counts: Counts, *, apple_extended: int = 0, apple_not_extended: int = 0
) -> str:
    """The report line of one store."""
    what = "product" if store is Store.APP_STORE else "subscription"
    items = counts.requested + counts.refused + counts.failed + counts.pending
    line = (
        f"extend {STORE_NAMES[store]}: {items} {what}{'' if items == 1 else 's'}; "
        f"requested {counts.requested}, "
        f"confirmed {counts.confirmed}, refused {counts.refused}, failed {counts.failed}"
    )
    if counts.pending:
        line += f", not done {counts.pending}"
    if store is Store.APP_STORE and counts.confirmed:
        extended = f"{apple_extended} subscription{'' if apple_extended == 1 else 's'}"
        line += f"; Apple extended {extended} ({apple_not_extended} failed)"
    return line


_DONE = (REQUESTED, CONFIRMED, REFUSED, FAILED)


# --- the run -------------------------------------------------------------------------------


class MassExtender:
    """Runs `receiptd extend` (see the module docstring) with the stores configured for
    actions: `apple` (None: not configured), `play` and the Play adapter that re-reads."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        messages: StoreMessages,
        clock: Clock,
        observer: Observer,
        *,
        apple: MassExtending | None,
        play: StoreActing | None,
        play_reads: Reconciling | None,
    ) -> None:
        self._pool = pool
        self._messages = messages
        self._clock = clock
        self._observer = observer
        self._apple = apple
        self._play = play
        self._play_reads = play_reads
        self._status: dict[int, str] = {}
        self._seen: Counter[tuple[Store, str]] = Counter()

    async def run(self, options: Options) -> Outcome:
        """One run, or the rest of an interrupted one (AlreadyRunning: another holds it;
        CannotStart: asked otherwise than the interrupted one, or arguments out of range)."""
        async with self._pool.acquire() as conn:
            # Released by the pool's reset too, should this connection end mid-run.
            if not await db.try_lock(conn):
                raise AlreadyRunning
            outcome = await self._run(conn, options)
            await db.unlock(conn)
        return outcome

    async def _run(self, conn: asyncpg.Connection, options: Options) -> Outcome:
        self._conn = conn
        run = await self._open(options)
        self._run_id = run.id
        planned = await db.items(conn, run.id)
        unasked = {i.store for i in planned} - set(self._asked())
        if unasked:
            names = " and ".join(sorted(STORE_NAMES[store] for store in unasked))
            raise CannotStart(
                f"the interrupted extend run asks {names}, not configured for store actions "
                "now: configure it again, or add --restart"
            )
        self._status = {i.id: i.status for i in planned}
        self._seen = Counter((i.store, i.status) for i in planned)
        apple = [i for i in planned if i.store is Store.APP_STORE]
        play = [i for i in planned if i.store is Store.PLAY_STORE]
        interrupted = None
        try:
            await self._ask_apple(apple, options)
            await self._defer_play(play, options)
            await self._follow_apple(apple, options.wait)
        except ReceiptError as exc:  # the store cannot answer (StoreUnavailable)
            interrupted = f"{exc.code}: {exc.message}"
        except _Interrupted as exc:
            interrupted = str(exc)
        return await self._close(run, interrupted)

    async def _open(self, options: Options) -> Run:
        """The interrupted run asked the same (resumed), else a new one planned whole."""
        now = self._clock()
        arguments = options.arguments()
        run = await db.open_run(self._conn)
        started = _when(run.started_at) if run is not None else "-"
        if run is not None and not options.restart:
            if dict(run.arguments) != arguments:
                raise CannotStart(
                    f"the extend run started {started} ({_described(run.arguments)}) was "
                    "interrupted: run it again with the same arguments to finish it, or "
                    "add --restart to abandon it (what it asked stays asked)"
                )
            self._observer.note(f"resuming the run started {started} (--restart starts over)")
            return run
        items = await self._plan(options)
        async with self._conn.transaction():
            if run is not None:
                await db.abandon(self._conn, run.id, now)
            new = await db.start_run(self._conn, arguments, items, now)
        if run is not None:
            self._observer.note(f"abandoned the interrupted run started {started} (--restart)")
        return new

    async def _plan(self, options: Options) -> list[NewItem]:
        """Every item of a new run; CannotStart before anything is recorded or asked when
        the arguments do not suit the stores that would be asked."""
        items: list[NewItem] = []
        if self._apple is not None:
            products = await db.renewing_apple(self._conn, options.product)
            apple, left_out = plan_apple(products, lambda: str(uuid.uuid4()))
            for p in left_out:
                self._observer.note(
                    f"{p.product_id} ({p.environment}): Apple does not extend these purchases"
                )
            items += apple
        if self._play is not None:
            rows = await db.renewing_play(self._conn, options.product)
            items += plan_play(rows, str(uuid.uuid4()))
        problem = invalid(options, apple=any(i.store is Store.APP_STORE for i in items))
        if problem is not None:
            raise CannotStart(problem)
        return items

    async def _close(self, run: Run, interrupted: str | None) -> Outcome:
        final = await db.items(self._conn, run.id)
        tallied = tally((i.store, i.status) for i in final)
        stores = [*self._asked(), *(s for s in tallied if s not in self._asked())]
        by_store = {store: tallied.get(store, Counts()) for store in stores}
        extended = not_extended = 0
        for i in final:
            if i.store is Store.APP_STORE and i.status == CONFIRMED:
                extended += _count(i.answer.get("succeededCount"))
                not_extended += _count(i.answer.get("failedCount"))
        counts = {store.value: c.to_json() for store, c in by_store.items()}
        if interrupted is None:
            await db.finish(self._conn, run.id, counts, self._clock())
        else:
            await db.save_counts(self._conn, run.id, counts, self._clock())
        return Outcome(by_store, extended, not_extended, interrupted)

    def _asked(self) -> list[Store]:
        stores = [Store.APP_STORE] if self._apple is not None else []
        return [*stores, Store.PLAY_STORE] if self._play is not None else stores

    # --- Apple ---------------------------------------------------------------------------

    async def _ask_apple(self, items: list[Item], options: Options) -> None:
        """Each Apple mass extension not asked yet (one cut off: asked again only when Apple
        does not know its request identifier)."""
        for done, item in enumerate(items):
            self._progress(f"asking Apple ({_apple_label(item)})", done, len(items))
            status = self._status[item.id]
            if status == SENDING:
                answer = await self._apple_status(item)
                if answer is not None:  # Apple has it: follow it, never send it again
                    await self._mark(item, REQUESTED, "Apple has the request (asked before)")
                    await self._apple_answer(item, answer)
                    continue
            elif status != PENDING:
                continue
            await self._mark(item, SENDING)
            outcome = await self._mass_extend(item, options)
            await self._answered(item, outcome, options)
        if items:
            self._progress("asked Apple", len(items), len(items))

    async def _mass_extend(self, item: Item, options: Options) -> ActionOutcome:
        assert self._apple is not None
        client = self._apple.for_app(item.app)
        try:
            await client.mass_extend(
                item.environment or "Production",
                product_id=item.product_id,
                days=options.days,
                reason=options.reason,
                request_identifier=item.request_id,
            )
        except (StoreActionRefused, PurchaseNotFound, StoreRequestRejected) as exc:
            code = getattr(exc, "store_code", None)
            return ActionOutcome("refused", exc.message, {"errorCode": code})
        answer = {"requestIdentifier": item.request_id}
        return ActionOutcome("requested", "Apple accepted the mass extension", answer)

    async def _apple_status(self, item: Item) -> dict[str, Any] | None:
        """Apple's status of the item's mass extension (None: Apple does not know it)."""
        assert self._apple is not None
        client = self._apple.for_app(item.app)
        try:
            return await client.mass_extend_status(
                item.environment or "Production", item.product_id, item.request_id
            )
        except PurchaseNotFound:
            return None

    async def _apple_answer(self, item: Item, answer: Mapping[str, Any]) -> None:
        """Confirm the item when Apple's status says its work is complete."""
        if answer.get("complete") is not True:
            return
        succeeded = _count(answer.get("succeededCount"))
        failed = _count(answer.get("failedCount"))
        detail = f"Apple extended {succeeded} subscriptions ({failed} failed)"
        await self._mark(item, CONFIRMED, detail, answer)

    async def _follow_apple(self, items: list[Item], wait: timedelta) -> None:
        """Poll the status of each requested mass extension until Apple completes them all,
        or until `wait` has passed (interrupted: the next run follows them)."""
        deadline = time.monotonic() + wait.total_seconds()
        while waiting := [i for i in items if self._status[i.id] == REQUESTED]:
            for item in waiting:
                try:
                    answer = await self._apple_status(item)
                except (StoreActionRefused, StoreRequestRejected) as exc:
                    answer, refusal = None, exc.message
                else:
                    refusal = "Apple does not know this request"
                if answer is None:
                    await self._mark(item, FAILED, f"status: {refusal}")
                    self._observer.answered(
                        Store.APP_STORE, _apple_label(item), FAILED, f"status: {refusal}"
                    )
                    continue
                await self._apple_answer(item, answer)
            left = sum(self._status[i.id] == REQUESTED for i in items)
            complete = len(items) - left
            self._progress(f"waiting for Apple ({complete} of {len(items)} complete)")
            if not left:
                return
            if time.monotonic() >= deadline:
                raise _Interrupted(
                    f"Apple is still extending {left} product(s) after --wait; run the same "
                    "command again to follow them"
                )
            await asyncio.sleep(POLL_SECONDS)

    # --- Play ----------------------------------------------------------------------------

    async def _defer_play(self, items: list[Item], options: Options) -> None:
        """A deferral of each Play subscription not asked yet, then its re-read."""
        done = sum(self._status[i.id] not in (PENDING, SENDING) for i in items)
        for item in items:
            status = self._status[item.id]
            if status == SENDING:
                await self._cut_off(item, options)
            elif status == PENDING:
                await self._defer(item, options)
            else:
                continue
            done += 1
            self._progress("deferring Play subscriptions", done, len(items))

    async def _defer(self, item: Item, options: Options) -> None:
        assert self._play is not None
        await self._mark(item, SENDING)
        outcome = await self._play.extend(
            _target(item), days=options.days, reason=options.reason, request_id=item.request_id
        )
        if outcome.status == FAILED:  # Google could not answer: not done, asked again
            await self._answered(item, outcome, options, status=PENDING)
            raise _Interrupted(f"store_unavailable: {outcome.detail}")
        await self._answered(item, outcome, options)
        if outcome.status == REQUESTED:
            await self._confirm(item, options.days)

    async def _cut_off(self, item: Item, options: Options) -> None:
        """A deferral whose answer never came (Ctrl-C, a crash): not asked again; the re-read
        tells whether Google did it."""
        if await self._reread_shows(item, options.days):
            outcome = ActionOutcome(
                "requested", "the answer was cut off; the re-read shows the deferral"
            )
            await self._answered(item, outcome, options, status=CONFIRMED)
            return
        detail = (
            "cut off while Google was asked and the re-read does not show a deferral; not "
            "asked again (see the Play Console)"
        )
        await self._mark(item, FAILED, detail)
        self._observer.answered(Store.PLAY_STORE, _play_label(item), FAILED, detail)

    async def _confirm(self, item: Item, days: int) -> None:
        if await self._reread_shows(item, days):
            after = await db.play_expiry(self._conn, item.key)
            detail = f"the re-read shows the expiry at {_when(after)}" if after else ""
            await self._mark(item, CONFIRMED, detail)

    async def _reread_shows(self, item: Item, days: int) -> bool:
        """Re-read the subscription (journaled and applied like any statement); whether its
        stored expiry now shows the deferral."""
        if self._play_reads is None:
            return False
        try:
            request, resolution = await self._messages.refreshed(
                self._play_reads, item.key, item.environment, item.app
            )
            await self._messages.statement(Store.PLAY_STORE, request, resolution, self._clock())
        except ReceiptError as exc:  # Google's notification will tell us later
            log.info("extend_reread_failed", store="play_store", error=type(exc).__name__)
            return False
        after = await db.play_expiry(self._conn, item.key)
        return deferral_shows(item.expires_before, after, days)

    # --- bookkeeping ---------------------------------------------------------------------

    async def _answered(
        self,
        item: Item,
        outcome: ActionOutcome,
        options: Options,
        *,
        status: str | None = None,
    ) -> None:
        """Keep the store's answer (store_actions, an audit row for a Play customer) and the
        item's new status (`status`, else the answer's) in one transaction."""
        now = self._clock()
        apple = item.store is Store.APP_STORE
        request: dict[str, Any] = options.arguments() | {"run": self._run_id}
        if apple:
            request |= {
                "app": item.app,
                "environment": item.environment,
                "request_identifier": item.request_id,
            }
        async with self._conn.transaction():
            await actions_db.record(
                self._conn,
                app_user_id=None if apple else item.app_user_id,
                store=item.store,
                purchase_id=item.product_id if apple else item.key,
                action="mass_extend" if apple else "extend",
                request=request,
                status=outcome.status,
                detail=outcome.detail,
                answer=outcome.answer,
                actor=ACTOR,
                at=now,
            )
            if not apple and item.app_user_id is not None:
                details = options.arguments() | {
                    "run": self._run_id,
                    "store": item.store.value,
                    "status": outcome.status,
                }
                entry = AuditEntry(ACTOR, "extend", item.app_user_id, None, details)
                await customers_db.audit(self._conn, entry, now)
            await self._mark(item, status or outcome.status, outcome.detail, outcome.answer)
        log.info("store_action", action="extend", store=item.store.value, status=outcome.status)
        if outcome.status == REFUSED:
            label = _apple_label(item) if apple else _play_label(item)
            self._observer.answered(item.store, label, REFUSED, outcome.detail)

    async def _mark(
        self,
        item: Item,
        status: str,
        detail: str = "",
        answer: Mapping[str, Any] | None = None,
    ) -> None:
        await db.mark(self._conn, item.id, status, self._clock(), detail=detail, answer=answer)
        self._seen[(item.store, self._status[item.id])] -= 1
        self._seen[(item.store, status)] += 1
        self._status[item.id] = status

    def _progress(self, where: str, done: int | None = None, of: int | None = None) -> None:
        counts = total(counts_of(self._seen).values())
        self._observer.progress(counts, where, done, of)


def _target(item: Item) -> ActionTarget:
    return ActionTarget(
        purchase_id=item.key,
        product_id=item.product_id,
        subscription=True,
        environment=item.environment,
        app=item.app,
    )


def _apple_label(item: Item) -> str:
    app = f", {item.app}" if item.app else ""
    return f"product {item.product_id} ({item.environment}{app})"


def _play_label(item: Item) -> str:
    return f"purchase {purchase_ref(item.key)}"  # a token is a bearer secret: never shown


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _described(arguments: Mapping[str, Any]) -> str:
    words = f"--days {arguments.get('days')} --reason {arguments.get('reason')}"
    product = arguments.get("product")
    return words + (f" --product {product}" if product else "")
