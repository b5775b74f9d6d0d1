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

from faust.streams import current_event

log = logging.getLogger(__name__)


class CommitGate:
    """Shared while events are processed, exclusive while offsets are committed."""

    def __init__(self) -> None:
        self._in_flight = 0
        self._committing = False
        self._changed = asyncio.Condition()
        self._flushers: list[Callable[[], Awaitable[None]]] = []

    def add_flusher(self, flush: Callable[[], Awaitable[None]]) -> None:
        """Run `flush` inside every commit, before the offsets are computed.

        Agents queue the records of finished events (`app.outbox.Outbox`) and send them in
        batches; whatever is still queued at a commit must reach the producer first, or the
        offsets would cover events whose records were never sent.
        """
        self._flushers.append(flush)

    async def flush(self) -> None:
        """Send every record agents have queued (called inside `commit()`)."""
        for flush in self._flushers:
            await flush()

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

    def install(self) -> None:
        """Patch Faust's consumer and transaction manager classes (idempotent).

        Class-level, decided at call time: touching `app.consumer` before the worker runs would
        create the consumer while `app.in_transaction` still reads False, and Faust caches that
        (the whole worker would then run without transactions). Under at_least_once the
        other patches call straight through, and a commit only first hands the records agents
        have queued to the producer (Faust then flushes the producer before it commits the
        offsets of finished events, which is all that guarantee needs).
        """
        from faust.transport.consumer import Consumer, TransactionManager

        if getattr(Consumer.force_commit, "__vigil__", False):
            return
        gate = self
        force_commit = Consumer.force_commit
        perform_seek = Consumer.perform_seek
        resume_flow = Consumer.resume_flow
        send = TransactionManager.send

        async def gated_force_commit(consumer: Any, *args: Any, **kwargs: Any) -> bool:
            # The offsets are computed inside the gate, from events that are whole: they cover
            # every output already sent (wrapping only the final commit call would not).
            # Both guarantees: queued records of acked events must reach the producer first.
            async with gate.commit():
                await gate.flush()
                if consumer.app.in_transaction:
                    await consumer.app.producer.buffer.flush()  # Faust's own writes join it
                    if os.environ.get("DEBUG_VIGIL_COMMITS"):
                        _log_commit_state(consumer)
                return bool(await force_commit(consumer, *args, **kwargs))

        async def stable_perform_seek(consumer: Any) -> None:
            # Faust resumes the stream partitions *before* it seeks them and before it resumes
            # the flow. Meanwhile its fetch loop drains records it cannot deliver (flow is
            # suspended) yet still advances its read offset past them: the events are lost,
            # or the partition stalls behind a gap. Keep them paused until the flow resumes.
            held = {
                tp for tp in consumer._get_active_partitions() if not consumer._is_changelog_tp(tp)
            }
            consumer.pause_partitions(held)
            consumer._vigil_held = held
            if consumer.app.in_transaction:
                await wait_for_stable_offsets(consumer)
            await perform_seek(consumer)

        def resume_flow_with_held(consumer: Any) -> None:
            resume_flow(consumer)
            held = getattr(consumer, "_vigil_held", None)
            if held:
                consumer._vigil_held = set()
                consumer.resume_partitions(held & set(consumer.assignment()))

        async def event_bound_send(manager: Any, *args: Any, **kwargs: Any) -> Any:
            return await send_in_event_transaction(manager, send, *args, **kwargs)

        for fn in (
            gated_force_commit,
            stable_perform_seek,
            resume_flow_with_held,
            event_bound_send,
        ):
            fn.__vigil__ = True  # type: ignore[attr-defined,union-attr]
        Consumer.force_commit = gated_force_commit  # type: ignore[method-assign,assignment]
        Consumer.perform_seek = stable_perform_seek  # type: ignore[method-assign,assignment]
        Consumer.resume_flow = resume_flow_with_held  # type: ignore[method-assign,assignment]
        TransactionManager.send = event_bound_send  # type: ignore[method-assign,assignment]


async def wait_for_stable_offsets(consumer: Any, settle_s: float = 0.5, rounds: int = 40) -> None:
    """Return once the committed offsets of the assigned partitions have stopped moving.

    A worker killed while committing leaves its last offsets pending in the group coordinator
    until its transaction is resolved, and aiokafka's OffsetFetch cannot ask for stable offsets
    (KIP-447's require_stable): reading (never seeking) until two reads `settle_s` apart agree
    lets Faust then seek once, to offsets that will not move under it.
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


def _log_commit_state(consumer: Any) -> None:
    """Diagnostics (DEBUG_VIGIL_COMMITS=1): acked and committed offsets per partition."""
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


async def send_in_event_transaction(
    manager: Any,
    original: Callable[..., Awaitable[Any]],
    topic: str,
    key: bytes | None,
    value: bytes | None,
    partition: int | None,
    timestamp: float | None,
    headers: Any,
    *,
    transactional_id: str | None = None,
) -> Any:
    """Send in the transaction of the event being processed (its partition's producer).

    Faust picks the producer from the consumer's metadata of the *output* topic, which the
    consumer never has, and then sends outside any transaction.
    """
    event = current_event()
    if event is None or partition is None:
        return await original(manager, topic, key, value, partition, timestamp, headers)
    app = manager.app
    source = event.message
    group = app.assignor.group_for_topic(source.topic)
    return await manager.producer.send(
        topic,
        key,
        value,
        partition,
        timestamp,
        headers,
        transactional_id=f"{app.conf.id}-{group}-{source.partition}",
    )


async def fence_previous_transactions(
    client_kwargs: dict[str, Any], transactional_ids: list[str]
) -> None:
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
        producer = AIOKafkaProducer(**client_kwargs, transactional_id=transactional_id)
        await producer.start()  # InitProducerId: aborts or completes the old transaction
        await producer.stop()
    if transactional_ids:
        log.warning("resolved %d transactions of the previous run", len(transactional_ids))
