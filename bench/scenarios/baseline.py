"""Scenario 1, the baseline: a raw aiokafka consume -> orjson -> produce loop (`bench.baseline`)."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from typing import Any

from bench.kafka import OffsetWatcher, make_topics, produce
from bench.scenarios.common import Context, avg_len
from bench.worker import REPO, cpu_seconds, machine_cpu_seconds


async def baseline(ctx: Context) -> dict[str, Any]:
    records = ctx.fraud_data()
    n = ctx.sizes.baseline_events
    cycled = [records[i % len(records)] for i in range(n)]
    name = f"bench-{ctx.run_id}-baseline"
    topic_in, topic_out, group = f"{name}-in", f"{name}-out", f"{name}-group"
    await make_topics(ctx.broker.bootstrap, [topic_in, topic_out], ctx.partitions)
    ctx.say(f"baseline: producing {n} records")
    prod_rate = await produce(ctx.broker.bootstrap, topic_in, cycled)
    cmd = [sys.executable, "-m", "bench.baseline", "--bootstrap", ctx.broker.bootstrap]
    cmd += ["--input", topic_in, "--output", topic_out, "--group", group, "--expect", str(n)]
    ctx.say("baseline: consume -> orjson -> produce loop")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t0, m0, b0 = time.monotonic(), machine_cpu_seconds(), cpu_seconds(ctx.broker_pid)
    s0, c0 = time.process_time(), _children_cpu()
    try:
        async with OffsetWatcher(ctx.broker.bootstrap, group, topic_in, ctx.partitions) as ow:
            trace = await ow.watch(n, timeout=600, alive=lambda: proc.poll() is None)
        out, _ = proc.communicate(timeout=60)
        # The baseline process's CPU: reaped children's (it is the only child since t0).
        own = _children_cpu() - c0 + cpu_seconds(ctx.broker_pid) - b0 + time.process_time() - s0
        other = (machine_cpu_seconds() - m0 - own) / max(time.monotonic() - t0, 1e-9)
    finally:
        if proc.poll() is None:
            proc.kill()
    rate, seconds, events = trace.rate(0, n)
    return {
        "events_per_s": round(rate, 1),
        "window_s": round(seconds, 2),
        "events_in_window": events,
        "events": n,
        "avg_value_bytes": round(avg_len(cycled), 1),
        "producer_rate": round(prod_rate),
        # From process start to done (start-up included): other processes' CPU per second.
        "other_cpu_per_wall": round(max(0.0, other), 2),
        "self_report": out.decode(errors="replace").strip().splitlines()[-1:],
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
