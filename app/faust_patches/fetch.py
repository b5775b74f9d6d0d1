"""A lean fetch loop: Faust's `Consumer._drain_messages` without two tasks per record.

Faust's loop hands every fetched record to the conductor with
`await self.wait_first(callback(message), self.suspend_flow.wait())`: `wait_first` wraps the
delivery, the suspend event, and the consumer's stopped and crashed events in four futures and an
`asyncio.wait`, so that a delivery blocked on a full stream buffer (or on flow control) is
cancelled when a rebalance suspends the flow. Measured here that is ~48 us per record with uvloop,
while the delivery itself (decode, `put_nowait` into the stream's queue) almost never blocks.

The patch runs the delivery coroutine directly, one step (`coro.send(None)`): when it finishes
without waiting, which is the common case, no task or future is created. Only when it does wait,
or when the flow is already suspended, the rest of it goes through Faust's own `wait_first` with
`suspend_flow`, exactly as before: the same cancellation on suspend, on stop and on crash. The
rest of the loop is Faust's, line for line: records below the partition's read offset are
dropped (a seek moved it), gaps are tracked for acking topics, `commit_every` is honoured, the
read offset is set after each delivery, Faust's `getmany` (with its flow and generation checks
per record) is used unchanged, and the loop stops when the consumer or the fetcher stops.

On by default. `VIGIL_LEAN_FETCH=0` keeps Faust's loop: a diagnostic switch for A/B
measurements (the benchmark runs the fraud worker both ways) and for ruling the patch out when
chasing a bug; it is read once, when the patches are installed, and is not a user setting.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Generator
from typing import Any, cast

#: (module, class, attribute) of every private name this patch relies on.
PRIVATE_NAMES: tuple[tuple[str, str, str], ...] = (
    ("faust.transport.consumer", "Consumer", "_drain_messages"),
    ("faust.transport.consumer", "Consumer", "_read_offset"),
    ("faust.transport.consumer", "Consumer", "_n_acked"),
    ("faust.transport.consumer", "Consumer", "_commit_every"),
    ("faust.transport.consumer", "Consumer", "_add_gap"),
    ("mode.services", "Service", "_stopped"),
)
#: The diagnostic switch (see the module docstring).
SWITCH = "VIGIL_LEAN_FETCH"
_DEFAULT = "1"


def enabled() -> bool:
    """Whether the lean loop is wanted (anything but `0`, `false`, `no`, `off`)."""
    return os.environ.get(SWITCH, _DEFAULT).strip().lower() not in ("0", "false", "no", "off")


#: Faust methods this patch replaces (none when switched off: Faust's loop runs).
PATCHED: tuple[tuple[str, str, str], ...] = (
    (("faust.transport.consumer", "Consumer", "_drain_messages"),) if enabled() else ()
)

_faust_drain: Any = None  # Faust's own loop, kept for VIGIL_LEAN_FETCH=0 and for tests


class _Rest:
    """The rest of a coroutine that already ran its first step and is waiting on `pending`.

    Awaiting it (in a task, from `wait_first`) hands `pending` to that task, as the coroutine
    itself would have, and then drives the coroutine on: results and exceptions (a cancel) are
    passed into it unchanged.
    """

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self.coro = coro
        self.pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.pending
        while True:
            try:
                sent = yield pending
            except BaseException as exc:  # CancelledError from wait_first, GeneratorExit
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def deliver(consumer: Any, coro: Coroutine[Any, Any, Any]) -> None:
    """Run one delivery: inline when it does not wait, else cancellable on suspend (Faust's
    `wait_first` with `suspend_flow`, the consumer's stopped and crashed events)."""
    if consumer.flow_active:
        try:
            pending = coro.send(None)
        except StopIteration:
            return
        await consumer.wait_first(_Rest(coro, pending), consumer.suspend_flow.wait())
    else:
        await consumer.wait_first(coro, consumer.suspend_flow.wait())


async def lean_drain_messages(consumer: Any, fetcher: Any) -> None:  # pragma: no cover
    """Faust's `Consumer._drain_messages` (faust-streaming 0.15.3) with `deliver` per record.

    Covered by tests/unit/faust_patches/test_fetch.py on a real Faust consumer object, and by
    every integration and e2e test (the worker runs it)."""
    from faust.transport.consumer import CONSUMER_FETCHING

    callback = consumer.callback
    getmany = consumer.getmany
    consumer_should_stop = consumer._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set

    get_read_offset = consumer._read_offset.__getitem__
    set_read_offset = consumer._read_offset.__setitem__
    set_flag = consumer.diag.set_flag
    unset_flag = consumer.diag.unset_flag
    commit_every = consumer._commit_every
    acks_enabled_for = consumer.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            ait = getmany(timeout=1.0)
            # Faust: "sometimes getmany is called in a loop never releasing to the event loop"
            await consumer.sleep(0)
            if not consumer.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        # A gap in the offsets (compaction, transaction markers), for acks.
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await consumer._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and consumer._n_acked >= commit_every:
                            consumer._n_acked = 0
                            await consumer.commit()
                        await deliver(consumer, callback(message))
                        set_read_offset(tp, offset)
                    else:
                        consumer.log.dev(
                            "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                            offset,
                            message.key,
                            message.value,
                        )
                unset_flag(CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            consumer.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            consumer.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        consumer.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


def install() -> None:
    """Replace Faust's fetch loop with the lean one, unless `VIGIL_LEAN_FETCH=0` (idempotent)."""
    global _faust_drain
    from faust.transport.consumer import Consumer

    current = Consumer._drain_messages
    if getattr(current, "__vigil__", False):
        return
    _faust_drain = current
    if not enabled():
        return
    patched = cast(Any, lean_drain_messages)
    patched.__vigil__ = True
    Consumer._drain_messages = patched  # type: ignore[method-assign]
