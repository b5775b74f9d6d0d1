"""The lean fetch loop (app.faust_patches.fetch) keeps Faust's semantics without its per-record
tasks: run on a real Faust consumer object, side by side with Faust's own `_drain_messages`.

Only the fetch (`getmany`: records as Faust's own getmany yields them) and the conductor's
callback are scripted; the read offsets, gap tracking, flow events and `wait_first` are
Faust's and mode's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import faust
import pytest
from faust.transport.consumer import Consumer
from faust.types import TP, Message
from mode import Service

from app.faust_patches import fetch

TP0 = TP("transactions", 0)
TP1 = TP("transactions", 1)


def faust_loop() -> Callable[..., Any]:
    """Faust's own `_drain_messages`, whether or not this process installed the patch."""
    current = Consumer._drain_messages
    if getattr(current, "__vigil__", False):
        return fetch._faust_drain  # type: ignore[no-any-return]
    return current  # type: ignore[no-any-return]


def msg(tp: TP, offset: int) -> Message:
    return Message(tp.topic, tp.partition, offset, 0.0, 0, None, b"k", b"v", None, tp=tp)


class Run:
    """One fetch loop over scripted batches on a fresh real Faust consumer."""

    def __init__(self, batches: list[list[Message]], on_message: Callable[..., Any]) -> None:
        self.app = faust.App("fetch-test", broker="kafka://127.0.0.1:1")
        self.consumer = self.app.consumer
        self.fetcher = Service()
        self.delivered: list[tuple[TP, int]] = []
        self.cancelled: list[tuple[TP, int]] = []
        self.wait_first_calls = 0
        batches = list(batches)
        run = self

        async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Message]]:
            if not batches:
                run.fetcher._stopped.set()
                return
            for message in batches.pop(0):
                yield message.tp, message

        async def callback(message: Message) -> None:
            try:
                await on_message(run, message)
            except asyncio.CancelledError:
                run.cancelled.append((message.tp, message.offset))
                raise
            run.delivered.append((message.tp, message.offset))

        real_wait_first = self.consumer.wait_first

        async def counting_wait_first(*coros: Any, **kwargs: Any) -> Any:
            run.wait_first_calls += 1
            return await real_wait_first(*coros, **kwargs)

        self.consumer.getmany = getmany  # type: ignore[method-assign]
        self.consumer.callback = callback
        self.consumer.wait_first = counting_wait_first  # type: ignore[method-assign]

    async def drain(self, loop: Callable[..., Any]) -> None:
        try:
            await asyncio.wait_for(loop(self.consumer, self.fetcher), timeout=10.0)
        finally:  # the consumer's (never started) thread made an event loop of its own
            self.consumer._thread.thread_loop.close()


async def both(batches: list[list[Message]], on_message: Callable[..., Any]) -> tuple[Run, Run]:
    """The same script through Faust's loop and through the lean one."""
    faust_run, lean_run = Run(batches, on_message), Run(batches, on_message)
    for run, loop in ((faust_run, faust_loop()), (lean_run, fetch.lean_drain_messages)):
        run.consumer._read_offset[TP0] = 5  # a seek put partition 0 at offset 5
        await run.drain(loop)
    return faust_run, lean_run


async def immediate(run: Run, message: Message) -> None:
    """A delivery that does not wait (the stream's queue had room)."""


@pytest.mark.asyncio
async def test_same_deliveries_and_read_offsets_without_wait_first():
    batches = [
        [msg(TP0, 3), msg(TP0, 4), msg(TP0, 5), msg(TP1, 0), msg(TP0, 6)],
        [msg(TP1, 1), msg(TP0, 9), msg(TP1, 2)],
    ]
    faust_run, lean_run = await both(batches, immediate)
    # Offsets 3 and 4 of partition 0 are below its read offset: dropped by both.
    expected = [(TP0, 5), (TP1, 0), (TP0, 6), (TP1, 1), (TP0, 9), (TP1, 2)]
    assert faust_run.delivered == expected
    assert lean_run.delivered == expected
    for run in (faust_run, lean_run):
        assert run.consumer._read_offset[TP0] == 9
        assert run.consumer._read_offset[TP1] == 2
    assert faust_run.wait_first_calls == len(expected)  # Faust: tasks for every record
    assert lean_run.wait_first_calls == 0  # lean: none while nothing waits


@pytest.mark.asyncio
async def test_a_delivery_that_waits_goes_through_wait_first_and_completes():
    async def slow_for_offset_1(run: Run, message: Message) -> None:
        if message.offset == 1:
            future = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(0.05, future.set_result, None)
            await future
            await asyncio.sleep(0)  # a bare yield too

    batches = [[msg(TP1, 0), msg(TP1, 1), msg(TP1, 2)]]
    faust_run, lean_run = await both(batches, slow_for_offset_1)
    assert lean_run.delivered == faust_run.delivered == [(TP1, 0), (TP1, 1), (TP1, 2)]
    assert lean_run.wait_first_calls == 1
    assert lean_run.cancelled == []


@pytest.mark.asyncio
async def test_a_blocked_delivery_is_cancelled_when_the_flow_is_suspended():
    async def blocked_until_rebalance(run: Run, message: Message) -> None:
        if message.offset == 1:  # e.g. a full stream buffer: stays blocked
            asyncio.get_running_loop().call_later(0.05, run.consumer.stop_flow)
            await asyncio.Event().wait()

    batches = [[msg(TP1, 0), msg(TP1, 1)], [msg(TP1, 2), msg(TP1, 3)]]
    faust_run, lean_run = await both(batches, blocked_until_rebalance)
    for run in (faust_run, lean_run):
        assert run.cancelled == [(TP1, 1)]
    # After the suspension Faust's getmany would yield nothing; this script still does, and
    # both loops then deliver through wait_first (flow suspended), as Faust does.
    assert lean_run.delivered == faust_run.delivered
    assert lean_run.consumer._read_offset[TP1] == faust_run.consumer._read_offset[TP1] == 3
    assert lean_run.wait_first_calls == 3  # the blocked record, then both while suspended


@pytest.mark.asyncio
async def test_a_delivery_error_propagates_as_in_faust():
    async def poisoned(run: Run, message: Message) -> None:
        if message.offset == 1:
            raise RuntimeError("decode blew up")

    for loop in (faust_loop(), fetch.lean_drain_messages):
        run = Run([[msg(TP1, 0), msg(TP1, 1), msg(TP1, 2)]], poisoned)
        with pytest.raises(RuntimeError, match="decode blew up"):
            await run.drain(loop)
        assert run.delivered == [(TP1, 0)]
        assert run.consumer._read_offset[TP1] == 0


@pytest.mark.asyncio
async def test_stops_when_the_consumer_stops():
    run = Run([[msg(TP1, 0)]] * 1000, immediate)
    run.consumer._stopped.set()
    await run.drain(fetch.lean_drain_messages)
    assert run.delivered == []


def test_switch(monkeypatch):
    for value, on in (("0", False), ("off", False), ("false", False), ("1", True), ("yes", True)):
        monkeypatch.setenv(fetch.SWITCH, value)
        assert fetch.enabled() is on
