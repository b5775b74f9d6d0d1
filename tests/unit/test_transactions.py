"""The commit protocol of `app.runtime.transactions`, at each of its failure points.

An in-memory Kafka models what the protocol relies on: a transaction's records and offsets
become visible together at commit, or never; a record that was not acked fails its send.
A worker counts events per key (state), emits one output per event, and is crashed, failed
or restarted at every step of a checkpoint. After each scenario: state (RocksDB + changelog
tail, as a restart reads it), the committed outputs and the committed offsets agree, i.e.
every input event is applied exactly once (exactly_once) or at least once (at_least_once),
and the store is never ahead of Kafka. The live protocol runs on the same classes
(`app.runtime.partitions`), and `tests/e2e` kill real workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from app.runtime import transactions
from app.runtime.checkpoint import Checkpointer
from app.runtime.transactions import CheckpointError, PartitionTransaction

TP = ("input", 0)
CHANGELOG = "app-counts-changelog"
OUT = "outputs"


class Meta:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class FakeBatch:
    """aiokafka's BatchBuilder as a checkpoint uses it: full after `capacity` records, so that
    every scenario also sends a topic-partition's records in several batches."""

    capacity = 2

    def __init__(self) -> None:
        self.records: list[tuple[Any, Any]] = []

    def append(self, *, timestamp: float | None, key: Any, value: Any) -> Any:
        if len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return Meta(len(self.records) - 1)

    def record_count(self) -> int:
        return len(self.records)


class Crash(BaseException):
    """The process dies here (like SIGKILL: nothing after it runs)."""


class FakeKafka:
    """Committed logs and group offsets; open transactions are invisible."""

    def __init__(self) -> None:
        self.logs: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        self.offsets: dict[Any, int] = {}
        self.fail: str | None = None  # step at which the next checkpoint fails or crashes
        self.crash = False

    def _step(self, name: str) -> None:
        if self.fail == name:
            self.fail = None
            if self.crash:
                raise Crash(name)
            raise RuntimeError(f"broker refused at {name}")

    def append(self, topic: str, partition: int, key: Any, value: Any) -> int:
        log = self.logs.setdefault((topic, partition), [])
        log.append((key, value))
        return len(log) - 1

    def committed(self, topic: str, partition: int = 0) -> list[tuple[Any, Any]]:
        return list(self.logs.get((topic, partition), []))


class TxnProducer:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka
        self.pending: list[tuple[str, int, FakeBatch, asyncio.Future[Any]]] = []
        self.pending_offsets: dict[Any, int] = {}
        self.open = False

    async def begin_transaction(self) -> None:
        assert not self.open, "IN_TRANSACTION -> IN_TRANSACTION"
        self.open = True

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        self.kafka._step("send")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.kafka.fail == "delivery":  # accepted, then not delivered (retries exhausted)
            self.kafka.fail = None
            fut.set_exception(RuntimeError("NotEnoughReplicas: retries exhausted"))
            return fut
        self.pending.append((topic, partition, batch, fut))
        # Acked when the broker wrote it (visible only at commit); aiokafka's futures resolve
        # before the commit, which waits for them.
        asyncio.get_running_loop().call_soon(lambda: fut.done() or fut.set_result(Meta(-1)))
        return fut

    async def send_offsets_to_transaction(self, offsets: dict[Any, int], group_id: str) -> None:
        self.kafka._step("offsets")
        self.pending_offsets.update(offsets)

    async def commit_transaction(self) -> None:
        self.kafka._step("commit")
        for topic, partition, batch, fut in self.pending:
            offsets = [self.kafka.append(topic, partition, k, v) for k, v in batch.records]
            fut.result().offset = offsets[0]  # a batch's future holds its first offset
        self.kafka.offsets.update(self.pending_offsets)
        self._reset()
        self.kafka._step("after-commit")  # committed in Kafka; the worker dies before RocksDB

    async def abort_transaction(self) -> None:
        for *_, fut in self.pending:
            fut.cancel()
        self._reset()

    def _reset(self) -> None:
        self.pending, self.pending_offsets, self.open = [], {}, False


class PlainProducer:
    """at_least_once: records are appended when sent; a refused one fails its future."""

    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.kafka.fail == "send":
            self.kafka.fail = None
            fut.set_exception(RuntimeError("delivery timed out"))
        else:
            offsets = [self.kafka.append(topic, partition, k, v) for k, v in batch.records]
            fut.set_result(Meta(offsets[0]))
        return fut


