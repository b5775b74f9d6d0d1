"""The worker's partition transactions, their Kafka producers and the checkpoint gate.

`app.runtime.transactions` is the protocol (stage, then Kafka, then RocksDB); this module gives it
the live parts: a `PartitionTransaction` per owned input partition group, the RocksDB stores of
Faust's tables (`app.runtime.table_stores`), and the producers. Vigil owns the transaction
lifecycle instead of Faust's transaction manager (which restarts the transaction of a partition
it keeps across a rebalance while that transaction is still open, and then reprocesses into it:
the duplicates of faust-streaming #323/#502):

- exactly_once: one transactional producer per owned partition of each agent
  (`<app_id>-<agent>-<partition>`: Faust's own format shares one id between partition N of every
  topic with the same partition count). It is started when the partition is assigned, before the
  tables are recovered and before the offsets are read: Kafka's InitProducerId fences the
  previous owner and aborts or completes its open transaction, so the changelog and the
  committed offsets this worker then reads are final. aiokafka has no KIP-447 (its
  TxnOffsetCommit carries no group generation), so that fencing per partition is what keeps a
  zombie's commit out. Each checkpoint is one transaction per partition: changelog, outputs,
  offsets.
- at_least_once: one idempotent producer; a checkpoint sends, waits for every ack, then commits
  the group's offsets.

Faust keeps group membership, fetching, table recovery and its streams; `app.faust_patches`
routes its commit and rebalance calls here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

from app.runtime import producers
from app.runtime.checkpoint import Checkpointer, send_outputs
from app.runtime.gate import Gate
from app.runtime.table_stores import FaustStateTable
from app.runtime.transactions import (
    CheckpointError,
    PartitionTransaction,
    Staged,
)

log = logging.getLogger(__name__)

#: Exit code of a worker whose partitions stayed halted after a refused checkpoint (it
#: restarts and resumes from what Kafka committed; RocksDB never got the refused work).
EXIT_CHECKPOINT_FAILED = 3

#: Rebalances a halted worker asks for (one each halt timeout) before it exits instead.
MAX_REJOINS = 3


def transactional_id(app_id: str, stream: str, partition: int) -> str:
    """The one place the transactional-id format lives: `<app_id>-<stream>-<partition>`.

    One id per input partition of one *stream* (an agent's topics: cart events and cart ticks
    are one stream), so that whoever is assigned that partition next starts that id and fences
    its previous owner. Not Faust's format (`<app_id>-<group>-<partition>`): Faust's group is
    the index of a partition *count*, so partition 3 of every 6-partition topic of every agent
    shares one id, while the assignor may give transactions/3 to one worker and cart-events/3 to
    another. Two live owners of one id fence each other at random, and a worker that already
    holds the id from one topic starts no producer when it takes over the other topic's
    partition, so the zombie it should fence can still commit (seen: an abandoned cart
    committed twice in a chaos run).
    """
    return f"{app_id}-{stream}-{partition}"


def stream_names(app: Any) -> dict[str, str]:
    """Topic -> the name of the agent that consumes it (its stream), for every agent."""
    names: dict[str, str] = {}
    for agent in app.agents.values():
        for topic in getattr(agent.channel, "topics", ()):
            names[topic] = str(agent.name)
    return names


class PartitionTransactions:
    """Every owned partition's transaction, and the checkpoint that commits them."""

    def __init__(
        self,
        app: Any,
        *,
        exactly_once: bool,
        client_kwargs: dict[str, Any],
        halt_timeout_s: float = 60.0,
    ) -> None:
        self.app = app
        self.halt_timeout_s = halt_timeout_s
        self._halted_since: float | None = None
        self._rejoins = 0  # rejoins asked for since the partitions were halted
        self.exactly_once = exactly_once
        self.client_kwargs = client_kwargs
        self.gate = Gate()
        self._by_source: dict[tuple[str, int], PartitionTransaction] = {}
        self._by_tid: dict[str, PartitionTransaction] = {}
        self._streams: dict[str, str] = {}  # topic -> stream (agent) name
        self._generation: int | None = None  # the group generation of the last assignment
        self._producers: dict[str, Any] = {}  # transactional id -> AIOKafkaProducer
        self._broken: set[str] = set()
        self._shared: Any = None  # at_least_once: one producer for every partition
        self._tables: dict[int, FaustStateTable] = {}
        self.checkpoints = 0
        self.changelog_records = 0
        self.state_updates = 0
        self.checkpointer = Checkpointer(
            exactly_once=exactly_once,
            group_id=app.conf.id,
            producer_for=self._producer_for,
            commit_offsets=self._commit_offsets,
            on_committed=self._count,
        )

    # --- what agents use ---------------------------------------------------------------------

    def table(self, faust_table: Any) -> FaustStateTable:
        """The `StateTable` of a Faust table (one object per table)."""
        state = self._tables.get(id(faust_table))
        if state is None:
            state = self._tables[id(faust_table)] = FaustStateTable(faust_table)
        return state

    def for_source(self, topic: str, partition: int) -> PartitionTransaction:
        """The transaction of the partition group that `topic`/`partition` belongs to."""
        txn = self._by_source.get((topic, partition))
        if txn is None:
            tid = self.transactional_id_for(topic, partition)
            txn = self._by_tid.get(tid)
            if txn is None:
                txn = self._by_tid[tid] = PartitionTransaction(tid, partition)
            self._by_source[(topic, partition)] = txn
        return txn

    def current_generation(self) -> int:
        """The consumer group generation this worker's assignment belongs to."""
        return int(getattr(self.app, "consumer_generation_id", 0) or 0)

    def is_stream_topic(self, topic: str) -> bool:
        """Whether an agent consumes `topic` (Faust's assignor topic, say, has no stream)."""
        if topic not in self._streams:
            self._streams = stream_names(self.app)
        return topic in self._streams and self._streams[topic] != topic

    def transactional_id_for(self, topic: str, partition: int) -> str:
        """The transactional id of the stream that `topic` belongs to, for `partition`."""
        stream = self._streams.get(topic)
        if stream is None:
            self._streams = stream_names(self.app)
            stream = self._streams.setdefault(topic, topic)
        return transactional_id(self.app.conf.id, stream, partition)

    def transactions(self) -> Iterator[PartitionTransaction]:
        return iter(list(self._by_tid.values()))

    # --- checkpoint --------------------------------------------------------------------------

    async def checkpoint(self) -> dict[Any, int]:
        """Commit every partition's staged work; return the input offsets committed.

        A checkpoint Kafka refuses leaves RocksDB and Kafka at the previous one; this worker
        cannot go on past the refused work, so the partitions it covered are *halted*: their
        events are skipped, uncommitted, until the next rebalance, after which Faust seeks every
        assigned partition back to its committed offset. A fenced zombie (its group session
        lapsed and another worker took its partitions) gets that rebalance as soon as it learns
        it left the group. Otherwise (a broker outage, say: every member may be halted, none has
        a reason to rebalance) the worker asks the group for one itself, once each session
        timeout while its group coordinator answers; after MAX_REJOINS that do not come it
        exits (EXIT_CHECKPOINT_FAILED) and its restart resumes from what Kafka committed. While
        no broker answers it waits. Meanwhile `/readyz` says it is not ready.
        """
        async with self.gate.checkpointing():
            await self._exit_if_halted_too_long()
            txns = [t for t in self._by_tid.values() if t.dirty and not t.halted]
            try:
                if txns and not self.exactly_once:
                    await self.start()
                return await self.checkpointer.checkpoint(txns)
            except CheckpointError as exc:
                log.error(
                    "checkpoint refused (%s): %d partitions halted until the next rebalance",
                    exc,
                    len(txns),
                )
                self._broken.update(t.transactional_id for t in txns)
                for txn in txns:
                    txn.halted = True
                if self._halted_since is None:
                    self._halted_since = time.monotonic()
                    await self._rejoin()
                return {}

    async def send_ahead(self) -> int:
        """at_least_once: send the outputs completed events staged, now; return how many.

        Alerts then reach their readers within `VIGIL_OUTPUT_FLUSH_S` instead of at the next
        checkpoint. The checkpoint still waits for every one of them to be acked before it
        commits the offsets past their events, so nothing is lost; a crash in between sends
        them again after the restart (at-least-once). Never under exactly_once: outputs are
        part of the partition's Kafka transaction there.
        """
        if self.exactly_once:
            return 0
        sent = 0
        async with self.gate.exclusive():
            for txn in list(self._by_tid.values()):
                if txn.halted:
                    continue
                outputs = txn.take_outputs()
                if not outputs:
                    continue
                futures: list[Any] = []
                try:
                    await self.start()  # the shared producer (started once)
                    await send_outputs(self._shared, outputs, futures)
                except Exception as exc:  # not sent: the checkpoint must fail, not skip them
                    failed = asyncio.get_running_loop().create_future()
                    failed.set_exception(exc)
                    futures.append(failed)
                txn.sent_ahead(futures)
                sent += len(outputs)
        return sent

    async def _rejoin(self) -> None:
        """Ask the group for the rebalance that resumes halted partitions (after a broker
        outage no other member may have a reason to ask for one)."""
        from app import faust_patches

        self._rejoins += 1
        log.warning("asking the group for a rebalance to resume the halted partitions")
        try:
            await faust_patches.request_rejoin(self.app.consumer)
        except Exception as exc:  # the exit below is the fallback
            log.error("could not ask for a rebalance: %r", exc)

    async def _exit_if_halted_too_long(self) -> None:
        since = self._halted_since
        if since is None or self.app.rebalancing:
            return
        if time.monotonic() - since <= self.halt_timeout_s:
            return
        from app import faust_patches

        if not faust_patches.group_coordinator_known(self.app.consumer):
            # The broker is away: no rebalance can come yet, and exiting would not bring it
            # back. The count starts again once the group answers.
            self._halted_since = time.monotonic()
            self._rejoins = 0
            return
        if self._rejoins < MAX_REJOINS:
            self._halted_since = time.monotonic()
            await self._rejoin()
            return
        log.critical(
            "partitions halted after a refused checkpoint and %d asked rebalances did not "
            "come: exiting so the restart resumes from what Kafka committed",
            self._rejoins,
        )
        sys.stderr.flush()
        os._exit(EXIT_CHECKPOINT_FAILED)

    async def halt_unserved(self) -> list[tuple[str, int]]:
        """Halt the assigned stream partitions whose table partitions were not assigned too.

        Faust's assignor gives a worker partition N of every co-partitioned topic together, so
        the tables of partition N are recovered where its events are processed. A changelog the
        group leader did not know of when it assigned is left out, and the worker would judge
        partition N on empty state. Such partitions are skipped, uncommitted, until the next
        rebalance, which the worker asks for at once. Returns what was halted.
        """
        changelogs = set(self.app.tables.changelog_topics)
        actives = set(self.app.assignor.assigned_actives())
        tables = {(tp.topic, tp.partition) for tp in actives if tp.topic in changelogs}
        unserved = sorted(
            (tp.topic, tp.partition)
            for tp in actives
            if tp.topic not in changelogs
            and self.is_stream_topic(tp.topic)
            and any((changelog, tp.partition) not in tables for changelog in changelogs)
        )
        if unserved:
            log.error(
                "assigned without their table partitions (the group leader did not know a "
                "changelog topic): %s; halted until the next rebalance",
                [f"{t}/{p}" for t, p in unserved],
            )
            for topic, partition in unserved:
                self.for_source(topic, partition).halted = True
            if self._halted_since is None:
                self._halted_since = time.monotonic()
            await self._rejoin()
        return unserved

    @property
    def healthy(self) -> bool:
        """False while partitions are halted after a refused checkpoint."""
        return self._halted_since is None

    def drop_all(self) -> None:
        """Forget every partition's transaction (staged work included): after a rebalance."""
        self.gate.hold_until_checkpointed()
        self._by_source.clear()
        self._by_tid.clear()
        self._halted_since = None
        self._rejoins = 0

    def _count(self, staged: Staged) -> None:
        self.checkpoints += 1
        self.changelog_records += staged.changelog_records

    # --- producers ---------------------------------------------------------------------------

    def _producer_for(self, tid: str) -> Any:
        if not self.exactly_once:
            if self._shared is None:
                raise CheckpointError("the producer is not started")
            return self._shared
        producer = self._producers.get(tid)
        if producer is None:
            raise CheckpointError(f"no transactional producer for {tid} (not assigned)")
        return producer

    async def start(self) -> None:
        """at_least_once: start the shared producer (exactly_once starts per assignment)."""
        if not self.exactly_once and self._shared is None:
            self._shared = await producers.start_shared(self.client_kwargs)

    async def assign(self, tids: set[str], generation: int | None = None) -> None:
        """exactly_once: own exactly these partitions' transactional ids.

        Producers of partitions no longer owned are stopped; new ones are started and wait
        for their producer id, which fences the previous owner and ends its transaction.
        A producer is kept only across consecutive group generations: a gap means this worker
        missed a rebalance (its session lapsed: it was a zombie), so another worker may have
        owned, and started, these ids meanwhile; every id is started afresh then.
        """
        self.drop_all()
        missed = (
            generation is None or self._generation is None or generation != self._generation + 1
        )
        self._generation = generation
        for tid in list(self._producers):
            if missed or tid not in tids or tid in self._broken:
                producer = self._producers.pop(tid)
                with suppress(Exception):
                    await producer.stop()
        self._broken.clear()
        new = sorted(tids - set(self._producers))
        if new:
            started = await asyncio.gather(*(self._start_transactional(t) for t in new))
            self._producers.update(zip(new, started, strict=True))
            log.info("transactional producers started (previous owners fenced): %s", new)

    async def _start_transactional(self, tid: str) -> Any:
        return await producers.start_transactional(self.client_kwargs, tid)

    async def stop(self) -> None:
        producers = list(self._producers.values())
        if self._shared is not None:
            producers.append(self._shared)
        self._producers.clear()
        self._shared = None
        for producer in producers:
            with suppress(Exception):
                await producer.stop()

    async def _commit_offsets(self, offsets: dict[Any, int]) -> None:
        from app import faust_patches

        await faust_patches.commit_consumer_offsets(self.app.consumer, offsets)
