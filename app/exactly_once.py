"""What makes Faust's exactly-once exact for Vigil: outputs inside the transaction, commits
only between events.

Outputs. Faust picks the transactional producer of a send from the consumer's metadata of the
*output* topic; the consumer never subscribes to output topics, so it has no metadata for them
and Faust silently sends outside any transaction (every alert visible at once, and again when
a killed worker's events are processed a second time). Vigil binds every send made while
processing an event to the transaction of that event's partition: the same producer that
commits the event's offset.

Faust commits offsets (and, with exactly_once, the Kafka transaction) from a timer task that
runs whenever an agent awaits. An agent that has sent an event's alert but not yet finished the
event (it acks the event only when it asks for the next one) can thus see the transaction
committed with the alert inside and the event's offset outside: killed then, the restarted
worker processes the event again and read_committed readers see the alert twice (the duplicates
of faust-streaming #517). Table writes have the mirror problem: they are buffered (`send_soon`)
and a commit that does not flush them first commits the offset without the state change.

The gate is a writer-preferring lock: each agent holds it shared while it processes one event;
a commit takes it exclusively, flushes the buffered table writes into the transaction, then
commits. A commit therefore always covers whole events, outputs and state together.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import faust
from faust.streams import current_event

log = logging.getLogger(__name__)


class CommitGate:
    """Shared while events are processed, exclusive while offsets are committed."""

    def __init__(self) -> None:
        self._in_flight = 0
        self._committing = False
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def event(self) -> AsyncIterator[None]:
        """Hold while processing one event (between taking it and asking for the next)."""
        if self._committing:
            async with self._changed:
                await self._changed.wait_for(lambda: not self._committing)
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0 and self._committing:
                async with self._changed:
                    self._changed.notify_all()

    @asynccontextmanager
    async def commit(self) -> AsyncIterator[None]:
        """Hold while committing: no event is half processed inside."""
        async with self._changed:
            while self._committing:
                await self._changed.wait()
            self._committing = True
            try:
                await self._changed.wait_for(lambda: self._in_flight == 0)
            except BaseException:
                self._committing = False
                self._changed.notify_all()
                raise
        try:
            yield
        finally:
            async with self._changed:
                self._committing = False
                self._changed.notify_all()

    def install(self, app: faust.App) -> None:
        """Run the consumer's commits inside the gate, and bind sends (idempotent).

        The gate wraps `force_commit`, which computes the offsets to commit from the events
        acknowledged so far and then commits them: computing them inside the gate is what makes
        them cover every output already sent. (Wrapping only the final commit call would commit
        offsets computed before the in-flight events finished, with those events' outputs.)
        """
        consumer: Any = app.consumer
        if not app.in_transaction:
            # at_least_once: Faust flushes the producer before committing offsets of acked
            # (finished) events, which is all that guarantee needs; the gate would only stall
            # processing while the flush waits for the broker.
            return
        bind_sends_to_event_transaction(app)
        seek_to_stable_offsets(app)
        original: Callable[..., Awaitable[bool]] = consumer.force_commit
        if getattr(original, "__vigil_gate__", False):
            return
        buffer = app.producer.buffer
        gate = self

        async def gated_commit(*args: Any, **kwargs: Any) -> bool:
            async with gate.commit():
                await buffer.flush()  # table changelog writes join this transaction
                if os.environ.get("DEBUG_VIGIL_COMMITS"):
                    _log_commit_state(consumer)
                return await original(*args, **kwargs)

        gated_commit.__vigil_gate__ = True  # type: ignore[attr-defined]
        consumer.force_commit = gated_commit


def seek_to_stable_offsets(app: faust.App, settle_s: float = 0.5, max_rounds: int = 40) -> None:
    """Start each partition from its committed offset once that offset has stopped moving.

    A worker killed while committing leaves its last offsets pending in the group coordinator
    until the transaction's markers are written. aiokafka's OffsetFetch cannot ask for stable
    offsets (KIP-447's require_stable), so the new worker may read the previous, stale offset,
    while its fetcher later starts from the fresh one: Faust then waits forever for the offsets
    in between to be acknowledged and stops committing that partition. Re-reading the committed
    offsets until two reads `settle_s` apart agree, and seeking again when they moved, keeps
    Faust's idea of the committed offset and the fetch position the same.
    """
    consumer: Any = app.consumer
    original: Callable[[], Awaitable[None]] = consumer.perform_seek
    if getattr(original, "__vigil_stable__", False):
        return

    thread: Any = consumer._thread

    def _fetch() -> Awaitable[Any]:  # runs on the consumer thread's loop
        client = thread._ensure_consumer()
        return client._coordinator.fetch_committed_offsets(set(client.assignment()))

    async def read_committed() -> dict[Any, int]:
        offsets = await thread.call_thread(_fetch)
        return {tp: meta.offset for tp, meta in offsets.items()}

    async def perform_seek() -> None:
        # Read (never seek) until stable, then let Faust seek once: a second seek after
        # messages were delivered would deliver them twice.
        previous = await read_committed()
        for _ in range(max_rounds):
            await asyncio.sleep(settle_s)
            current = await read_committed()
            if current == previous:
                break
            log.warning(
                "committed offsets still moving, waiting: %s",
                {
                    str(tp): (previous.get(tp), off)
                    for tp, off in current.items()
                    if previous.get(tp) != off
                },
            )
            previous = current
        await original()

    perform_seek.__vigil_stable__ = True  # type: ignore[attr-defined]
    consumer.perform_seek = perform_seek


def _log_commit_state(consumer: Any) -> None:
    """Diagnostics (DEBUG_VIGIL_COMMITS=1): acked offsets and committed offsets per partition."""
    state = {
        f"{tp.topic}/{tp.partition}": (
            min(acked) if acked else None,
            max(acked) if acked else None,
            len(acked),
            consumer._committed_offset.get(tp),
        )
        for tp, acked in consumer._acked.items()
        if acked or consumer._committed_offset.get(tp) is not None
    }
    log.warning("commit: acked (min, max, n, committed) %s", state)


def bind_sends_to_event_transaction(app: faust.App) -> None:
    """Send every output produced while processing an event in that event's transaction."""
    manager: Any = app.consumer.transactions
    original: Callable[..., Awaitable[Any]] = manager.send
    if getattr(original, "__vigil_bound__", False):
        return
    app_id = app.conf.id

    async def send(
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        event = current_event()
        if event is None or partition is None:
            return await original(topic, key, value, partition, timestamp, headers)
        source = event.message
        group = app.assignor.group_for_topic(source.topic)
        return await manager.producer.send(
            topic,
            key,
            value,
            partition,
            timestamp,
            headers,
            transactional_id=f"{app_id}-{group}-{source.partition}",
        )

    send.__vigil_bound__ = True  # type: ignore[attr-defined]
    manager.send = send


async def fence_previous_transactions(bootstrap_servers: str, transactional_ids: list[str]) -> None:
    """Resolve the open transactions a killed predecessor left, before consuming anything.

    A worker killed mid-commit leaves its Kafka transactions open (or committing) until a
    producer with the same transactional id starts, and until then the group's committed
    offsets are not stable: a new consumer can start from an offset that is then rolled back
    or moved, and skip or repeat events. Starting (and stopping) a producer for each id the
    dead worker held aborts or completes those transactions first. The caller does this only
    when the predecessor died less than a session timeout ago, so no other worker can have
    taken those ids over yet (fencing a live worker would crash it).
    """
    from aiokafka import AIOKafkaProducer

    for transactional_id in transactional_ids:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, transactional_id=transactional_id
        )
        await producer.start()  # InitProducerId: aborts or completes the old transaction
        await producer.stop()
    if transactional_ids:
        log.warning("resolved %d transactions of the previous run", len(transactional_ids))