class DictStore:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.offset: int | None = None

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return list(self.data.items())

    def write(self, changes: Mapping[bytes, bytes | None], changelog_offset: int) -> None:
        for key, value in changes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        self.offset = changelog_offset


class Table:
    name = "counts"
    changelog_topic = CHANGELOG

    def __init__(self) -> None:
        self.stores = {0: DictStore()}

    def store(self, partition: int) -> DictStore:
        return self.stores[partition]


class Worker:
    """Counts events per key; one output per event; checkpoints every `every` events."""

    def __init__(self, kafka: FakeKafka, table: Table, *, exactly_once: bool = True) -> None:
        self.kafka = kafka
        self.table = table
        self.exactly_once = exactly_once
        producer: Any = TxnProducer(kafka) if exactly_once else PlainProducer(kafka)

        async def commit_offsets(offsets: dict[Any, int]) -> None:
            kafka._step("offsets")
            kafka.offsets.update(offsets)

        self.checkpointer = Checkpointer(
            exactly_once=exactly_once,
            group_id="app",
            producer_for=lambda tid: producer,
            commit_offsets=commit_offsets,
        )
        self.restore()
        self.txn = PartitionTransaction("app-0-0", 0)

    def restore(self) -> None:
        """What a restart does: the store as it is, plus the changelog after its offset."""
        store = self.table.store(0)
        start = store.offset + 1 if store.offset is not None else 0
        log = self.kafka.committed(CHANGELOG)
        if start < len(log):
            store.write(dict(log[start:]), len(log) - 1)

    def handle(self, offset: int, key: bytes, boom: bool = False) -> None:
        txn = self.txn
        txn.begin_event()
        try:
            count = int(txn.get(self.table, key) or b"0") + 1
            txn.put(self.table, key, str(count).encode())
            txn.send(OUT, key, f"{key.decode()}#{count}".encode(), 0)
            if boom:
                raise ValueError("detector bug")
        except ValueError:
            txn.rollback_event()
            txn.send("dead-letters", key, str(offset).encode(), 0)
        txn.end_event(TP, offset)

    async def run(self, events: list[bytes], every: int = 3, boom_at: int = -1) -> None:
        start = self.kafka.offsets.get(TP, 0)
        for offset in range(start, len(events)):
            self.handle(offset, events[offset], boom=offset == boom_at)
            if (offset + 1) % every == 0:
                await self.checkpointer.checkpoint([self.txn])
        await self.checkpointer.checkpoint([self.txn])


EVENTS = [k.encode() for k in "abacbbcaab"]
EXPECTED = {b"a": b"4", b"b": b"4", b"c": b"2"}


def outputs(kafka: FakeKafka) -> list[bytes]:
    return [v for _, v in kafka.committed(OUT)]


def assert_exactly_once(kafka: FakeKafka, table: Table) -> None:
    restarted = Worker(kafka, table)  # a restart reads the changelog tail
    assert table.store(0).data == EXPECTED
    assert sorted(outputs(kafka)) == sorted(
        f"{k}#{n}".encode()
        for k, total in {"a": 4, "b": 4, "c": 2}.items()
        for n in range(1, total + 1)
    )
    assert kafka.offsets[TP] == len(EVENTS)
    assert restarted.txn.dirty is False


async def test_uninterrupted_run_commits_one_changelog_record_per_changed_key():
    kafka, table = FakeKafka(), Table()
    await Worker(kafka, table).run(EVENTS, every=5)
    assert_exactly_once(kafka, table)
    # 10 updates, but per checkpoint only each key's latest value: a,b,c then c,b,a.
    assert len(kafka.committed(CHANGELOG)) == 6
    assert table.store(0).offset == 5


async def test_handler_exception_stages_nothing_and_dead_letters_the_record():
    kafka, table = FakeKafka(), Table()
    await Worker(kafka, table).run(EVENTS, boom_at=2)  # the second "a" fails half way
    assert table.store(0).data == {b"a": b"3", b"b": b"4", b"c": b"2"}
    assert b"a#4" not in outputs(kafka)
    assert kafka.committed("dead-letters") == [(b"a", b"2")]
    assert kafka.offsets[TP] == len(EVENTS)


