"""The checkpoint: flush -> produce -> commit -> persist, for every partition a worker owns.

What the partitions' transactions (`app.runtime.transactions`) staged since the last
checkpoint goes to Kafka first, and only then to RocksDB:

- exactly_once: per partition, in its own Kafka transaction: one changelog record per changed
  key (the latest value), the outputs, the input offsets (`send_offsets_to_transaction`), the
  commit; every record acknowledged before the commit is asked for;
- at_least_once: everything sent through the one shared producer and acknowledged, then the
  consumer group's offsets committed; a failed send fails the checkpoint and no offset moves;
- then each partition's staged table writes go to RocksDB in one write batch, with the
  changelog offset they reflect.

Records go out as produce batches built here (aiokafka's public `create_batch` /
`send_batch`): one batch per topic-partition, split only when a batch is full, and one future
per batch rather than per record. A checkpoint sends thousands of records at once, all known
in advance; handing them to the producer one by one cost a coroutine, a metadata lookup and a
future each (`bench/README.md`, session 5).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from typing import Any, Protocol

from app.runtime.transactions import (
    CheckpointError,
    Output,
    PartitionTransaction,
    Staged,
    StateTable,
)

log = logging.getLogger(__name__)


class RecordMetadata(Protocol):
    """What a delivered batch's future holds: the offset of its first record."""

    offset: int


class Batch(Protocol):
    """The parts of `aiokafka`'s `BatchBuilder` a checkpoint uses."""

    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes | None) -> Any:
        """Add a record; None when the batch is full (and the record was not added)."""
        ...

    def record_count(self) -> int: ...


class Producer(Protocol):
    """The parts of `aiokafka.AIOKafkaProducer` a checkpoint uses."""

    def create_batch(self) -> Batch: ...

    async def send_batch(
        self, batch: Batch, topic: str, *, partition: int
    ) -> asyncio.Future[Any]: ...

    async def begin_transaction(self) -> None: ...

    async def commit_transaction(self) -> None: ...

    async def abort_transaction(self) -> None: ...

    async def send_offsets_to_transaction(self, offsets: dict[Any, int], group_id: str) -> None: ...


class Sent:
    """The last batch of one topic-partition: its future and how many records it holds."""

    __slots__ = ("count", "future")

    def __init__(self, future: asyncio.Future[Any], count: int) -> None:
        self.future = future
        self.count = count

    @property
    def last_offset(self) -> int:
        """The offset of the batch's last record (a batch's records have consecutive offsets)."""
        meta: RecordMetadata = self.future.result()
        return meta.offset + self.count - 1


