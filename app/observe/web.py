"""What a worker shows about itself: /metrics, /healthz, /readyz and periodic gauges.

Installed on the app by `app.runtime.service`. Gauges that cost a scan (lag, table sizes) are
refreshed on
a timer, not per event; counters on the hot path live in the agents (`VigilMetrics` methods).

Readiness (`not_ready_reasons`) is the consumer started, no rebalance, tables recovered, every
agent's task running and every check registered with `add_readiness_check` true (the fraud
labels' follower registers "caught up" from `tables/labels.py`, which `app/` may not import).
An agent without a running task for `AGENT_DEAD_GRACE_S` crashes the worker (exit 1), so the
orchestrator restarts it rather than leaving a worker up that no longer processes a topic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import faust
from faust.web import Request, Response, View

from app.faust_patches import access
from app.observe.metrics import VigilMetrics

log = logging.getLogger(__name__)

GAUGE_INTERVAL_S = 5.0
#: How often the worker looks at its agents' tasks.
AGENT_CHECK_INTERVAL_S = 2.0
#: An agent without a running task for this long is dead for good: the worker crashes (exits
#: non-zero) instead of staying up with a stalled partition. Faust's supervisor replaces a
#: crashed actor within about a second (its loop wakes at least every 5 s), so this is well
#: past any restart.
AGENT_DEAD_GRACE_S = 15.0

#: A readiness condition: called on every /readyz (and gauge refresh); must be cheap and never
#: block. False (or an exception) makes the worker not ready.
ReadinessCheck = Callable[[], bool]

_checks: WeakKeyDictionary[faust.App, list[tuple[str, ReadinessCheck]]] = WeakKeyDictionary()


class AgentDied(RuntimeError):
    """An agent's task ended and Faust did not restart it: the worker stops (exit 1)."""


def add_readiness_check(app: faust.App, name: str, check: ReadinessCheck) -> None:
    """Make `app` ready only while `check()` is true, e.g. from `tables/labels.py`:

        observe.add_readiness_check(app, "fraud labels caught up", labels.caught_up.is_set)

    `name` is what /readyz lists under `waiting_for` while the check fails.
    """
    _checks.setdefault(app, []).append((name, check))


def add_model_view(app: faust.App, summary: Callable[[], dict[str, Any]]) -> None:
    """Serve `GET /model`: a read-only view of the risk model (from `tables/model.py`).

    `summary()` says which model state scores now (offset, updates, frauds learned), what it
    learned from and its weights, largest first. It must be cheap: it runs on the event loop.
    """

    @app.page("/model")
    class Model(View):
        async def get(self, request: Request) -> Response:
            return self.json(summary())


def readiness_checks(app: faust.App) -> list[tuple[str, ReadinessCheck]]:
    """The checks registered for `app` (name, callable), in registration order."""
    return list(_checks.get(app, ()))


def _task_running(actor: Any) -> bool:
    task = getattr(actor, "actor_task", None)
    return task is not None and not task.done()


def dead_agents(agents: Iterable[Any]) -> list[str]:
    """Names of the agents that have no running task: stopped, crashed and not restarted.

    An agent is alive when its supervisor runs and every actor it supervises (one per
    `concurrency`) has an unfinished task. Faust marks an actor whose function raised as
    crashed and its supervisor replaces it; an actor whose function returned is never
    replaced: both show here until a replacement runs.
    """
    dead = []
    for agent in agents:
        supervisor = getattr(agent, "supervisor", None)
        actors = access.supervised_actors(agent)
        if (
            supervisor is None
            or supervisor.crashed
            or supervisor.should_stop
            or not actors
            or not all(_task_running(actor) for actor in actors)
        ):
            dead.append(str(agent.name))
    return dead