@pytest.mark.parametrize("step", ["send", "delivery", "offsets", "commit"])
async def test_failed_transaction_leaves_store_and_kafka_at_the_last_checkpoint(step):
    kafka, table = FakeKafka(), Table()
    worker = Worker(kafka, table)
    for offset in range(3):
        worker.handle(offset, EVENTS[offset])
    await worker.checkpointer.checkpoint([worker.txn])
    before = (dict(table.store(0).data), kafka.committed(OUT), dict(kafka.offsets))
    for offset in range(3, 6):
        worker.handle(offset, EVENTS[offset])
    kafka.fail = step
    with pytest.raises(CheckpointError):
        await worker.checkpointer.checkpoint([worker.txn])
    assert (table.store(0).data, kafka.committed(OUT), kafka.offsets) == before
    # The worker exits; its restart resumes from what Kafka committed.
    await Worker(kafka, table).run(EVENTS)
    assert_exactly_once(kafka, table)


@pytest.mark.parametrize("step", ["send", "offsets", "commit"])
async def test_crash_before_the_kafka_commit(step):
    kafka, table = FakeKafka(), Table()
    kafka.fail, kafka.crash = step, True
    worker = Worker(kafka, table)
    with pytest.raises((Crash, CheckpointError)):
        await worker.run(EVENTS, every=4)
    assert table.store(0).data == {}  # the first checkpoint died: nothing reached RocksDB
    await Worker(kafka, table).run(EVENTS)  # the next owner's producer aborted it
    assert_exactly_once(kafka, table)


async def test_crash_after_the_kafka_commit_before_the_rocksdb_write():
    kafka, table = FakeKafka(), Table()
    worker = Worker(kafka, table)
    await worker.run(EVENTS[:4], every=4)
    kafka.fail, kafka.crash = "after-commit", True
    for offset in range(4, 8):
        worker.handle(offset, EVENTS[offset])
    with pytest.raises((Crash, CheckpointError)):
        await worker.checkpointer.checkpoint([worker.txn])
    assert table.store(0).data == {b"a": b"2", b"b": b"1", b"c": b"1"}  # behind Kafka
    await Worker(kafka, table).run(EVENTS)  # the restart reads the changelog tail first
    assert_exactly_once(kafka, table)


async def test_revoke_with_an_open_transaction_drops_it_and_the_next_owner_redoes_it():
    kafka, table = FakeKafka(), Table()
    worker = Worker(kafka, table)
    await worker.run(EVENTS[:3], every=3)
    for offset in range(3, 7):
        worker.handle(offset, EVENTS[offset])
    worker.txn.take()  # revoked, its checkpoint refused: the staged work is dropped
    assert kafka.offsets[TP] == 3
    await Worker(kafka, table).run(EVENTS)  # the new owner starts at the committed offset
    assert_exactly_once(kafka, table)


async def test_at_least_once_failed_send_commits_no_offset_and_no_state():
    kafka, table = FakeKafka(), Table()
    worker = Worker(kafka, table, exactly_once=False)
    for offset in range(4):
        worker.handle(offset, EVENTS[offset])
    kafka.fail = "send"
    with pytest.raises(CheckpointError):
        await worker.checkpointer.checkpoint([worker.txn])
    assert TP not in kafka.offsets
    assert table.store(0).data == {}
    await Worker(kafka, table, exactly_once=False).run(EVENTS)
    # Everything is applied; the events before the failure were sent twice at most.
    assert kafka.offsets[TP] == len(EVENTS)
    assert set(outputs(kafka)) >= {b"a#4", b"b#4", b"c#2"}


async def test_at_least_once_offset_commit_failure_keeps_the_store_behind():
    kafka, table = FakeKafka(), Table()
    worker = Worker(kafka, table, exactly_once=False)
    for offset in range(4):
        worker.handle(offset, EVENTS[offset])
    kafka.fail = "offsets"
    with pytest.raises(CheckpointError):
        await worker.checkpointer.checkpoint([worker.txn])
    assert table.store(0).data == {}
    assert TP not in kafka.offsets


