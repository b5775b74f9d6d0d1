"""The label follower: caught up only while its index holds every committed label, also across
a restart after an error, and always answering from a complete index (app.runtime.labels)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from app.detect.config import FraudConfig
from app.runtime.labels import LabelFollower

TOPIC = "vigil-fraud-labels"
TP0 = TopicPartition(TOPIC, 0)
T0 = 1_795_860_000_000


def label(txn_id: str, place: str = "pos-1", kind: str = "fraud") -> bytes:
    return orjson.dumps({"txn_id": txn_id, "label": kind, "ts": T0, "terminal_id": place})


@dataclass
class Record:
    value: bytes | None


class FakeConsumer:
    """One partition holding `records`; hands them out when `release` is set, then fails
    with `fail_after` once everything is read (if given)."""

    def __init__(self, records: list[bytes], fail_after: Exception | None = None) -> None:
        self.records = records
        self.position_ = 0
        self.release = asyncio.Event()
        self.fail_after = fail_after
        self.stopped = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    def assign(self, tps: list[TopicPartition]) -> None:
        assert tps == [TP0]

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        self.position_ = 0

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {TP0: len(self.records)}

    async def position(self, tp: TopicPartition) -> int:
        return self.position_

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        await self.release.wait()
        if self.position_ >= len(self.records):
            if self.fail_after is not None:
                raise self.fail_after
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        batch = self.records[self.position_ : self.position_ + 1]  # one at a time
        self.position_ += len(batch)
        return {TP0: [Record(v) for v in batch]}


class ScriptedFollower(LabelFollower):
    restart_delay_s = 0.0

    def __init__(self, consumers: list[FakeConsumer]) -> None:
        super().__init__("127.0.0.1:9", TOPIC, FraudConfig(), partitions=1)
        self.consumers = consumers

    def _new_consumer(self) -> Any:
        return self.consumers.pop(0)


async def until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


@pytest.fixture
async def run_follower() -> Any:
    tasks: list[asyncio.Task[None]] = []

    def start(follower: LabelFollower) -> None:
        tasks.append(asyncio.create_task(follower.run()))

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_caught_up_only_once_every_committed_label_is_applied(run_follower) -> None:
    first = FakeConsumer([label("t-1"), label("t-2"), label("t-3", "pos-2")])
    follower = ScriptedFollower([first])
    run_follower(follower)
    await asyncio.sleep(0.05)
    assert not follower.caught_up.is_set()
    assert list(follower.fraud_label_times("t:pos-1")) == []
    first.release.set()
    await asyncio.wait_for(follower.caught_up.wait(), 5)
    assert sorted(follower.fraud_label_times("t:pos-1")) == [T0, T0]
    assert list(follower.fraud_label_times("t:pos-2")) == [T0]
    assert follower.applied == 3


async def test_an_empty_topic_is_caught_up_at_once(run_follower) -> None:
    empty = FakeConsumer([])
    follower = ScriptedFollower([empty])
    run_follower(follower)
    await asyncio.wait_for(follower.caught_up.wait(), 5)
    assert follower.applied == 0


async def test_a_restart_clears_caught_up_and_serves_the_old_index_until_the_new_one_is_whole(
    run_follower,
) -> None:
    first = FakeConsumer([label("t-1"), label("t-2")], fail_after=RuntimeError("broker gone"))
    # The second read sees one more label (t-3), and t-1 flipped to legit.
    second = FakeConsumer([label("t-1"), label("t-2"), label("t-3"), label("t-1", kind="legit")])
    follower = ScriptedFollower([first, second])
    run_follower(follower)
    first.release.set()
    await asyncio.wait_for(follower.caught_up.wait(), 5)
    old_index = follower.feedback
    assert sorted(follower.fraud_label_times("t:pos-1")) == [T0, T0]

    # `first` fails once drained: the follower starts over with `second`, which waits.
    await until(lambda: not follower.caught_up.is_set())
    assert first.stopped
    assert follower.rebuilds == 1
    second.release.clear()
    for _ in range(5):
        await asyncio.sleep(0.01)
        assert not follower.caught_up.is_set()
        assert follower.feedback is old_index  # not an empty, half-built one
        assert sorted(follower.fraud_label_times("t:pos-1")) == [T0, T0]

    # While the new index fills, queries still see the old one whole.
    seen: list[int] = []

    async def watch() -> None:
        while not follower.caught_up.is_set():
            seen.append(len(follower.fraud_label_times("t:pos-1")))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    second.release.set()
    await asyncio.wait_for(follower.caught_up.wait(), 5)
    await watcher
    assert set(seen) <= {2}  # never 0 or 1 (an index still being rebuilt)
    assert follower.feedback is not old_index
    assert sorted(follower.fraud_label_times("t:pos-1")) == [T0, T0]  # t-2, t-3 (t-1 legit)
    assert follower.applied == 4


async def test_labels_after_catching_up_apply_to_the_served_index(run_follower) -> None:
    consumer = FakeConsumer([label("t-1")])
    follower = ScriptedFollower([consumer])
    run_follower(follower)
    consumer.release.set()
    await asyncio.wait_for(follower.caught_up.wait(), 5)
    consumer.records.append(label("t-2"))  # committed after the start
    await until(lambda: follower.applied == 2)
    assert sorted(follower.fraud_label_times("t:pos-1")) == [T0, T0]
    assert follower.caught_up.is_set()


def test_apply_skips_unreadable_records_and_counts_the_rest() -> None:
    follower = LabelFollower("127.0.0.1:9", TOPIC, FraudConfig())
    follower.apply(label("t-1"))
    follower.apply(None)  # a tombstone
    follower.apply(b"not json")
    follower.apply(orjson.dumps({"txn_id": "t-9"}))  # no label
    assert follower.applied == 1
    assert list(follower.fraud_label_times("t:pos-1")) == [T0]
