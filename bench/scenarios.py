"""The measured runs. Each returns a JSON-ready dict; `bench.cli` orders, prints and saves them.

Throughput is always measured the same way, for the baseline and for Vigil: pre-produce the
input, start the consumer process, and sample the consumer group's committed offsets every
50 ms. The rate is (last committed - first committed) / (time of the sample that reached the
end - time of the first sample that showed a commit): process start-up, group join, table
recovery and the first commit interval's worth of events are excluded.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench import data, preload
from bench.kafka import (
    Broker,
    CommitSample,
    CommitTrace,
    OffsetWatcher,
    Record,
    count_records,
    end_offsets,
    make_topics,
    produce,
)
from bench.profiling import Recorder, format_hot_spots, hot_spots
from bench.worker import REPO, Deployment, WorkerProcess, cpu_seconds, machine_cpu_seconds

log = logging.getLogger("bench")

CART_TIMEOUT_S = 30 * 86_400  # 30 days: nothing of the pre-load fires during the run


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


def _avg_len(records: Sequence[Record]) -> float:
    return statistics.fmean(len(v) for _, v in records) if records else 0.0


async def _watch_worker(
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


# --------------------------------------------------------------------------------------------
# 1. baseline
# --------------------------------------------------------------------------------------------


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
        "avg_value_bytes": round(_avg_len(cycled), 1),
        "producer_rate": round(prod_rate),
        # From process start to done (start-up included): other processes' CPU per second.
        "other_cpu_per_wall": round(max(0.0, other), 2),
        "self_report": out.decode(errors="replace").strip().splitlines()[-1:],
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------------------------
# 2. fraud
# --------------------------------------------------------------------------------------------


async def fraud(ctx: Context, guarantee: str, profile: bool = False) -> dict[str, Any]:
    records = ctx.fraud_data()
    if profile:  # enough samples: a longer run of the same kind of traffic
        records, _ = data.fraud_traffic(3 * len(records), ctx.seed)
    n = len(records)
    tag = f"fraud-{'alo' if guarantee == 'at_least_once' else 'eos'}{'-prof' if profile else ''}"
    dep = ctx.deployment(tag, guarantee)
    await make_topics(ctx.broker.bootstrap, dep.topics.values(), ctx.partitions)
    ctx.say(f"{tag}: producing {n} transactions, then starting the worker")
    await produce(ctx.broker.bootstrap, dep.topics["transactions"], records)
    worker = dep.worker().start()
    recorder: Recorder | None = None
    raw = ctx.results_dir / f"{ctx.run_id}-{tag}.pyspy.txt"

    def start_profile() -> None:
        nonlocal recorder
        recorder = Recorder(worker.pid, raw).start()

    try:
        trace, ready_s, cpu = await _watch_worker(
            ctx,
            dep,
            worker,
            dep.topics["transactions"],
            n,
            timeout=max(600.0, n / 50),
            on_first_commit=start_profile if profile else None,
        )
        mem = worker.memory()
        alerts = worker.metric("vigil_alerts_total", 'kind="fraud"')
        dups = worker.metric("vigil_events_in_total", 'outcome="duplicate"')
        # State updates: every transaction processed "ok" writes its card's state once.
        updates = worker.metric_sum(
            "vigil_events_in_total", f'topic="{dep.topics["transactions"]}"', 'outcome="ok"'
        )
    finally:
        prof_err = recorder.stop() if recorder is not None else ""
        stop_s = worker.stop()
    # After the clean stop (every checkpoint committed): what the changelog holds.
    changelog = await count_records(
        ctx.broker.bootstrap, preload.changelog_topic(dep.app_id, "cards"), ctx.partitions
    )
    rate, seconds, events = trace.rate(0, n)
    out: dict[str, Any] = {
        "guarantee": guarantee,
        "events_per_s": round(rate, 1),
        "window_s": round(seconds, 2),
        "events_in_window": events,
        "events": n,
        "source": ctx.fraud_source,
        "avg_value_bytes": round(_avg_len(records), 1),
        "ready_s": round(ready_s, 2) if ready_s is not None else None,
        "alerts": alerts,
        "duplicates": dups,
        "rss_mib": round(mem.get("VmRSS", 0.0), 1),
        "stop_s": round(stop_s, 2),
        "state_updates": updates,
        "changelog": changelog,
        "changelog_records_per_update": (
            round(changelog["records"] / updates, 4) if updates else None
        ),
        **cpu,
    }
    if profile:
        out["profile"] = _profile_result(ctx, raw, prof_err, tag)
    return out


def _profile_result(ctx: Context, raw: Path, err: str, tag: str) -> dict[str, Any]:
    if not (raw.is_file() and raw.stat().st_size):
        return {"error": err.strip()[-500:] or "no samples"}
    spots = hot_spots(raw)
    text = format_hot_spots(spots)
    raw.with_suffix(".top.txt").write_text(text + "\n")
    ctx.say(f"{tag}: profile\n{text}")
    return {"raw": str(raw), **spots}


# --------------------------------------------------------------------------------------------
# 3. carts
# --------------------------------------------------------------------------------------------


async def carts(ctx: Context, open_carts: int) -> dict[str, Any]:
    tag = f"carts-{open_carts // 1000}k"
    dep = ctx.deployment(tag, ctx.state_guarantee, cart_timeout_s=str(CART_TIMEOUT_S))
    await make_topics(ctx.broker.bootstrap, dep.topics.values(), ctx.partitions)
    start_ms = int(time.time() * 1000)
    pre = data.cart_preload(open_carts, ctx.seed, start_ms)
    topic = dep.topics["cart_events"]
    out: dict[str, Any] = {"open_carts": open_carts, "guarantee": ctx.state_guarantee}
    worker = dep.worker()
    base = 0
    try:
        if ctx.preload_via == "changelog":
            t0 = time.perf_counter()
            states, highest = preload.cart_states(pre, CART_TIMEOUT_S)
            compute_s = time.perf_counter() - t0
            ctx.say(f"{tag}: writing {len(states)} cart states to the changelog")
            clocks = [(p, str(p).encode(), str(highest).encode()) for p in range(ctx.partitions)]
            write_s = await preload.write_changelog(
                ctx.broker.bootstrap,
                preload.changelog_topic(dep.app_id, "carts"),
                ctx.partitions,
                states,
            )
            await preload.write_changelog(
                ctx.broker.bootstrap,
                preload.changelog_topic(dep.app_id, "cart-clocks"),
                ctx.partitions,
                [],
                clocks,
            )
            out["preload"] = {
                "via": "changelog",
                "compute_s": round(compute_s, 1),
                "write_s": round(write_s, 1),
            }
            worker.start()
            ready = await asyncio.to_thread(worker.wait_ready, 900.0)
            out["ready_s_with_recovery"] = round(ready, 2)
        else:
            ctx.say(f"{tag}: producing {open_carts} add_to_cart events (pre-load via worker)")
            await produce(ctx.broker.bootstrap, topic, pre)
            worker.start()
            trace, ready, cpu = await _watch_worker(
                ctx, dep, worker, topic, open_carts, timeout=max(900.0, open_carts / 20)
            )
            rate, seconds, _ = trace.rate(0, open_carts)
            out["preload"] = {"via": "worker", "events_per_s": round(rate, 1), **cpu}
            base = open_carts
        out["rss_mib_after_preload"] = round(worker.memory().get("VmRSS", 0.0), 1)
        batch = data.cart_batch(ctx.sizes.cart_batch, open_carts, ctx.seed + 1, start_ms + 1000)
        ctx.say(f"{tag}: measuring a batch of {len(batch)} cart events")
        await produce(ctx.broker.bootstrap, topic, batch)
        trace, _, cpu = await _watch_worker(
            ctx, dep, worker, topic, base + len(batch), timeout=900.0, start_at=base
        )
        rate, seconds, events = trace.rate(base, base + len(batch))
        await asyncio.sleep(GAUGE_WAIT_S)  # the table-size gauges refresh every 5 s
        out.update(
            events_per_s=round(rate, 1),
            window_s=round(seconds, 2),
            events_in_window=events,
            batch=len(batch),
            avg_value_bytes=round(_avg_len(batch), 1),
            pending_timers=worker.metric("vigil_pending_timers"),
            open_carts_gauge=worker.metric("vigil_open_carts"),
            abandoned=worker.metric("vigil_alerts_total", 'kind="cart_abandoned"'),
            rss_mib=round(worker.memory().get("VmRSS", 0.0), 1),
            **cpu,
        )
    finally:
        worker.stop()
    return out


GAUGE_WAIT_S = 5.5


# --------------------------------------------------------------------------------------------
# 4. latency
# --------------------------------------------------------------------------------------------


def _pct(values: Sequence[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


async def latency(ctx: Context, guarantee: str, rate: float) -> dict[str, Any]:
    tag = f"latency-{'alo' if guarantee == 'at_least_once' else 'eos'}"
    dep = ctx.deployment(tag, guarantee)
    await make_topics(ctx.broker.bootstrap, dep.topics.values(), ctx.partitions)
    worker = dep.worker().start()
    try:
        ready = await asyncio.to_thread(worker.wait_ready, 300.0)
        await asyncio.sleep(1.0)
        ctx.say(f"{tag}: {rate:.0f} alerting transactions/s for {ctx.sizes.latency_seconds:.0f} s")
        result = await _latency_run(ctx, dep, rate, worker.cpu_seconds)
        result.update(guarantee=guarantee, ready_s=round(ready, 2))
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


# --------------------------------------------------------------------------------------------
# 5. recovery and memory
# --------------------------------------------------------------------------------------------


async def recovery(ctx: Context) -> dict[str, Any]:
    keys = ctx.sizes.recovery_keys
    tag = f"recovery-{keys // 1000}k"
    dep = ctx.deployment(tag, ctx.state_guarantee)
    await make_topics(ctx.broker.bootstrap, dep.topics.values(), ctx.partitions)
    start_ms = int(time.time() * 1000)
    cards = data.distinct_cards(keys, ctx.seed, start_ms)
    topic = dep.topics["transactions"]
    out: dict[str, Any] = {"keys": keys, "guarantee": ctx.state_guarantee}
    worker = dep.worker()
    try:
        base = 0
        if ctx.preload_via == "changelog":
            t0 = time.perf_counter()
            states = preload.card_states(cards, start_ms)
            compute_s = time.perf_counter() - t0
            ctx.say(f"{tag}: writing {len(states)} card states to the changelog")
            write_s = await preload.write_changelog(
                ctx.broker.bootstrap,
                preload.changelog_topic(dep.app_id, "cards"),
                ctx.partitions,
                states,
            )
            out["preload"] = {
                "via": "changelog",
                "compute_s": round(compute_s, 1),
                "write_s": round(write_s, 1),
                "avg_state_bytes": round(_avg_len(states), 1),
            }
            worker.start()
            first = await asyncio.to_thread(worker.wait_ready, 900.0)
            out["first_start_ready_s"] = round(first, 2)
        else:
            ctx.say(f"{tag}: producing {keys} transactions on distinct cards (via worker)")
            await produce(ctx.broker.bootstrap, topic, cards)
            worker.start()
            trace, _, cpu = await _watch_worker(
                ctx, dep, worker, topic, keys, timeout=max(900.0, keys / 20)
            )
            rate, _, _ = trace.rate(0, keys)
            out["preload"] = {"via": "worker", "events_per_s": round(rate, 1), **cpu}
            base = keys
        # A live batch on existing cards: the worker reads states back from RocksDB.
        live = data.distinct_cards(ctx.sizes.recovery_batch, ctx.seed, start_ms + 60_000)
        live = [(k, v.replace(b'"txn_id":"pre-', b'"txn_id":"live-')) for k, v in live]
        await produce(ctx.broker.bootstrap, topic, live)
        await _watch_worker(ctx, dep, worker, topic, base + len(live), 600.0, start_at=base)
        await asyncio.sleep(GAUGE_WAIT_S)
        mem = worker.memory()
        out["rss_mib_loaded"] = round(mem.get("VmRSS", 0.0), 1)
        out["hwm_mib_loaded"] = round(mem.get("VmHWM", 0.0), 1)
        out["table_keys_gauge_loaded"] = worker.metric("vigil_table_keys", 'table="cards"')
        # (1) A crash: SIGKILL, restart on the same store dir (whatever Vigil keeps there).
        worker.kill()
        changelog = preload.changelog_topic(dep.app_id, "cards")
        out["changelog_offsets_at_kill"] = await end_offsets(
            ctx.broker.bootstrap, changelog, ctx.partitions
        )
        ctx.say(f"{tag}: worker SIGKILLed; restarting it on the same store")
        mark = worker.log_size()
        worker = dep.worker().start()
        ready = await asyncio.to_thread(worker.wait_ready, 900.0, 0.05)
        out["restart_after_sigkill_s"] = round(ready, 2)
        out["rss_mib_after_sigkill_restart"] = round(worker.memory().get("VmRSS", 0.0), 1)
        out["stop_s"] = round(worker.stop(), 2)
        out.update(_restart_log(worker.log_since(mark)))
        out["keys_in_store_after_sigkill_restart"] = count_store_keys(dep.store_dir, "cards")
        # (2) A lost disk: clean stop (above), store deleted, full rebuild from the changelog.
        shutil.rmtree(dep.store_dir, ignore_errors=True)
        ctx.say(f"{tag}: store deleted; restarting and timing recovery")
        mark = worker.log_size()
        worker = dep.worker().start()
        recorder = None
        if ctx.profile:
            await asyncio.sleep(1.0)  # let the interpreter start before py-spy attaches
            raw = ctx.results_dir / f"{ctx.run_id}-{tag}.pyspy.txt"
            recorder = Recorder(worker.pid, raw).start()
        ready = await asyncio.to_thread(worker.wait_ready, 900.0, 0.05)
        out["recovery_s"] = round(ready, 2)
        if recorder is not None:
            err = recorder.stop()
            out["profile"] = _profile_result(ctx, recorder.out, err, tag)
        mem = worker.memory()
        out["rss_mib_recovered"] = round(mem.get("VmRSS", 0.0), 1)
        out["hwm_mib_recovered"] = round(mem.get("VmHWM", 0.0), 1)
        await asyncio.sleep(GAUGE_WAIT_S)
        out["table_keys_gauge_recovered"] = worker.metric("vigil_table_keys", 'table="cards"')
        out["rss_mib_recovered_settled"] = round(worker.memory().get("VmRSS", 0.0), 1)
        worker.stop()
        out["recovery_phases_s"] = _phases(worker.log_since(mark))
        out["keys_in_store"] = count_store_keys(dep.store_dir, "cards")
    finally:
        worker.stop()
    return out


_BULK_RESTORE = re.compile(
    r"bulk restore: (\d+) changelog records into (\d+) partitions in ([0-9.]+) s"
)
#: What a worker logs when it discarded its local stores after an unclean stop (before the
#: commit protocol of b1dc970; later versions keep the stores).
_STORE_DISCARDED = ("rebuilding local tables from their changelogs", "tables rebuilt from")


_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]")
#: Log lines that mark a start's phases (the first of each after the start counts).
_PHASE_MARKS = {
    "start": "[^Worker]: Starting...",
    "join_request": "(Re-)joining group",
    "joined": "Joined group",
    "bulk_restore_done": "bulk restore:",
    "ready": "[^Worker]: Ready",
}


def _restart_log(text: str) -> dict[str, Any]:
    """What a restart's log says about its table restore (every rebalance logs one line)."""
    restores = [
        {"records": int(n), "partitions": int(p), "seconds": float(t)}
        for n, p, t in _BULK_RESTORE.findall(text)
    ]
    return {
        # None: no "bulk restore" line (versions before 81d3224 log it only when N > 0).
        "restart_changelog_records": sum(r["records"] for r in restores) if restores else None,
        "restart_bulk_restores": restores,
        "restart_store_discarded": any(s in text for s in _STORE_DISCARDED),
        "restart_phases_s": _phases(text),
    }


