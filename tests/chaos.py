"""The chaos harness: several real workers, a seeded workload produced at a steady rate while
workers are SIGKILLed and restarted, one joins and one leaves; then live output against
`vigil replay` of the same records (see tests/e2e/test_chaos.py for the settings, and
tests/chaos_workload.py for why the workload is replay-comparable whatever the timing).

Synchronisation is by condition polling with deadlines only: a `Gate` of the workload is
cleared by polling the workers' label metric (the workload uses its places only after that),
the end waits for the consumer group's committed offsets to reach every input partition's end.
Sleeps only pace the producer and space out the chaos.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer

from tests import chaos_check
from tests.chaos_check import Sent, TopicDiff
from tests.chaos_fleet import Crash, Fleet, Stopped
from tests.chaos_workload import CART_TIMEOUT_S, Gate, Input, Item, partition_of, workload
from tests.fixtures.worker import INPUTS, OUTPUTS, Deployment

ASSIGNED_LOG_LINE = "Executing _on_partitions_assigned"


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class ChaosConfig:
    seconds: float = 20.0
    rate: float = 100.0  # input records a second, roughly
    kills: int = 3
    seed: int = 1
    workers: int = 3
    partitions: int = 6
    stop_grace_s: float = 60.0
    drain_s: float = 120.0
    guarantee: str = "exactly_once"  # at_least_once shows what the harness catches

    @classmethod
    def from_env(cls, round_no: int = 1) -> ChaosConfig:
        return cls(
            seconds=_env("CHAOS_SECONDS", 20),
            rate=_env("CHAOS_RATE", 100),
            kills=int(_env("CHAOS_KILLS", 3)),
            seed=int(_env("CHAOS_SEED", 1)) + round_no - 1,
            workers=int(_env("CHAOS_WORKERS", 3)),
            stop_grace_s=_env("CHAOS_STOP_GRACE_S", 60),
            drain_s=_env("CHAOS_DRAIN_S", 120),
            guarantee=os.environ.get("CHAOS_PROCESSING_GUARANTEE", "exactly_once"),
        )


class Producer(threading.Thread):
    """Sends the workload at a steady rate, opening its gates; records partition and offset."""

    def __init__(
        self, deployment: Deployment, items: Iterator[Item], rate: float, fleet: Fleet
    ) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.deployment = deployment
        self.items = items
        self.rate = rate
        self.fleet = fleet
        self.sent: list[Sent] = []
        self.error: str | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException:  # reported by the test, never raised in the thread
            self.error = traceback.format_exc()

    async def _run(self) -> None:
        topics = self.deployment.topics
        producer = AIOKafkaProducer(
            bootstrap_servers=self.deployment.bootstrap,
            acks="all",
            enable_idempotence=True,  # no duplicate, no reordering on retries
            linger_ms=5,
        )
        await producer.start()
        try:
            start, n = time.monotonic(), 0
            pending: list[tuple[Input, asyncio.Future]] = []
            for item in self.items:
                if isinstance(item, Gate):
                    await self._settle(pending)  # the markers are in the log: watch for them
                    self.fleet.open_gate(item)
                    continue
                delay = start + n / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing only
                key = item.key.encode() if item.key is not None else None
                pending.append((item, await producer.send(topics[item.kind], item.value, key=key)))
                n += 1
                if len(pending) >= 200:
                    await self._settle(pending)
            await self._settle(pending)
        finally:
            await producer.stop()

    async def _settle(self, pending: list[tuple[Input, asyncio.Future]]) -> None:
        for item, future in pending:
            meta = await future
            self.sent.append(Sent(item, meta.partition, meta.offset))
        pending.clear()


@dataclass
class ChaosResult:
    cfg: ChaosConfig
    workdir: Path
    records: int = 0
    produce_s: float = 0.0
    total_s: float = 0.0
    kills: int = 0
    restarts: int = 0
    rebalances: int = 0
    gate_waits: list[float] = field(default_factory=list)  # -1: not cleared while producing
    crashes: list[Crash] = field(default_factory=list)
    stops: list[Stopped] = field(default_factory=list)
    diffs: list[TopicDiff] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def summary(self) -> str:
        stops = ", ".join(f"{s.name} exit {s.returncode} in {s.seconds:.1f}s" for s in self.stops)
        gates = ", ".join(f"{g:.0f}s" if g >= 0 else "never" for g in self.gate_waits)
        return (
            f"seed={self.cfg.seed} {self.cfg.guarantee} {self.records} records in "
            f"{self.produce_s:.0f}s (run {self.total_s:.0f}s): kills={self.kills} "
            f"restarts={self.restarts} crashes={len(self.crashes)} "
            f"rebalances={self.rebalances} stop=[{stops}] gates=[{gates}] | "
            + " | ".join(d.figures() for d in self.diffs)
            + (" | OK" if self.ok else f" | FAILED ({len(self.problems)} problems)")
        )

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        """Everything needed to tell a Vigil bug from a harness bug."""
        parts = [self.summary(), f"artifacts: {self.workdir}", *self.problems, "timeline:"]
        parts += [f"  {e}" for e in self.events]
        for d in self.diffs:
            parts += [f"  {d.kind}: {x}" for x in d.examples]
        for c in self.crashes:
            parts.append(f"--- {c.name} (pid {c.pid}) exited {c.returncode} by itself; errors:")
            parts += [f"  {line}" for line in c.errors]
            parts.append(f"log tail:\n{c.tail}")
        return "\n".join(parts)


def _schedule(rng: random.Random, cfg: ChaosConfig) -> list[tuple[float, str]]:
    """When (seconds into production) each chaos action happens."""
    s = cfg.seconds
    events = [(rng.uniform(0.05, 0.9) * s, "kill") for _ in range(cfg.kills)]
    events += [(rng.uniform(0.15, 0.5) * s, "join"), (rng.uniform(0.4, 0.85) * s, "leave")]
    return sorted(events)


def run_chaos(deployment: Deployment, workdir: Path, cfg: ChaosConfig) -> ChaosResult:
    t_run = time.monotonic()
    result = ChaosResult(cfg, workdir)
    steps = max(400, int(cfg.rate * cfg.seconds * 0.75))  # bursts make ~1.3 records a step
    overrides = {
        "partitions": str(cfg.partitions),
        "cart_timeout_s": str(CART_TIMEOUT_S),
        "processing_guarantee": cfg.guarantee,
    }
    # Every checkpoint's and every seek's offsets in the worker logs (the artifacts), so a
    # failing run shows where a partition's offsets moved.
    deployment.env["DEBUG_VIGIL_COMMITS"] = "1"
    fleet = Fleet(deployment, overrides, cfg.stop_grace_s)
    rng = random.Random(f"chaos-{cfg.seed}")
    for i in range(cfg.workers):
        fleet.start(f"w{i + 1}")
    if waiting := fleet.wait_all_ready(180):
        raise AssertionError(f"workers never ready: {waiting}\n" + "\n".join(fleet.events))

    items = workload(cfg.seed, steps, cfg.partitions, fleet.cleared)
    producer = Producer(deployment, items, cfg.rate, fleet)
    schedule = _schedule(rng, cfg)
    stoppers: list[threading.Thread] = []
    t0 = time.monotonic()
    producer.start()
    while producer.is_alive() or schedule:
        now = time.monotonic() - t0
        while schedule and schedule[0][0] <= now:
            _, action = schedule.pop(0)
            if action == "kill":
                fleet.kill(rng.choice(sorted(fleet.current)))
            elif action == "join":
                fleet.start(f"w{cfg.workers + 1}")
            else:
                ready = sorted(n for n, w in fleet.current.items() if fleet.ready(w))
                if ready and len(fleet.current) > 1:
                    stoppers.append(fleet.stop(rng.choice(ready)))
                elif now < cfg.seconds + 120:
                    schedule.append((now + 1.0, "leave"))  # nobody ready to leave yet
                    schedule.sort()
                else:
                    result.problems.append("no worker was ever ready to be stopped")
        fleet.check()
        fleet.poll_gates()
        producer.join(timeout=0.2)  # until production ends; chaos actions and checks between
    producer.join()
    result.produce_s = time.monotonic() - t0
    for t in stoppers:
        t.join(cfg.stop_grace_s + 30)
    fleet.log("production done")

    if producer.error:
        result.problems.append(f"producer failed:\n{producer.error}")
    if waiting := fleet.wait_all_ready(180):
        result.problems.append(f"workers not ready at the end: {waiting}")
    topics = deployment.topics
    ends, lag = asyncio.run(
        chaos_check.wait_drained(
            deployment.bootstrap,
            deployment.env["VIGIL_APP_ID"],
            [topics[k] for k in INPUTS],
            cfg.partitions,
            cfg.drain_s,
            fleet.check,
        )
    )
    fleet.log("drained" if not lag else f"NOT drained: {lag}")
    if lag:
        result.problems.append(f"input not all processed after {cfg.drain_s:.0f}s: {lag}")
    misplaced = [
        s for s in producer.sent
        if s.item.key is not None and s.partition != partition_of(s.item.key, cfg.partitions)
    ]  # fmt: skip
    if misplaced:  # markers and closing views are keyed for the default partitioner
        result.problems.append(f"harness: {len(misplaced)} records not where murmur2 puts them")
    produced = chaos_check.input_counts(producer.sent, topics)
    if {k: v for k, v in ends.items() if v} != dict(produced):
        result.problems.append(f"input topics hold {ends}, the producer sent {dict(produced)}")

    outputs = {k: topics[k] for k in OUTPUTS}
    live, complete = asyncio.run(
        chaos_check.read_outputs(deployment.bootstrap, outputs, cfg.partitions, 60, 3)
    )
    if not complete:
        result.problems.append("the read_committed reader did not reach the end of the outputs")
    fleet.check()
    expected = chaos_check.replay(
        producer.sent, topics, workdir, cart_timeout_s=CART_TIMEOUT_S, partitions=cfg.partitions
    )
    result.diffs = [chaos_check.compare(k, expected[k], live[k]) for k in OUTPUTS]
    result.problems += [f"{d.figures()}" for d in result.diffs if not d.ok]
    _sanity(expected, result)

    result.records = len(producer.sent)
    result.kills, result.restarts = fleet.kills, fleet.restarts
    result.crashes, result.stops = fleet.crashes, fleet.stops
    result.rebalances = fleet.log_count(ASSIGNED_LOG_LINE)
    result.gate_waits = [w.cleared_after for w in fleet.gates.values()]
    result.events = fleet.events
    result.problems += [
        f"worker {c.name} (pid {c.pid}) exited {c.returncode} by itself: "
        + (c.errors[0] if c.errors else "(no error logged)")
        for c in fleet.crashes
    ]
    if fleet.kills < cfg.kills:
        result.problems.append(f"only {fleet.kills} of {cfg.kills} kills happened")
    if len(fleet.stops) != 1 or fleet.stops[0].returncode != 0:
        for s in fleet.stops:
            result.problems.append(f"stopped {s.name} exited {s.returncode}:\n{s.tail}")
        if not fleet.stops:
            result.problems.append("no worker was stopped")
    result.total_s = time.monotonic() - t_run
    (workdir / "chaos-report.txt").write_text(result.report() + "\n")
    return result


def _sanity(expected: dict[str, list], result: ChaosResult) -> None:
    """The workload must exercise what it claims to (a harness check, not a Vigil one)."""
    fired = chaos_check.rules_fired(expected["fraud_alerts"])
    missing = {
        "velocity", "amount_spike", "impossible_travel", "card_testing", "large_amount",
        "compromised_terminal",
    } - fired  # fmt: skip
    if missing:
        result.problems.append(f"harness: the workload fired no {sorted(missing)}")
    for kind in ("cart_abandoned", "cart_recovered", "dead_letters"):
        if not expected[kind]:
            result.problems.append(f"harness: replay expects no {kind}")