def test_reads_see_staged_writes_and_items_overlay_the_store():
    table = Table()
    table.store(0).write({b"x": b"1", b"y": b"2"}, 0)
    txn = PartitionTransaction("t", 0)
    txn.begin_event()
    txn.put(table, b"x", b"10")
    txn.delete(table, b"y")
    txn.put(table, b"z", b"3")
    txn.end_event(TP, 0)
    assert txn.get(table, b"x") == b"10"
    assert txn.get(table, b"y") is None
    assert dict(txn.items(table)) == {b"x": b"10", b"z": b"3"}
    txn.begin_event()
    txn.put(table, b"x", b"11")
    txn.rollback_event()
    assert txn.get(table, b"x") == b"10"
    assert table.store(0).data == {b"x": b"1", b"y": b"2"}  # nothing reached the store


async def test_a_seek_back_to_the_committed_offset_redelivers_nothing_twice():
    """Faust's end-of-recovery seek on a partition that kept flowing: its events from the
    committed offset on arrive again, some already staged; each is taken once (as agents.loop
    does with `already_taken`), so the outcome is the uninterrupted run's."""
    kafka, table = FakeKafka(), Table()
    worker = Worker(kafka, table)
    for offset in range(0, 7):  # a checkpoint after 3 events; 3..6 staged
        worker.handle(offset, EVENTS[offset])
        if offset == 2:
            await worker.checkpointer.checkpoint([worker.txn])
    assert kafka.offsets[TP] == 3
    taken = []
    for offset in range(kafka.offsets[TP], len(EVENTS)):  # the seek: from the committed offset
        if not worker.txn.already_taken(TP, offset):
            taken.append(offset)
            worker.handle(offset, EVENTS[offset])
    await worker.checkpointer.checkpoint([worker.txn])
    assert taken == [7, 8, 9]
    assert_exactly_once(kafka, table)


def test_without_the_check_a_redelivered_event_would_count_twice():
    txn = PartitionTransaction("app-0-0", 0)
    assert not txn.already_taken(TP, 0)
    txn.begin_event()
    txn.end_event(TP, 5)
    assert txn.already_taken(TP, 5) and txn.already_taken(TP, 0)
    assert not txn.already_taken(TP, 6)
    txn.take()  # a checkpoint keeps the position
    assert txn.already_taken(TP, 5)


def _taken(txn: PartitionTransaction, offsets: list[int]) -> list[tuple[int, str]]:
    """Feed offsets as the agent loop does; return each verdict (taking the "take"s)."""
    verdicts = []
    for offset in offsets:
        if txn.already_taken(TP, offset):
            verdicts.append((offset, "taken"))
            continue
        verdict = txn.continuity(TP, offset)
        verdicts.append((offset, verdict))
        if verdict == "take":
            txn.begin_event()
            txn.end_event(TP, offset)
    return verdicts


def test_records_faust_fetched_but_never_delivered_are_sought_back_not_committed_past():
    """14..17 taken, then 576 arrives (18..575 dropped by Faust): seek back to 18; 577..579
    fetched before the seek wait; the refetch from 18 is taken in order."""
    txn = PartitionTransaction("app-fraud-1", 1)
    verdicts = _taken(txn, [14, 15, 16, 17, 576, 577, 578, 579, 18, 19, 20])
    assert verdicts[4:] == [
        (576, "seek"),
        (577, "wait"),
        (578, "wait"),
        (579, "wait"),
        (18, "take"),
        (19, "take"),
        (20, "take"),
    ]
    assert txn.next_offset(TP) == 21


def test_a_hole_kafka_really_has_is_crossed_after_one_seek():
    """Transaction markers (or compacted records) at 18..20: the refetch from 18 starts at 21
    again, which is then taken."""
    txn = PartitionTransaction("app-fraud-1", 1)
    verdicts = _taken(txn, [17, 21, 22, 21, 22, 23])
    assert verdicts == [
        (17, "take"),
        (21, "seek"),
        (22, "wait"),
        (21, "take"),
        (22, "take"),
        (23, "take"),
    ]


def test_a_seek_whose_records_never_come_is_asked_again():
    txn = PartitionTransaction("app-fraud-1", 1)
    _taken(txn, [5, 9])
    offsets = list(range(10, 10 + transactions.MAX_WAITS + 1))
    verdicts = [v for _, v in _taken(txn, offsets)]
    assert set(verdicts[:-1]) == {"wait"} and verdicts[-1] == "seek"


