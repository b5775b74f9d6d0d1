"""Table recovery at Kafka speed: changelogs are read in bulk before Faust's own recovery.

Faust recovers a table by passing every changelog record through its per-event machinery
(conductor, queue, one `asyncio.wait_for` task per record): about 5 000 records a second
here, so a 1 M-key table took minutes to restore after a crash or a rebalance. Vigil runs a
bulk restore first, on every rebalance, for each active changelog partition this worker was
assigned: a plain aiokafka consumer reads the partition from the offset the local store already
holds up to its end, and writes it to the partition's RocksDB in write batches, exactly as
Faust's `apply_changelog_batch` would (value = put, tombstone = delete), then records the
changelog offset the store now holds (Faust's own `set_persisted_offset`). Faust's recovery
then starts from that offset and reads only what arrived meanwhile; if the bulk restore fails
half way, what it wrote is a consistent prefix and Faust reads the rest.

Under exactly_once the restore reads read_committed, like Faust: aborted writes are skipped.

Standby partitions (`VIGIL_STANDBY_REPLICAS`) are restored the same way: in bulk at each
rebalance, then fed by Faust's standby recovery, which applies their changelog records in
batches (`standby_buffer_size`) with the offset they reach, exactly as the bulk restore does.
Faust applies those buffers when partitions are revoked; whatever its recovery still holds at
the assignment (records it took from its queue since) it would apply only when its recovery
starts, *after* the bulk restore, writing older values over the newer ones just restored and
moving the store's offset back. Vigil applies them first (`flush_kept_buffers`), and drops the
records of partitions this worker no longer has (their stores keep their older, consistent
offset). So a store's values and offset only move forward, and when a standby becomes active
the survivor reads only the changelog records it had not fetched yet (measured by
tests/e2e/test_failover.py: none, with 100 000 cards on the killed worker).

Also: Faust decides that exactly_once recovery is over only after two 5-second idle waits in a
row (a changelog ends with a transaction marker, an offset that never arrives as a record).
Vigil caps that idle wait at `IDLE_TIMEOUT_S`, so the same check runs within half a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from app.faust_patches.access import tables_by_changelog

log = logging.getLogger(__name__)

PRIVATE_NAMES: tuple[tuple[str, str, str], ...] = (
    ("faust.stores.rocksdb", "Store", "_db_for_partition"),
    # Not private by name, but Faust's internal bookkeeping: the changelog records its recovery
    # holds before applying them (flush_kept_buffers).
    ("faust.tables.recovery", "Recovery", "buffers"),
)
#: Replaced: Faust's recovery on rebalance, and the `asyncio` its recovery module sees.
PATCHED: tuple[tuple[str, str, str], ...] = (
    ("faust.tables.recovery", "Recovery", "on_rebalance"),
    ("faust.tables.recovery", "", "asyncio"),
)

T = TypeVar("T")

#: Longest wait for the next changelog record before Faust re-checks whether recovery is done.
IDLE_TIMEOUT_S = 0.25
#: Records fetched per poll by the bulk restore (one RocksDB write batch per partition each).
BULK_POLL_RECORDS = 20_000
#: How long one poll of the bulk restore waits for records. Short: a store that is already at
#: the end still has the changelog's last transaction marker ahead of it (it records the last
#: *record's* offset), and only a fetch (which returns nothing) moves the position past it, so
#: a standby taking over waited a whole poll for nothing (1 s of its failover, measured).
BULK_POLL_MS = 250
#: Empty polls in a row after which the bulk restore leaves a partition to Faust's recovery.
BULK_IDLE_POLLS = 12


class _RecoveryAsyncio:
    """The `asyncio` module as Faust's recovery module sees it: shorter idle waits."""

    __vigil__ = True

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def wait_for(aw: Awaitable[T], timeout: float | None = None) -> T:
        if timeout is not None:
            timeout = min(timeout, IDLE_TIMEOUT_S)
        return await asyncio.wait_for(aw, timeout=timeout)


