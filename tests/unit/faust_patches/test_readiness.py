"""Readiness tells the truth: dead agents and failing checks make /readyz 503, and an agent
dead for good crashes the worker instead of leaving it up and stalled (app.observe.web)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import faust
import mode
import pytest

from app.observe import web as observe
from app.observe.web import AgentDied, AgentWatchdog, check_agents, dead_agents, not_ready_reasons

# A real Faust app and agents: `test_context()` runs an agent's actor with its supervisor and
# an in-memory channel, no broker needed (the broker URL is never dialled).
faust_app = faust.App("vigil-unit-readiness", broker="kafka://127.0.0.1:9", autodiscover=False)
topic = faust_app.topic("readiness-unit", value_type=bytes)


@faust_app.agent(topic)
async def loops(stream: Any) -> None:
    async for _ in stream:
        pass


@faust_app.agent(topic)
async def raises(stream: Any) -> None:
    async for _ in stream:
        raise ValueError("boom")


@faust_app.agent(topic)
async def returns(stream: Any) -> None:
    async for _ in stream:
        return


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


@pytest.fixture
async def running() -> AsyncIterator[tuple[Any, Any, Any]]:
    # CrashingSupervisor (test_context's default): a crashed actor is not replaced.
    async with (
        loops.test_context() as a,
        raises.test_context() as b,
        returns.test_context() as c,
    ):
        await _settle()
        yield a, b, c


async def test_running_agents_are_alive_and_crashed_or_returned_ones_dead(running) -> None:
    a, b, c = running
    assert dead_agents([a, b, c]) == []
    await a.put(b"x")
    with pytest.raises(ValueError):
        await b.put(b"x")
    await c.put(b"x")
    await _settle()
    assert dead_agents([a, b, c]) == [b.name, c.name]


def test_an_agent_not_started_is_dead() -> None:
    assert dead_agents([loops]) == [loops.name]


async def test_a_crashed_actor_that_faust_replaces_is_alive_again() -> None:
    async with raises.test_context(supervisor_strategy=mode.OneForOneSupervisor) as agent:
        await _settle()
        with pytest.raises(ValueError):
            await agent.put(b"x")
        await _settle()
        assert dead_agents([agent]) == []
        # Faust starts the replacement on its supervisor's next round (<= 5 s): now, so the
        # context can stop it.
        agent.supervisor.wakeup()
        await _settle()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_watchdog_reports_only_agents_dead_for_the_whole_grace_period() -> None:
    clock = Clock()
    dog = AgentWatchdog(grace_s=15.0, clock=clock)
    assert dog.check(["a"]) == []
    clock.now += 10
    assert dog.check(["a", "b"]) == []
    clock.now += 5
    assert dog.check(["a", "b"]) == ["a"]
    assert dog.check(["b"]) == []  # a came back: its clock starts over
    clock.now += 1
    assert dog.check(["a"]) == []
    clock.now += 15
    assert dog.check(["a"]) == ["a"]


class FakeRecovery:
    def __init__(self) -> None:
        self.completed = asyncio.Event()
        self.completed.set()
        self.in_recovery = False


class FakeTables:
    def __init__(self) -> None:
        self.recovery = FakeRecovery()


class FakeApp:
    """The parts of a Faust app `not_ready_reasons` and `check_agents` read."""

    def __init__(self, agents: list[Any]) -> None:
        self._consumer: object | None = object()
        self.rebalancing = False
        self.tables = FakeTables()
        self.agents = {agent.name: agent for agent in agents}
        self.should_stop = False
        self.crashed_with: BaseException | None = None

    async def crash(self, exc: BaseException) -> None:
        self.crashed_with = exc


async def test_check_agents_crashes_the_app_once_an_agent_is_dead_for_good(running) -> None:
    a, b, _ = running
    app = FakeApp([a, b])
    clock = Clock()
    dog = AgentWatchdog(grace_s=15.0, clock=clock)
    assert not await check_agents(app, dog)
    with pytest.raises(ValueError):
        await b.put(b"x")
    await _settle()
    assert not await check_agents(app, dog)  # dead, within the grace period
    clock.now += 14.9
    assert not await check_agents(app, dog)
    assert app.crashed_with is None
    clock.now += 0.1
    assert await check_agents(app, dog)
    assert isinstance(app.crashed_with, AgentDied)
    assert b.name in str(app.crashed_with)

    stopping = FakeApp([b])
    stopping.should_stop = True  # agents stop with the worker: not a crash
    assert not await check_agents(stopping, AgentWatchdog(grace_s=0.0, clock=clock))
    assert stopping.crashed_with is None


async def test_not_ready_while_an_agent_is_dead(running) -> None:
    a, _, c = running
    app: Any = FakeApp([a, c])
    assert not_ready_reasons(app) == []
    await c.put(b"x")
    await _settle()
    assert not_ready_reasons(app) == [f"agent {c.name} not running"]


async def test_not_ready_until_every_registered_check_passes(running) -> None:
    a, _, _ = running
    app: Any = FakeApp([a])
    caught_up = asyncio.Event()
    observe.add_readiness_check(app, "fraud labels caught up", caught_up.is_set)
    assert [name for name, _ in observe.readiness_checks(app)] == ["fraud labels caught up"]
    assert not_ready_reasons(app) == ["fraud labels caught up"]
    caught_up.set()
    assert not_ready_reasons(app) == []

    def broken() -> bool:
        raise RuntimeError("bug")

    observe.add_readiness_check(app, "broken", broken)
    assert not_ready_reasons(app) == ["broken"]  # an error reads as not ready


def test_not_ready_before_start_in_rebalance_and_in_recovery() -> None:
    app: Any = FakeApp([])
    app._consumer = None
    assert not_ready_reasons(app) == ["consumer not started"]
    app._consumer = object()
    app.rebalancing = True
    assert not_ready_reasons(app) == ["rebalance"]
    app.rebalancing = False
    app.tables.recovery.in_recovery = True
    assert not_ready_reasons(app) == ["table recovery"]
