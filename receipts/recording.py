"""Store API answers kept in the journal: recorded while an adapter reads a store, served back
when the journal is replayed (`receiptd replay`), so that replay runs the production code.

    ReadRecorder    one per resolve or submit: every answer a store API gave (its JSON body,
                    raw: Apple's signed items stay signed, so replay verifies them again), or
                    the failure the adapter acted on, in the order they were asked. Answers
                    come from the store, or in replay from a RecordedReads.
    RecordedReads   the answers journaled with one entry, served by request: reads made
                    concurrently may be asked in another order. A request that was not
                    recorded (or was recorded fewer times) is ReadNotRecorded.

The clients put the recorder at their boundary (the App Store Server API client's GET of a
path, the Play client's get_subscription / get_product); the translation code above them is
the same in both directions. The journal keeps `reads_document(now, reads)`: `now` is the
service-clock time the store was read at (it orders Play reads, see `receipts.port`).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from receipts.errors import ReceiptError

Fetch = Callable[[], Awaitable[dict[str, Any]]]
# The failures an adapter acts on (and so must see again in replay), by their journal name,
# most specific first: any other failure ends the resolve, and nothing is journaled then.
Failures = Mapping[str, type[Exception]]


class ReadNotRecorded(ReceiptError):
    """Replay asked a store for something the journal entry did not record."""

    code = "read_not_recorded"


@dataclass(frozen=True, slots=True)
class StoreRead:
    """One call to a store API and its answer: the JSON body, or a failure's journal name."""

    call: str
    request: Mapping[str, Any]
    answer: Mapping[str, Any] | None = None
    failure: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The read as the journal keeps it: call, request and `answer` or `failure`."""
        out: dict[str, Any] = {"call": self.call, "request": dict(self.request)}
        if self.failure is not None:
            out["failure"] = self.failure
        else:
            out["answer"] = self.answer
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> StoreRead:
        """The inverse of `to_json`."""
        return cls(
            call=str(doc["call"]),
            request=dict(doc["request"]),
            answer=doc.get("answer"),
            failure=doc.get("failure"),
        )

    @property
    def key(self) -> str:
        """What was asked, as one comparable string."""
        return json.dumps([self.call, self.request], sort_keys=True, separators=(",", ":"))

    @property
    def canonical(self) -> str:
        """The whole read (question and answer) as one comparable string."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))


def reads_document(now: datetime, reads: Sequence[StoreRead]) -> dict[str, Any]:
    """The journal's record of a resolve or submit: the service clock it read at, and the
    store answers it used."""
    return {"now": now.isoformat(), "reads": [r.to_json() for r in reads]}


def parse_reads_document(doc: Mapping[str, Any]) -> tuple[datetime, list[StoreRead]]:
    """The inverse of `reads_document`."""
    return datetime.fromisoformat(doc["now"]), [StoreRead.from_json(r) for r in doc["reads"]]


def same_reads(a: Sequence[StoreRead], b: Sequence[StoreRead]) -> bool:
    """True when both hold the same reads, whatever their order (concurrent reads)."""
    return sorted(r.canonical for r in a) == sorted(r.canonical for r in b)


def _copy(answer: Mapping[str, Any]) -> dict[str, Any]:
    """A deep, JSON-only copy: what the journal keeps is what the store said, whatever the
    caller does with its own dict afterwards."""
    copied: dict[str, Any] = json.loads(json.dumps(answer))
    return copied


class RecordedReads:
    """The store answers of one journal entry, served again in replay."""

    def __init__(self, reads: Sequence[StoreRead]) -> None:
        self._queues: dict[str, deque[StoreRead]] = {}
        for read in reads:
            self._queues.setdefault(read.key, deque()).append(read)

    def answer(self, call: str, request: Mapping[str, Any], failures: Failures) -> dict[str, Any]:
        """The recorded answer to this request (the recorded failure is raised again)."""
        queue = self._queues.get(StoreRead(call, request).key)
        if not queue:
            raise ReadNotRecorded
        read = queue.popleft()
        if read.failure is not None:
            failure = failures.get(read.failure)
            if failure is None:
                raise ReadNotRecorded(f"unknown recorded failure {read.failure!r}")
            raise failure()
        return _copy(read.answer or {})


class ReadRecorder:
    """Records the store reads of one resolve or submit (answered by `source` in replay)."""

    def __init__(self, source: RecordedReads | None = None) -> None:
        self._source = source
        self.reads: list[StoreRead] = []

    async def read(
        self, call: str, request: Mapping[str, Any], fetch: Fetch, failures: Failures
    ) -> dict[str, Any]:
        """Ask the store (or the journal, in replay) and record what it answered."""
        try:
            if self._source is not None:
                answer = self._source.answer(call, request, failures)
            else:
                answer = await fetch()
        except Exception as exc:
            # Only failures the adapter acts on are recorded; any other ends the resolve.
            name = next((n for n, cls in failures.items() if isinstance(exc, cls)), None)
            if name is not None:
                self.reads.append(StoreRead(call, dict(request), failure=name))
            raise
        self.reads.append(StoreRead(call, dict(request), answer=_copy(answer)))
        return answer