def _phases(text: str) -> dict[str, float | None]:
    """Seconds between the log's phase marks of one start (log timestamps, ms resolution).

    start -> join_request: imports done to the group join request; join_request -> joined:
    the group's wait (a SIGKILLed member stays in the group until its session times out);
    joined -> bulk_restore_done: partitions opened, producers fenced, changelogs read in bulk;
    bulk_restore_done -> ready: Faust's own recovery (whatever the bulk restore left).
    """
    seen: dict[str, float] = {}
    for line in text.splitlines():
        m = _LOG_TIME.match(line)
        if m is None:
            continue
        for name, mark in _PHASE_MARKS.items():
            if name not in seen and mark in line:
                stamp = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S"))
                seen[name] = stamp + int(m.group(2)) / 1000
    names = list(_PHASE_MARKS)
    out: dict[str, float | None] = {}
    for a, b in itertools.pairwise(names):
        key = f"{a}_to_{b}"
        out[key] = round(seen[b] - seen[a], 2) if a in seen and b in seen else None
    return out


def count_store_keys(store_dir: Path, table: str) -> int | None:
    """Exact key count of a table's RocksDB partitions (read-only, after the worker stopped)."""
    try:
        from rocksdict import AccessType, Options, Rdict
    except ImportError:
        return None
    total = 0
    dbs = [p for p in store_dir.rglob(f"{table}-*.db") if p.is_dir()]
    if not dbs:
        return None
    for path in dbs:
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            total += sum(1 for k in db.keys() if not bytes(k).startswith(b"__faust"))  # noqa: SIM118
        finally:
            db.close()
    return total
