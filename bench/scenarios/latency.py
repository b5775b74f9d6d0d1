"""Scenario 4, latency: event-to-alert latency of alerting transactions at a fixed rate."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench import data
from bench.kafka import make_topics
from bench.scenarios.common import READY_POLL_S, Context
from bench.worker import Deployment, cpu_seconds


def _pct(values: Sequence[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


async def latency(
    ctx: Context,
    guarantee: str,
    rate: float,
    *,
    env: dict[str, str] | None = None,
    variant: str = "",
) -> dict[str, Any]:
    """Event-to-alert latency at `rate`; `env`/`variant` as for `bench.scenarios.fraud`."""
    tag = f"latency-{'alo' if guarantee == 'at_least_once' else 'eos'}"
    tag += f"-{variant}" if variant else ""
    dep = ctx.deployment(tag, guarantee, **(env or {}))
    await make_topics(ctx.broker.bootstrap, dep.topics.values(), ctx.partitions)
    worker = dep.worker().start()
    try:
        ready = await asyncio.to_thread(worker.wait_ready, 300.0, READY_POLL_S)
        await asyncio.sleep(1.0)
        ctx.say(f"{tag}: {rate:.0f} alerting transactions/s for {ctx.sizes.latency_seconds:.0f} s")
        result = await _latency_run(ctx, dep, rate, worker.cpu_seconds)
        result.update(guarantee=guarantee, ready_s=round(ready, 2), env=dep.extra_env)
        result["rss_mib"] = round(worker.memory().get("VmRSS", 0.0), 1)
    finally:
        worker.stop()
    return result


async def _latency_run(
    ctx: Context, dep: Deployment, rate: float, worker_cpu: Callable[[], float]
) -> dict[str, Any]:
    bootstrap = ctx.broker.bootstrap
    alerts_topic = dep.topics["fraud_alerts"]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        isolation_level="read_committed",
        enable_auto_commit=False,
        # Long polls: the broker answers as soon as an alert is there (fetch_min_bytes=1), so
        # this adds no latency, and an idle receiver does not load the shared 2 CPUs.
        fetch_max_wait_ms=500,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    tps = [TopicPartition(alerts_topic, p) for p in range(ctx.partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    sent: dict[str, float] = {}
    received: dict[str, tuple[float, int]] = {}  # txn_id -> (receive time, detected_ts ms)
    stop_receiving = asyncio.Event()

    async def receive() -> None:
        while not stop_receiving.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for records in batches.values():
                for r in records:
                    alert = orjson.loads(r.value)
                    received[alert["txn_id"]] = (now, _parse_ms(alert.get("detected_ts")))

    receiver = asyncio.create_task(receive())
    probes = data.latency_probes(ctx.seed)
    duration = ctx.sizes.latency_seconds
    warmup = ctx.sizes.latency_warmup_s
    measured: set[str] = set()
    try:
        start = time.monotonic()
        cpu0 = (worker_cpu(), cpu_seconds(ctx.broker_pid), time.process_time())
        count = 0
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= duration:
                break
            due = int(elapsed * rate) + 1
            while count < due:
                txn_id, key, template = next(probes)
                now = time.time()
                await producer.send(
                    dep.topics["transactions"], data.probe_bytes(template, int(now * 1000)), key
                )
                sent[txn_id] = now
                if elapsed >= warmup:
                    measured.add(txn_id)
                count += 1
            await asyncio.sleep(max(0.0, (count / rate) - (time.monotonic() - start)))
        send_s = time.monotonic() - start
        cpu1 = (worker_cpu(), cpu_seconds(ctx.broker_pid), time.process_time())
        await producer.flush()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not measured <= received.keys():
            await asyncio.sleep(0.1)
    finally:
        stop_receiving.set()
        await receiver
        await producer.stop()
        await consumer.stop()
    lat = [1000 * (received[t][0] - sent[t]) for t in measured if t in received]
    worker_side = [
        received[t][1] - 1000 * sent[t] for t in measured if t in received and received[t][1]
    ]
    return {
        "offered_rate": round(rate, 1),
        "achieved_send_rate": round(len(sent) / send_s, 1),
        "seconds": duration,
        "warmup_s": warmup,
        "measured": len(measured),
        "missing": len(measured - received.keys()),
        "p50_ms": round(_pct(lat, 50), 1),
        "p95_ms": round(_pct(lat, 95), 1),
        "p99_ms": round(_pct(lat, 99), 1),
        "max_ms": round(max(lat), 1) if lat else None,
        "detected_p50_ms": round(_pct(worker_side, 50), 1),
        "detected_p99_ms": round(_pct(worker_side, 99), 1),
        "cpu_per_wall": {
            name: round((b - a) / send_s, 2)
            for name, a, b in zip(("worker", "broker", "bench"), cpu0, cpu1, strict=True)
        },
    }


def _parse_ms(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    from app.contract.timeutil import parse_ts

    try:
        return int(parse_ts(value))
    except Exception:
        return 0