class Checkpointer:
    """Owns flush -> produce -> commit -> persist, for every partition this worker owns.

    `producer_for(transactional_id)` gives the partition's transactional producer under
    exactly_once (started at assignment, which fenced the previous owner); under
    at_least_once it gives the one shared producer and `commit_offsets` commits the consumer
    group's offsets.
    """

    def __init__(
        self,
        *,
        exactly_once: bool,
        group_id: str,
        producer_for: Callable[[str], Producer],
        commit_offsets: Callable[[dict[Any, int]], Awaitable[Any]],
        on_committed: Callable[[Staged], None] | None = None,
    ) -> None:
        self.exactly_once = exactly_once
        self.group_id = group_id
        self.producer_for = producer_for
        self.commit_offsets = commit_offsets
        self.on_committed = on_committed

    async def checkpoint(self, transactions: Iterable[PartitionTransaction]) -> dict[Any, int]:
        """Commit what every transaction staged; return the input offsets committed.

        Raises `CheckpointError` when any partition's commit failed (after the others
        finished): that partition's staged work is gone, RocksDB holds its previous state.
        """
        work = [(txn, txn.take()) for txn in transactions if txn.dirty]
        if not work:
            return {}
        offsets: dict[Any, int] = {}
        for _, staged in work:
            offsets.update(staged.offsets)
        if self.exactly_once:
            results = await asyncio.gather(
                *(self._commit_transaction(txn, staged) for txn, staged in work),
                return_exceptions=True,
            )
            failed = [
                (txn.transactional_id, r)
                for (txn, _), r in zip(work, results, strict=True)
                if isinstance(r, BaseException)
            ]
            if failed:
                for tid, exc in failed:
                    log.error("checkpoint of %s failed: %r", tid, exc)
                raise CheckpointError(f"{len(failed)} of {len(work)} partitions failed to commit")
            return offsets
        await self._commit_at_least_once(work, offsets)
        return offsets

    async def _commit_transaction(self, txn: PartitionTransaction, staged: Staged) -> None:
        producer = self.producer_for(txn.transactional_id)
        await producer.begin_transaction()
        try:
            futures: list[asyncio.Future[Any]] = []
            last = await send_all(producer, txn.partition, staged, futures)
            # Every batch acked before the commit is asked for: a batch whose send failed
            # (retries exhausted, e.g. NotEnoughReplicas while the broker is starved) must
            # abort the transaction, never commit its offsets without it.
            await _acked(futures)
            if staged.offsets:
                await producer.send_offsets_to_transaction(staged.offsets, self.group_id)
            await producer.commit_transaction()
        except BaseException:
            with suppress(Exception):
                await producer.abort_transaction()
            raise
        self._persist(txn, staged, {t: s.last_offset for t, s in last.items()})

    async def _commit_at_least_once(
        self, work: list[tuple[PartitionTransaction, Staged]], offsets: dict[Any, int]
    ) -> None:
        pending: list[tuple[PartitionTransaction, Staged, dict[StateTable, Sent]]] = []
        futures: list[asyncio.Future[Any]] = [f for _, staged in work for f in staged.sent]
        try:
            for txn, staged in work:
                producer = self.producer_for(txn.transactional_id)
                last = await send_all(producer, txn.partition, staged, futures)
                pending.append((txn, staged, last))
            # Every batch acked, or the checkpoint fails and no offset moves past it.
            await _acked(futures)
        except Exception as exc:
            raise CheckpointError(f"a record could not be sent: {exc!r}") from exc
        if offsets:
            try:
                await self.commit_offsets(offsets)
            except Exception as exc:
                raise CheckpointError(f"offset commit failed: {exc!r}") from exc
        for txn, staged, last in pending:
            self._persist(txn, staged, {t: s.last_offset for t, s in last.items()})

    def _persist(
        self, txn: PartitionTransaction, staged: Staged, offsets: dict[StateTable, int]
    ) -> None:
        """Kafka has the checkpoint: now RocksDB, one write batch per table partition."""
        for table, changes in staged.tables.items():
            if table in offsets:  # a table whose staged writes were all rolled back has none
                table.store(txn.partition).write(changes, offsets[table])
        txn.settle(staged)
        if self.on_committed is not None:
            self.on_committed(staged)


async def send_outputs(
    producer: Producer, outputs: list[Output], futures: list[asyncio.Future[Any]]
) -> None:
    """Send `outputs` in batches per topic-partition (their order kept within each)."""
    by_tp: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
    for out in outputs:
        records = by_tp.get((out.topic, out.partition))
        if records is None:
            records = by_tp[(out.topic, out.partition)] = []
        records.append((out.key, out.value))
    for (topic, partition), records in by_tp.items():
        await send_records(producer, topic, partition, records, futures)


async def _acked(futures: list[asyncio.Future[Any]]) -> None:
    """Wait for every batch's delivery; raise the first failure (in send order)."""
    for fut in futures:
        if not fut.done():
            await asyncio.wait((fut,))
    for fut in futures:
        fut.result()


async def send_all(
    producer: Producer,
    partition: int,
    staged: Staged,
    futures: list[asyncio.Future[Any]],
) -> dict[StateTable, Sent]:
    """Send one changelog record per changed key, then the outputs; return each table's last.

    Every batch's future is appended to `futures`. Records of one topic-partition keep the
    order they were staged in (outputs of several topics interleave freely: each topic is
    its own log).
    """
    last: dict[StateTable, Sent] = {}
    for table, changes in staged.tables.items():
        if changes:
            last[table] = await send_records(
                producer, table.changelog_topic, partition, changes.items(), futures
            )
    await send_outputs(producer, staged.outputs, futures)
    return last


async def send_records(
    producer: Producer,
    topic: str,
    partition: int,
    records: Iterable[tuple[bytes | None, bytes | None]],
    futures: list[asyncio.Future[Any]],
) -> Sent:
    """Send `records` (key, value) to one topic-partition in as few batches as fit."""
    batch = producer.create_batch()
    for key, value in records:
        if batch.append(timestamp=None, key=key, value=value) is None:
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            batch.append(timestamp=None, key=key, value=value)  # an empty batch takes any size
    count = batch.record_count()
    fut = await producer.send_batch(batch, topic, partition=partition)
    futures.append(fut)
    return Sent(fut, count)
