"""What an agent writes while processing: table state and output records, straight to Kafka.

Faust's own paths cost more than Vigil's detectors. `table[key] = value` queues the changelog
record in Faust's ProducerBuffer, which one background task drains a record at a time (and
once 100 wait, every stream stops while they are flushed one by one); `topic.send()` wraps
each record in a FutureMessage, sensors and callbacks. The benchmark measured about 250 µs per
record that way, five times the whole of Vigil's decoding and detection.

An `Outbox` keeps the same semantics at a fraction of the cost:

- state is written to the partition's RocksDB at once (as Faust does) and its changelog record
  queued; `flush()` hands every queued record to the aiokafka producer in one tight loop, so
  they share produce requests;
- under exactly_once every record goes to the transactional producer of the partition it was
  read from: the one Faust commits that partition's offsets with (see `app.exactly_once`);
- the changelog offset Faust keeps for recovery is recorded from the send's result, exactly as
  Faust's own callback does (it is Faust's callback).

The caller flushes inside the commit gate, so a commit never falls between an event's state,
its outputs and its offset. Outputs are never acked here: Faust flushes the producer before it
commits offsets (at_least_once), and a Kafka transaction only commits once its records are
written (exactly_once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from app.exceptions import OutputError

log = logging.getLogger(__name__)

#: Faust's bookkeeping key in every partition's RocksDB (the changelog offset it has applied).
FAUST_KEY_PREFIX = b"__faust"


class PartitionedTable(Protocol):
    """The parts of a Faust table the outbox uses (a RocksDB store per partition)."""

    data: Any
    changelog_topic: Any

    def _on_changelog_sent(self, fut: Any) -> None: ...


def partition_db(table: PartitionedTable, partition: int) -> Any:
    """The RocksDB of one partition of `table` (opened on first use, as Faust does)."""
    return table.data._db_for_partition(partition)


def read(table: PartitionedTable, key: bytes, partition: int) -> bytes | None:
    """The stored value of `key` in `partition`, or None (no Faust sensors, no event lookup)."""
    value: bytes | None = partition_db(table, partition).get(key)
    return value


class _Record:
    __slots__ = ("key", "on_sent", "partition", "source", "topic", "value")

    def __init__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        source: int,
        on_sent: Callable[[asyncio.Future[Any]], None] | None,
    ) -> None:
        self.topic = topic
        self.key = key
        self.value = value
        self.partition = partition
        self.source = source
        self.on_sent = on_sent


class Outbox:
    """Queued records of the events being processed, sent by `flush()`.

    One per agent: records carry the partition their event was read from, whose Kafka
    transaction they join under exactly_once.
    """

    def __init__(self, app: Any, source_topic: str) -> None:
        self.app = app
        self.source_topic = source_topic
        self._records: list[_Record] = []
        self._group: int | None = None
        self._changelogs: dict[int, tuple[str, Callable[[asyncio.Future[Any]], None]]] = {}

    def __len__(self) -> int:
        return len(self._records)

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        source_partition: int,
        *,
        partition: int | None = None,
        on_sent: Callable[[asyncio.Future[Any]], None] | None = None,
    ) -> None:
        """Queue one record for `topic` (by default to the source's partition number)."""
        target = source_partition if partition is None else partition
        self._records.append(_Record(topic, key, value, target, source_partition, on_sent))

    def put(self, table: PartitionedTable, key: bytes, value: bytes, partition: int) -> None:
        """Store `key` in `partition` of `table` now; queue its changelog record."""
        partition_db(table, partition).put(key, value)
        self._changelog(table, key, value, partition)

    def delete(self, table: PartitionedTable, key: bytes, partition: int) -> None:
        """Remove `key` from `partition` of `table` now; queue its tombstone."""
        partition_db(table, partition).delete(key)
        self._changelog(table, key, None, partition)

    def _changelog(
        self, table: PartitionedTable, key: bytes, value: bytes | None, partition: int
    ) -> None:
        target = self._changelogs.get(id(table))
        if target is None:
            target = self._changelogs[id(table)] = _changelog_target(table)
        topic, on_sent = target
        self._records.append(_Record(topic, key, value, partition, partition, on_sent))

    async def flush(self) -> None:
        """Hand every queued record to the producer (without waiting for acks)."""
        records, self._records = self._records, []
        if not records:
            return
        app = self.app
        _keep_last_callbacks(records)
        if app.in_transaction:
            await self._flush_transactional(records)
            return
        producer = app.producer._ensure_producer()
        for record in records:
            fut = await producer.send(
                record.topic, record.value, key=record.key, partition=record.partition
            )
            _watch(fut, record)

    async def _flush_transactional(self, records: list[_Record]) -> None:
        faust_producer = self.app.producer
        if self._group is None:
            self._group = self.app.assignor.group_for_topic(self.source_topic)
        prefix = f"{self.app.conf.id}-{self._group}-"
        # One producer lookup and one lock per source partition, not per record; each
        # partition's records keep their order.
        by_source: dict[int, list[_Record]] = {}
        for record in records:
            by_source.setdefault(record.source, []).append(record)
        for source, batch in by_source.items():
            tid = prefix + str(source)
            producer = faust_producer._transaction_producers.get(tid)
            if producer is None:
                raise OutputError(f"no transactional producer {tid} (partition not assigned?)")
            async with faust_producer._trn_locks[tid]:
                for record in batch:
                    fut = await producer.send(
                        record.topic, record.value, key=record.key, partition=record.partition
                    )
                    _watch(fut, record)


def _changelog_target(
    table: PartitionedTable,
) -> tuple[str, Callable[[asyncio.Future[Any]], None]]:
    """The changelog topic of `table` and the callback that records a delivered offset."""
    recorded = table._on_changelog_sent

    def on_sent(fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            recorded(fut)  # Faust remembers the changelog offset its store holds

    return table.changelog_topic.get_topic_name(), on_sent


def _keep_last_callbacks(records: list[_Record]) -> None:
    """Keep the changelog-offset callback only on the last record of each topic partition.

    Faust records the offset of every changelog write (a RocksDB put each, under
    at_least_once). A partition's records are produced in order, so the last one's offset is
    the one that counts; should it fail, the stored offset only lags, and recovery reads a few
    more records than it needed to.
    """
    last: dict[tuple[str, int], _Record] = {}
    for record in records:
        if record.on_sent is not None:
            previous = last.get((record.topic, record.partition))
            if previous is not None:
                previous.on_sent = None
            last[(record.topic, record.partition)] = record


def _watch(fut: asyncio.Future[Any], record: _Record) -> None:
    if record.on_sent is not None:
        fut.add_done_callback(record.on_sent)
    fut.add_done_callback(_log_failure)


def _log_failure(fut: asyncio.Future[Any]) -> None:
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is not None:  # aiokafka retried until its delivery timeout
        log.error("producing a record failed: %r", exc)
