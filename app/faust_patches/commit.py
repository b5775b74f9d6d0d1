"""Vigil's changes to Faust's commit and rebalance paths (installed by `app.faust_patches`).

Each patch names the upstream report it works around; every private name used is listed in
`PRIVATE_NAMES`.

1. Commits. Faust's commit (`Consumer.force_commit`) is replaced by Vigil's checkpoint
   (`app.runtime.partitions.PartitionTransactions.checkpoint`): staged state, outputs and offsets
   of each
   partition in one Kafka transaction, then RocksDB. Faust's own commit computes offsets from
   acks, which it gives an event only when its agent asks for the next one, and under
   exactly_once it commits whatever sends happened meanwhile (faust-streaming #517, #177).
2. The transaction lifecycle. Faust's transaction manager restarts the transaction of every
   partition it keeps across a rebalance while it is still open (`IN_TRANSACTION ->
   IN_TRANSACTION`), then seeks back and reprocesses into it: both copies commit
   (faust-streaming #323, #502; aiokafka #844). `TransactionManager.on_rebalance` is routed to
   Vigil's producers per partition instead (`app.runtime.partitions`).
3. Seeks. Faust resumes the input partitions before it seeks them and before it resumes its
   flow; meanwhile its fetch loop drops records it cannot deliver yet moves its read offset
   past them (lost or stalled partitions after a restart, cf. faust-streaming #216). They
   stay paused from the seek until the flow resumes outside a table recovery. Under
   exactly_once the committed offsets are read until stable first (aiokafka's OffsetFetch has
   no KIP-447 `require_stable`).
4. Highwaters. Under exactly_once Faust's table recovery takes a changelog's end from the
   consumer's last stable offset, which aiokafka reports as -1 for a partition it has not
   fetched since the rebalance: a worker that keeps a changelog partition then crashes with
   `ConsistencyError: The persisted offset ... is higher than the last offset` (seen with
   three workers). The end is asked from the broker instead (ListOffsets, with the
   consumer's isolation level: the last stable offset under read_committed).
5. A rebalance during shutdown. Faust answers an assignment that arrives while the worker
   stops by closing aiokafka's client and coordinator from the app's event loop
   (`App._on_rebalance_when_stopped`), while the consumer runs on its own thread's loop; with
   uvloop a SIGTERMed worker then died of a segmentation fault (exit -11, seen in make
   chaos). Faust's stop closes the consumer on its own loop anyway: the callback only logs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger(__name__)

#: (module, class, attribute) of every private name Vigil relies on.
PRIVATE_NAMES: tuple[tuple[str, str, str], ...] = (
    ("faust.transport.consumer", "Consumer", "_acked"),
    ("faust.transport.consumer", "Consumer", "_acked_index"),
    ("faust.transport.consumer", "Consumer", "_committed_offset"),
    ("faust.transport.consumer", "Consumer", "_read_offset"),
    ("faust.transport.consumer", "Consumer", "_get_active_partitions"),
    ("faust.transport.consumer", "Consumer", "_is_changelog_tp"),
    ("faust.transport.consumer", "ThreadDelegateConsumer", "_commit"),
    ("faust.transport.consumer", "ThreadDelegateConsumer", "_thread"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread", "_highwaters"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread", "_ensure_consumer"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread", "tp_last_committed_at"),
    ("faust.stores.rocksdb", "Store", "_db_for_partition"),
    ("faust.stores.rocksdb", "Store", "offset_key"),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer", "_coordinator"),
    ("aiokafka.consumer.group_coordinator", "GroupCoordinator", "request_rejoin"),
    ("aiokafka.consumer.group_coordinator", "GroupCoordinator", "coordinator_id"),
)

#: Public Faust methods Vigil replaces (their signatures are checked by the same test).
PATCHED: tuple[tuple[str, str, str], ...] = (
    ("faust.transport.consumer", "Consumer", "force_commit"),
    ("faust.transport.consumer", "Consumer", "perform_seek"),
    ("faust.transport.consumer", "Consumer", "resume_flow"),
    ("faust.transport.consumer", "TransactionManager", "on_rebalance"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread", "_highwaters"),
    ("faust.app.base", "App", "_on_rebalance_when_stopped"),
)

_runtime: Any = None  # app.runtime.partitions.PartitionTransactions, set by install()


def install(runtime: Any) -> None:
    """Route Faust's commit and rebalance calls to `runtime` (idempotent, class-level).

    Class-level and decided at call time: touching `app.consumer` before the worker runs would
    create the consumer too early (Faust caches `in_transaction` then).
    """
    global _runtime
    from faust.transport.consumer import Consumer, TransactionManager
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if runtime is not None:
        _runtime = runtime
    if getattr(Consumer.force_commit, "__vigil__", False):
        return
    perform_seek = Consumer.perform_seek
    resume_flow = Consumer.resume_flow

    async def checkpoint_commit(consumer: Any, *args: Any, **kwargs: Any) -> bool:
        # Faust's offsets (from acks) would lag the events already applied; Vigil's
        # transactions carry their own offsets (patch 1).
        committed = await _runtime.checkpoint()
        _after_commit(consumer, committed)
        return bool(committed)

    async def rebalance_producers(
        manager: Any, assigned: Any, revoked: Any, newly_assigned: Any
    ) -> None:
        # Vigil's producers per partition, not Faust's (patch 2).
        app = manager.app
        changelogs = app.tables.changelog_topics
        tids = {
            _runtime.transactional_id_for(tp.topic, tp.partition)
            for tp in assigned
            if tp.topic not in changelogs
            and not app.assignor.is_standby(tp)
            and _runtime.is_stream_topic(tp.topic)
        }
        await _runtime.assign(tids, getattr(app, "consumer_generation_id", None))

    async def stable_perform_seek(consumer: Any) -> None:
        # Patch 3. The hold accumulates: Faust may seek twice before it resumes the flow.
        held = {tp for tp in consumer._get_active_partitions() if not consumer._is_changelog_tp(tp)}
        consumer.pause_partitions(held)
        consumer._vigil_held = getattr(consumer, "_vigil_held", set()) | held
        if consumer.app.in_transaction:
            await wait_for_stable_offsets(consumer)
        await perform_seek(consumer)
        if os.environ.get("DEBUG_VIGIL_COMMITS"):
            sought = {f"{tp.topic}/{tp.partition}": consumer._read_offset.get(tp) for tp in held}
            log.warning("seek (generation %s): %s", consumer.app.consumer_generation_id, sought)

    def resume_flow_with_held(consumer: Any) -> None:
        resume_flow(consumer)
        held = getattr(consumer, "_vigil_held", None)
        # Faust also resumes the flow while it reads the changelogs (for the changelogs):
        # held stream partitions wait for the seek at the end of that recovery, or they
        # would be processed, and checkpointed, before it (past records Faust dropped).
        if held and not consumer.app.in_recovery:
            consumer._vigil_held = set()
            consumer.resume_partitions(held & set(consumer.assignment()))

    async def broker_highwaters(thread: Any, partitions: Any) -> Any:
        # Patch 4: ListOffsets with the consumer's isolation level, never the cached LSO.
        return await thread._ensure_consumer().end_offsets(list(partitions))

    def rebalance_when_stopped(app: Any) -> None:
        # Patch 5: the stop under way closes the consumer on its own loop.
        log.info("partitions assigned while stopping: ignored")

    for fn in (
        rebalance_when_stopped,
        checkpoint_commit,
        rebalance_producers,
        stable_perform_seek,
        resume_flow_with_held,
        broker_highwaters,
    ):
        fn.__vigil__ = True  # type: ignore[attr-defined,union-attr]
    from faust.app.base import App

    App._on_rebalance_when_stopped = rebalance_when_stopped  # type: ignore[method-assign,assignment]
    Consumer.force_commit = checkpoint_commit  # type: ignore[method-assign,assignment]
    Consumer.perform_seek = stable_perform_seek  # type: ignore[method-assign,assignment]
    Consumer.resume_flow = resume_flow_with_held  # type: ignore[method-assign,assignment]
    TransactionManager.on_rebalance = rebalance_producers  # type: ignore[method-assign,assignment]
    AIOKafkaConsumerThread._highwaters = broker_highwaters  # type: ignore[method-assign,assignment]


def _after_commit(consumer: Any, offsets: dict[Any, int]) -> None:
    """Faust's bookkeeping after a commit: committed offsets (lag, acks) and spent acks."""
    consumer._committed_offset.update(offsets)
    # Faust's stalled-partition check reads this (it warns of partitions "not committed").
    now = time.monotonic()
    consumer._thread.tp_last_committed_at.update({tp: now for tp in offsets})
    for tp, acked in consumer._acked.items():
        acked.clear()
        consumer._acked_index[tp].clear()
    if os.environ.get("DEBUG_VIGIL_COMMITS") and offsets:
        log.warning(
            "commit (generation %s): %s",
            consumer.app.consumer_generation_id,
            {f"{tp.topic}/{tp.partition}": o for tp, o in offsets.items()},
        )


