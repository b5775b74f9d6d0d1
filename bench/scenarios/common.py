"""What every scenario shares: the run's sizes and context, and how a worker run is watched.

Throughput is always measured the same way, for the baseline and for Vigil: pre-produce the
input, start the consumer process, and sample the consumer group's committed offsets every
50 ms. The rate is (last committed - first committed) / (time of the sample that reached the
end - time of the first sample that showed a commit): process start-up, group join, table
recovery and the first commit interval's worth of events are excluded.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import data
from bench.kafka import Broker, CommitSample, CommitTrace, OffsetWatcher, Record
from bench.profiling import format_hot_spots, hot_spots
from bench.worker import Deployment, WorkerProcess, cpu_seconds, machine_cpu_seconds

#: The table-size gauges refresh every 5 s: wait this long before reading them.
GAUGE_WAIT_S = 5.5
#: How often `wait_ready` polls /readyz in the measured runs (the harness's default is 0.2 s).
READY_POLL_S = 0.1


@dataclass(frozen=True)
class Sizes:
    fraud_events: int
    baseline_events: int
    cart_open: tuple[int, ...]
    cart_batch: int
    latency_seconds: float
    latency_warmup_s: float
    recovery_keys: int
    recovery_batch: int

    @classmethod
    def for_mode(cls, quick: bool) -> Sizes:
        if quick:
            return cls(20_000, 80_000, (100_000,), 4_000, 15.0, 2.0, 100_000, 2_000)
        return cls(60_000, 300_000, (100_000, 1_000_000), 15_000, 60.0, 5.0, 1_000_000, 5_000)


@dataclass
class Context:
    broker: Broker
    run_id: str
    workdir: Path
    results_dir: Path
    partitions: int
    seed: int
    sizes: Sizes
    preload_via: str
    state_guarantee: str
    profile: bool = False
    broker_pid: int | None = None
    fraud_records: list[Record] = field(default_factory=list)
    fraud_source: str = ""
    results: dict[str, Any] = field(default_factory=dict)

    def deployment(self, tag: str, guarantee: str, **env: str) -> Deployment:
        name = f"bench-{self.run_id}-{tag}"
        return Deployment(
            name,
            self.broker.bootstrap,
            self.workdir / tag,
            self.partitions,
            guarantee,
            {f"VIGIL_{k.upper()}": v for k, v in env.items()},
        )

    def fraud_data(self) -> list[Record]:
        if not self.fraud_records:
            self.fraud_records, self.fraud_source = data.fraud_traffic(
                self.sizes.fraud_events, self.seed
            )
        return self.fraud_records

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def avg_len(records: Sequence[Record]) -> float:
    return statistics.fmean(len(v) for _, v in records) if records else 0.0


async def watch_worker(
    ctx: Context,
    dep: Deployment,
    worker: WorkerProcess,
    topic: str,
    target: int,
    timeout: float,
    start_at: int = 0,
    on_first_commit: Callable[[], None] | None = None,
) -> tuple[CommitTrace, float | None, dict[str, Any]]:
    """Sample commits until `target`; also readiness, CPU, and the worker's own event counter.

    The counter (`vigil_events_in_total` of the input topic, every 0.5 s) gives a second rate,
    of processed rather than committed events; the two differ when commits come in lumps.
    """
    trace = CommitTrace()
    processed: list[tuple[float, float]] = []
    ready_s: float | None = None
    cpu0 = cpu1 = b0 = b1 = s0 = s1 = m0 = m1 = 0.0
    first_seen = False
    next_scrape = 0.0
    counted0 = worker.metric_sum("vigil_events_in_total", f'topic="{topic}"') or 0.0
    deadline = time.monotonic() + timeout
    async with OffsetWatcher(ctx.broker.bootstrap, dep.app_id, topic, ctx.partitions) as ow:
        while True:
            value = await ow.committed()
            now = time.monotonic()
            if value >= 0:
                trace.samples.append(CommitSample(now, value))
                if value > start_at and not first_seen:
                    first_seen = True
                    cpu0 = worker.cpu_seconds()
                    b0, s0 = cpu_seconds(ctx.broker_pid), time.process_time()
                    m0 = machine_cpu_seconds()
                    if on_first_commit is not None:
                        on_first_commit()
                if value >= target:
                    cpu1 = worker.cpu_seconds()
                    b1, s1 = cpu_seconds(ctx.broker_pid), time.process_time()
                    m1 = machine_cpu_seconds()
                    break
            if ready_s is None and worker.http("/readyz")[0] == 200:
                ready_s = now - worker.started_at
            if ready_s is not None and now >= next_scrape:
                count = worker.metric_sum("vigil_events_in_total", f'topic="{topic}"')
                if count is not None:
                    processed.append((time.monotonic(), count - counted0))
                next_scrape = now + 0.5
            if not worker.alive():
                raise RuntimeError(f"worker died:\n{worker.tail()}")
            if now > deadline:
                raise TimeoutError(f"{dep.app_id}: committed {value} of {target} in {timeout} s")
            await asyncio.sleep(0.05)
    _, seconds, events = trace.rate(start_at, target)
    info: dict[str, Any] = {
        "cpu_s": round(cpu1 - cpu0, 2),
        "max_commit_stall_s": round(trace.max_stall(start_at, target), 2),
        "processed_events_per_s": _processed_rate(processed, target - start_at),
    }
    if seconds:
        info["cpu_per_wall"] = round((cpu1 - cpu0) / seconds, 2)
        info["cpu_us_per_event"] = round(1e6 * (cpu1 - cpu0) / max(events, 1), 1)
        info["broker_cpu_per_wall"] = round((b1 - b0) / seconds, 2)
        info["bench_cpu_per_wall"] = round((s1 - s0) / seconds, 2)
        # Everything else on the machine (of 2 CPUs here): other engineers' test runs.
        own = (cpu1 - cpu0) + (b1 - b0) + (s1 - s0)
        info["other_cpu_per_wall"] = round(max(0.0, m1 - m0 - own) / seconds, 2)
    return trace, ready_s, info


def _processed_rate(samples: list[tuple[float, float]], total: int) -> float | None:
    """events/s between the first scrape that counted something and the first that saw all."""
    first = next(((t, c) for t, c in samples if c > 0), None)
    last = next(((t, c) for t, c in samples if c >= total), samples[-1] if samples else None)
    if first is None or last is None or last[0] <= first[0]:
        return None
    return round((last[1] - first[1]) / (last[0] - first[0]), 1)


def profile_result(ctx: Context, raw: Path, err: str, tag: str) -> dict[str, Any]:
    if not (raw.is_file() and raw.stat().st_size):
        return {"error": err.strip()[-500:] or "no samples"}
    spots = hot_spots(raw)
    text = format_hot_spots(spots)
    raw.with_suffix(".top.txt").write_text(text + "\n")
    ctx.say(f"{tag}: profile\n{text}")
    return {"raw": str(raw), **spots}