class AgentWatchdog:
    """Tells which agents have been dead for longer than `grace_s` (without a break)."""

    def __init__(
        self, grace_s: float = AGENT_DEAD_GRACE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.grace_s = grace_s
        self.clock = clock
        self.dead_since: dict[str, float] = {}

    def check(self, dead: Iterable[str]) -> list[str]:
        """Record the agents dead now; return those dead for at least `grace_s`."""
        now = self.clock()
        dead = set(dead)
        self.dead_since = {name: self.dead_since.get(name, now) for name in dead}
        return sorted(n for n, since in self.dead_since.items() if now - since >= self.grace_s)


def not_ready_reasons(app: faust.App) -> list[str]:
    """Why `app` is not fit to take traffic (empty: ready).

    Ready means: the consumer started, no rebalance under way, tables recovered, every agent's
    task running, and every registered readiness check (`add_readiness_check`) true.
    """
    if not access.consumer_started(app):
        return ["consumer not started"]
    if app.rebalancing:
        return ["rebalance"]
    recovery: Any = app.tables.recovery  # type: ignore[attr-defined]
    if not recovery.completed.is_set() or recovery.in_recovery:
        return ["table recovery"]
    reasons = [f"agent {name} not running" for name in dead_agents(app.agents.values())]
    for name, check in readiness_checks(app):
        try:
            ok = bool(check())
        except Exception as exc:  # a broken check must read as not ready, not as a 500
            log.warning("readiness check %r failed: %r", name, exc)
            ok = False
        if not ok:
            reasons.append(name)
    return reasons


def is_ready(app: faust.App) -> bool:
    """Fit to take traffic: see `not_ready_reasons`."""
    return not not_ready_reasons(app)


def install(
    app: faust.App,
    metrics: VigilMetrics,
    cart_topic: str,
    input_topics: frozenset[str],
    store_dir: Path | None = None,  # unused (kept for callers); the store needs no record
    readiness: Iterable[tuple[str, ReadinessCheck]] = (),
) -> None:
    """Register the web views, the gauge timer, the agent watchdog and the rebalance counters.

    `readiness`: further (name, check) readiness conditions; more can be added later with
    `add_readiness_check`.
    """
    for name, check in readiness:
        add_readiness_check(app, name, check)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # aiohttp refuses a charset inside content_type; Prometheus needs only the version.
            return self.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    class Healthz(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Readyz(View):
        async def get(self, request: Request) -> Response:
            reasons = not_ready_reasons(app)
            ready = not reasons
            metrics.set_ready(ready)
            return self.json(
                {
                    "ready": ready,
                    "partitions": len(app.consumer.assignment()) if ready else 0,
                    "waiting_for": reasons,
                },
                status=200 if ready else 503,
            )

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        metrics.rebalance()
        metrics.set_ready(False)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def _assigned(sender: Any, **kwargs: Any) -> None:
        metrics.set_assignment(
            ((tp.topic, tp.partition) for tp in app.consumer.assignment()),
            clock_topic=cart_topic,
        )

    watchdog = AgentWatchdog()

    @app.timer(interval=AGENT_CHECK_INTERVAL_S)
    async def watch_agents() -> None:
        await check_agents(app, watchdog)

    @app.timer(interval=GAUGE_INTERVAL_S)
    async def refresh_gauges() -> None:
        metrics.set_ready(is_ready(app))
        if app.rebalancing:
            return
        await _refresh_lag(app, metrics, input_topics)
        for table in app.tables.values():
            keys = _estimate_keys(table)
            metrics.set_table_keys(table.name, keys)
            if table.name == "carts":
                metrics.set_open_carts(keys)


async def check_agents(app: Any, watchdog: AgentWatchdog) -> bool:
    """Crash `app` (the worker exits 1) when an agent has been dead past the grace period.

    Returns True when it crashed the app. A stopping app is left alone (its agents stop).
    """
    if app.should_stop:
        return False
    gone = watchdog.check(dead_agents(app.agents.values()))
    if not gone:
        return False
    exc = AgentDied(
        f"agent {', '.join(gone)} has had no running task for {watchdog.grace_s:.0f} s "
        "(crashed or returned, not restarted): stopping the worker"
    )
    log.critical("%s", exc)
    await app.crash(exc)
    return True


async def _refresh_lag(app: faust.App, metrics: VigilMetrics, topics: frozenset[str]) -> None:
    """Lag per assigned input partition: end offset minus committed offset.

    Only the contract's input topics: internal topics (ticks, Faust's assignor topic) would add
    series that say nothing to an operator.
    """
    consumer: Any = app.consumer
    tps = [tp for tp in consumer.assignment() if tp.topic in topics]
    if not tps:
        return
    try:
        ends = await consumer.highwaters(*tps)
    except Exception as exc:  # the broker may be away for a moment: try next time
        log.debug("lag refresh failed: %s", exc)
        return
    committed = access.committed_offsets(consumer)
    for tp in tps:
        end = ends.get(tp)
        if end is None:
            continue
        done = committed.get(tp)
        metrics.set_consumer_lag(tp.topic, tp.partition, end - (done or 0))


def _estimate_keys(table: Any) -> int:
    """Keys held locally, from RocksDB's own estimate (no scan): good enough for a gauge."""
    total = 0
    for db in access.table_dbs(table):
        try:
            total += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
        except Exception:
            continue
    return total
