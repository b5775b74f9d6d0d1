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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import faust
from faust.streams import current_event


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
        """Wrap the consumer's commit so it runs inside the gate, and bind sends (idempotent)."""
        consumer: Any = app.consumer
        if app.in_transaction:
            bind_sends_to_event_transaction(app)
        target: Any = consumer.transactions if app.in_transaction else consumer
        name = "commit" if app.in_transaction else "_commit"
        original: Callable[..., Awaitable[bool]] = getattr(target, name)
        if getattr(original, "__vigil_gate__", False):
            return
        buffer = app.producer.buffer
        gate = self

        async def gated_commit(offsets: Mapping[Any, int], *args: Any, **kwargs: Any) -> bool:
            async with gate.commit():
                await buffer.flush()  # table changelog writes join this transaction
                return await original(offsets, *args, **kwargs)

        gated_commit.__vigil_gate__ = True  # type: ignore[attr-defined]
        setattr(target, name, gated_commit)


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