async def commit_consumer_offsets(consumer: Any, offsets: dict[Any, int]) -> None:
    """at_least_once: commit the group's offsets (Faust's consumer thread does the call)."""
    from app.runtime.transactions import CheckpointError

    if not await consumer._commit(offsets):
        raise CheckpointError("the group refused the offset commit (rebalanced?)")


async def request_rejoin(consumer: Any) -> None:
    """Make this worker rejoin its group, so that a rebalance happens now.

    A refused checkpoint halts its partitions until Faust seeks them back to the committed
    offsets, which it does at a rebalance only. After a broker outage no other member has a
    reason to rebalance (they may all be in the same state), so the worker asks for one itself:
    aiokafka's rejoin (eager protocol) revokes and reassigns every partition, and Faust's
    rebalance path drops buffered events and seeks. Faust has no public way to ask for it.
    """
    thread = consumer._thread

    async def _rejoin() -> None:  # runs on the consumer thread's loop
        thread._ensure_consumer()._coordinator.request_rejoin()

    await thread.call_thread(_rejoin)


def group_coordinator_known(consumer: Any) -> bool:
    """Whether this worker's consumer knows its group coordinator (False while no broker
    answers): a rebalance a halted worker asks for can only come once it does."""
    try:
        return consumer._thread._ensure_consumer()._coordinator.coordinator_id is not None
    except Exception:  # no consumer yet, or it is stopping
        return False


