"""Store API answers as the journal keeps them: recorded raw, served back by request."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from receipts.errors import PurchaseNotFound, StoreUnavailable
from receipts.recording import (
    ReadNotRecorded,
    ReadRecorder,
    RecordedReads,
    StoreRead,
    parse_reads_document,
    reads_document,
    same_reads,
)

FAILURES = {"purchase_not_found": PurchaseNotFound, "store_unavailable": StoreUnavailable}
NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)


def answering(body: dict[str, Any]):
    async def fetch() -> dict[str, Any]:
        return body

    return fetch


def failing(exc: Exception):
    async def fetch() -> dict[str, Any]:
        raise exc

    return fetch


async def test_answers_are_recorded_raw_and_a_later_change_of_the_callers_dict_is_not() -> None:
    recorder = ReadRecorder()
    body = {"lineItems": [{"productId": "p"}], "n": 1.5}
    got = await recorder.read("play.get", {"token": "t"}, answering(body), FAILURES)
    got["lineItems"].append("changed by the caller")
    assert recorder.reads == [
        StoreRead("play.get", {"token": "t"}, answer={"lineItems": [{"productId": "p"}], "n": 1.5})
    ]


async def test_failures_the_adapter_acts_on_are_recorded_others_are_not() -> None:
    recorder = ReadRecorder()
    with pytest.raises(StoreUnavailable):
        await recorder.read("a", {}, failing(StoreUnavailable()), FAILURES)
    with pytest.raises(ValueError, match="bug"):
        await recorder.read("b", {}, failing(ValueError("bug")), FAILURES)
    assert recorder.reads == [StoreRead("a", {}, failure="store_unavailable")]


async def test_replay_serves_the_recorded_answers_by_request_and_records_them_again() -> None:
    original = [
        StoreRead("get", {"path": "/b"}, answer={"v": "b"}),
        StoreRead("get", {"path": "/a"}, answer={"v": "a1"}),
        StoreRead("get", {"path": "/a"}, failure="purchase_not_found"),
    ]
    replayed = ReadRecorder(RecordedReads(original))

    async def never() -> dict[str, Any]:
        raise AssertionError("replay must not call the store")

    # Asked in another order (concurrent reads): each request gets its own answers, in order.
    assert await replayed.read("get", {"path": "/a"}, never, FAILURES) == {"v": "a1"}
    with pytest.raises(PurchaseNotFound):
        await replayed.read("get", {"path": "/a"}, never, FAILURES)
    assert await replayed.read("get", {"path": "/b"}, never, FAILURES) == {"v": "b"}
    assert same_reads(replayed.reads, original)
    assert not same_reads(replayed.reads, original[:2])
    with pytest.raises(ReadNotRecorded):  # asked once more than recorded
        await replayed.read("get", {"path": "/b"}, never, FAILURES)


async def test_concurrent_reads_are_all_recorded() -> None:
    recorder = ReadRecorder()

    async def slow(value: str, delay: float):
        async def fetch() -> dict[str, Any]:
            await asyncio.sleep(delay)
            return {"v": value}

        return await recorder.read("get", {"v": value}, fetch, FAILURES)

    await asyncio.gather(slow("x", 0.01), slow("y", 0))
    assert [r.answer for r in recorder.reads] == [{"v": "y"}, {"v": "x"}]


def test_the_journal_document_round_trips_through_json() -> None:
    reads = [
        StoreRead("get", {"q": {"sort": "ASCENDING"}}, answer={"signed": "a.b.c"}),
        StoreRead("get", {"q": {}}, failure="store_unavailable"),
    ]
    stored = json.loads(json.dumps(reads_document(NOW, reads)))
    assert parse_reads_document(stored) == (NOW, reads)


def test_an_unknown_recorded_failure_is_not_guessed() -> None:
    recorded = RecordedReads([StoreRead("get", {}, failure="from_a_newer_version")])
    with pytest.raises(ReadNotRecorded):
        recorded.answer("get", {}, FAILURES)