async def bulk_restore(app: Any, client_kwargs: dict[str, Any]) -> int:
    """Read every assigned changelog partition (active or standby) into its store, from the
    offset the store holds to the end; return the records applied."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    changelogs = tables_by_changelog(app)
    assigned = set(app.assignor.assigned_actives()) | set(app.assignor.assigned_standbys())
    actives = [tp for tp in assigned if tp.topic in changelogs]
    if not actives:
        return 0
    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        **client_kwargs,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed" if app.in_transaction else "read_uncommitted",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    applied = 0
    try:
        by_tp = {TopicPartition(tp.topic, tp.partition): tp for tp in actives}
        consumer.assign(list(by_tp))
        ends = await consumer.end_offsets(list(by_tp))
        pending: dict[Any, tuple[Any, Any]] = {}
        for ktp, tp in by_tp.items():
            store = changelogs[tp.topic].data
            persisted = store.persisted_offset(tp)
            start = persisted + 1 if persisted is not None else 0
            if start < ends[ktp]:
                consumer.seek(ktp, start)
                pending[ktp] = (store, tp)
        idle = 0
        while pending and idle < BULK_IDLE_POLLS:
            batches = await consumer.getmany(
                *pending, timeout_ms=BULK_POLL_MS, max_records=BULK_POLL_RECORDS
            )
            idle = 0 if batches else idle + 1
            for ktp, records in batches.items():
                store, tp = pending[ktp]
                applied += _apply(store, tp, records)
            for ktp in list(pending):
                if await consumer.position(ktp) >= ends[ktp]:
                    store, tp = pending.pop(ktp)
                    _at_end(store, tp, ends[ktp])
    finally:
        await consumer.stop()
    # Always said: after a SIGKILL this is the tail committed after the stores' last write.
    log.info(
        "bulk restore: %d changelog records into %d partitions in %.1f s "
        "(the tail after the offsets the local stores hold)",
        applied,
        len(actives),
        time.monotonic() - started,
    )
    return applied


def flush_kept_buffers(recovery: Any, assigned: Any) -> int:
    """Apply the changelog records Faust's recovery buffered for partitions still assigned.

    Faust's recovery buffers up to `standby_buffer_size` records per table and applies them
    (with their offset) when the buffer is full, when partitions are revoked, or at the next
    recovery start, which comes *after* Vigil's bulk restore: applying what is left first keeps
    the store's values and its changelog offset moving forward only. Records of partitions not
    in `assigned` are dropped: their stores are Faust's to close, and keep the older offset
    they reflect. Returns the records applied.
    """
    kept = set(assigned)
    applied = 0
    for table, buffer in list(recovery.buffers.items()):
        if not buffer:
            continue
        events = [event for event in buffer if event.message.tp in kept]
        buffer.clear()
        if events:
            table.apply_changelog_batch(events)
            applied += len(events)
    return applied


def _at_end(store: Any, tp: Any, end: int) -> None:
    """The store has every record before `end`: record `end - 1` as its offset.

    A changelog written in transactions ends with a commit marker, an offset that is never a
    record, so a store that holds the last record is still one offset "behind": Faust then
    resumes the partition and waits for its aborted-transaction check (about 2 s of every
    takeover, measured). The position reached `end` (read_committed: the last stable offset,
    below which every transaction is decided), so `end - 1` is what the store reflects.
    """
    persisted = store.persisted_offset(tp)
    if persisted is None or persisted < end - 1:
        store.set_persisted_offset(tp, end - 1)


def _apply(store: Any, tp: Any, records: list[Any]) -> int:
    """One write batch per fetch, then the offset it brings the store to (as Faust does)."""
    import rocksdict

    if not records:
        return 0
    batch = rocksdict.WriteBatch(raw_mode=True)
    for record in records:
        if record.value is None:
            batch.delete(record.key)
        else:
            batch.put(record.key, record.value)
    store._db_for_partition(tp.partition).write(batch)
    store.set_persisted_offset(tp, records[-1].offset)
    return len(records)


def install(client_kwargs: dict[str, Any]) -> None:
    """Patch Faust's recovery: bulk restore on rebalance, short idle waits (idempotent)."""
    from faust.tables import recovery

    if getattr(recovery.Recovery.on_rebalance, "__vigil__", False):
        return
    recovery.asyncio = _RecoveryAsyncio()  # type: ignore[assignment]
    original = recovery.Recovery.on_rebalance

    async def on_rebalance(
        self: Any,
        assigned: Any,
        revoked: Any,
        newly_assigned: Any,
        generation_id: int = 0,
    ) -> None:
        if self.app.should_stop:  # a SIGTERM during the rebalance: the tables are closing
            return
        if generation_id == self.app.consumer_generation_id:
            try:
                flushed = flush_kept_buffers(self, assigned)
                if flushed:
                    log.info("applied %d buffered standby changelog records", flushed)
                await bulk_restore(self.app, client_kwargs)
            except Exception:
                log.exception("bulk restore failed; Faust's recovery reads the changelogs")
        if self.app.should_stop:
            # The worker began to stop while the bulk restore ran: Faust has closed (or is
            # closing) the tables' stores, and its recovery would open them again and crash
            # on RocksDB's lock (a SIGTERM during a rebalance then exited 1, not 0).
            log.info("stopping: table recovery of this rebalance skipped")
            return
        await original(self, assigned, revoked, newly_assigned, generation_id)

    on_rebalance.__vigil__ = True  # type: ignore[attr-defined]
    recovery.Recovery.on_rebalance = on_rebalance  # type: ignore[method-assign]