def partition_store(table: Any, partition: int) -> tuple[Any, bytes]:
    """A Faust RocksDB table's store of one partition (opened as Faust opens it) and the key
    under which Faust keeps the changelog offset that store reflects."""
    store = table.data
    return store._db_for_partition(partition), store.offset_key


async def wait_for_stable_offsets(consumer: Any, settle_s: float = 0.5, rounds: int = 40) -> None:
    """Return once the committed offsets of the assigned partitions have stopped moving.

    The previous owner's transaction was ended when this worker's producer for the partition
    started (`app.runtime.partitions`); reading (never seeking) until two reads `settle_s`
    apart agree also covers a commit still being applied by the group coordinator.
    """
    thread = consumer._thread

    def _fetch() -> Awaitable[Any]:  # runs on the consumer thread's loop
        client = thread._ensure_consumer()
        return client._coordinator.fetch_committed_offsets(set(client.assignment()))

    async def read() -> dict[Any, int]:
        offsets = await thread.call_thread(_fetch)
        return {tp: meta.offset for tp, meta in offsets.items()}

    previous = await read()
    for _ in range(rounds):
        await asyncio.sleep(settle_s)
        current = await read()
        if current == previous:
            return
        log.warning("committed offsets still moving, waiting: %s", current)
        previous = current
