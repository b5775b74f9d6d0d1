"""The commit gate: commits wait for whole events and send queued records first."""

from __future__ import annotations

import asyncio

from app.exactly_once import CommitGate


async def test_a_commit_waits_for_the_event_in_flight_then_flushes_first():
    gate = CommitGate()
    log: list[str] = []

    async def flush() -> None:
        log.append("flush")

    gate.add_flusher(flush)
    release = asyncio.Event()

    async def one_event() -> None:
        async with gate.event():
            log.append("event start")
            await release.wait()
            log.append("event end")

    async def commit() -> None:
        async with gate.commit():
            await gate.flush()
            log.append("commit")

    event_task = asyncio.create_task(one_event())
    await asyncio.sleep(0)
    commit_task = asyncio.create_task(commit())
    await asyncio.sleep(0.01)
    assert log == ["event start"]  # the commit is held while the event is half done
    release.set()
    await asyncio.gather(event_task, commit_task)
    assert log == ["event start", "event end", "flush", "commit"]


async def test_events_wait_while_a_commit_holds_the_gate():
    gate = CommitGate()
    log: list[str] = []
    committing = asyncio.Event()
    finish = asyncio.Event()

    async def commit() -> None:
        async with gate.commit():
            committing.set()
            await finish.wait()
            log.append("commit")

    async def one_event() -> None:
        async with gate.event():
            log.append("event")

    commit_task = asyncio.create_task(commit())
    await committing.wait()
    event_task = asyncio.create_task(one_event())
    await asyncio.sleep(0.01)
    assert log == []
    finish.set()
    await asyncio.gather(commit_task, event_task)
    assert log == ["commit", "event"]


async def test_every_registered_flusher_runs():
    gate = CommitGate()
    ran: list[int] = []
    for n in range(3):

        async def flush(n: int = n) -> None:
            ran.append(n)

        gate.add_flusher(flush)
    await gate.flush()
    assert ran == [0, 1, 2]