async def test_records_of_one_partition_go_out_in_order_in_full_batches():
    """`send_records` splits only at a full batch; `last_offset` is the last record's offset."""
    from app.runtime.checkpoint import send_records

    kafka = FakeKafka()
    producer = PlainProducer(kafka)
    futures: list[asyncio.Future[Any]] = []
    records = [(b"k%d" % i, b"v%d" % i) for i in range(5)]
    kafka.append(OUT, 0, b"earlier", b"x")
    sent = await send_records(producer, OUT, 0, records, futures)
    assert len(futures) == 3  # 2 + 2 + 1 with FakeBatch.capacity 2
    assert kafka.committed(OUT)[1:] == records
    assert sent.count == 1 and sent.last_offset == 5


class SlowCommit(TxnProducer):
    """Commits only when `release` is set: events are handled while the checkpoint runs."""

    def __init__(self, kafka: FakeKafka) -> None:
        super().__init__(kafka)
        self.release = asyncio.Event()
        self.committing = asyncio.Event()

    async def commit_transaction(self) -> None:
        self.committing.set()
        await self.release.wait()
        await super().commit_transaction()


@pytest.mark.parametrize("fail", [False, True])
async def test_events_handled_during_a_checkpoint_read_what_it_is_committing(fail):
    """The store is written only after the commit; meanwhile new events see the taken
    writes (not the older store), and what they stage goes to the next checkpoint. A
    checkpoint that fails leaves the store at the previous one."""
    kafka, table = FakeKafka(), Table()
    worker = Worker(kafka, table)
    producer = SlowCommit(kafka)
    worker.checkpointer.producer_for = lambda tid: producer
    for offset in range(4):  # a b a c
        worker.handle(offset, EVENTS[offset])
    running = asyncio.ensure_future(worker.checkpointer.checkpoint([worker.txn]))
    await producer.committing.wait()
    assert table.store(0).data == {}  # nothing in RocksDB before Kafka committed
    for offset in range(4, 7):  # b b c: counted on top of the running checkpoint's a2 b1 c1
        worker.handle(offset, EVENTS[offset])
    assert worker.txn.get(table, b"b") == b"3" and worker.txn.get(table, b"a") == b"2"
    assert sorted(v for _, v in worker.txn.items(table)) == [b"2", b"2", b"3"]
    if fail:
        kafka.fail = "commit"
    producer.release.set()
    if fail:
        with pytest.raises(CheckpointError):
            await running
        assert table.store(0).data == {} and kafka.committed(OUT) == []
        return
    await running
    assert table.store(0).data == {b"a": b"2", b"b": b"1", b"c": b"1"}
    assert worker.txn.get(table, b"b") == b"3"  # staged, over the store now
    await worker.checkpointer.checkpoint([worker.txn])
    assert table.store(0).data == {b"a": b"2", b"b": b"3", b"c": b"2"}
    assert outputs(kafka) == [b"a#1", b"b#1", b"a#2", b"c#1", b"b#2", b"b#3", b"c#2"]


@pytest.mark.parametrize("fail", [False, True])
async def test_outputs_sent_ahead_are_acked_before_the_offsets_commit(fail):
    """at_least_once: outputs taken between events go out before the checkpoint; the
    checkpoint commits no offset past them unless every one was delivered."""
    from app.runtime.checkpoint import send_outputs

    kafka, table = FakeKafka(), Table()
    worker = Worker(kafka, table, exactly_once=False)
    producer = PlainProducer(kafka)
    for offset in range(3):  # a b a
        worker.handle(offset, EVENTS[offset])
    futures: list[asyncio.Future[Any]] = []
    if fail:
        kafka.fail = "send"
    await send_outputs(producer, worker.txn.take_outputs(), futures)
    worker.txn.sent_ahead(futures)
    if not fail:
        assert outputs(kafka) == [b"a#1", b"b#1", b"a#2"]  # visible before any commit
    assert TP not in kafka.offsets and worker.txn.dirty
    worker.handle(3, EVENTS[3])  # c: staged as usual, sent by the checkpoint
    if fail:
        with pytest.raises(CheckpointError):
            await worker.checkpointer.checkpoint([worker.txn])
        assert TP not in kafka.offsets and table.store(0).data == {}
        return
    await worker.checkpointer.checkpoint([worker.txn])
    assert outputs(kafka) == [b"a#1", b"b#1", b"a#2", b"c#1"]
    assert kafka.offsets[TP] == 4 and table.store(0).data == {b"a": b"2", b"b": b"1", b"c": b"1"}
