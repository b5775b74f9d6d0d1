"""The peer run of the fraud scenario: the same transactions, broker and measurement.

The fraud scenario's pre-produced transactions (`Context.fraud_data()`, the very records of
the Vigil fraud runs) go into a fresh topic with the run's partitions; the peer process
(`python -m bench.peers.quix`) starts; its consumer group's committed offsets are sampled
every 50 ms through the admin client, as for the baseline and every Vigil worker
(`bench.scenarios.common`): rate = committed events from the first commit seen to the sample
that reached the end, over that time. CPU per event is the peer process's CPU (all its
threads, /proc) over the same window; "others' CPU" is the machine's busy time minus the
peer's, the broker's and the benchmark's. Then the peer is stopped (SIGTERM: Quix commits
its last checkpoint and closes) and its alerts topic is read back (`read_committed`) and
counted: it must hold as many alerts as Vigil's fraud run of the same guarantee counted.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.kafka import (
    CommitSample,
    CommitTrace,
    OffsetWatcher,
    count_records,
    make_topics,
    produce,
)
from bench.peers.quix import PROGRESS_EVERY, read_progress
from bench.scenarios.common import Context, _processed_rate, avg_len
from bench.worker import REPO, cpu_seconds, machine_cpu_seconds


def commit_interval() -> float:
    """The Vigil workers' commit interval: `VIGIL_COMMIT_INTERVAL_S`'s default (the fraud
    runs set no other)."""
    from app.settings import Settings

    return float(Settings.model_fields["commit_interval_s"].default)


def rss_mib(pid: int) -> float | None:
    """VmRSS of a process in MiB (/proc), None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def last_json_line(text: str) -> dict[str, Any]:
    """The peer's closing summary: the last line of its output that parses as a JSON object."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return {}


async def _changelog_records(ctx: Context, group: str) -> dict[str, int]:
    """Records (read_committed) in the peer's changelog topic(s): Quix names them
    `changelog__<consumer group>--<topic>--<store>`."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=ctx.broker.bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(f"changelog__{group}--")]
    finally:
        await admin.close()
    out = {"records": 0, "offsets": 0}
    for name in names:
        counted = await count_records(ctx.broker.bootstrap, name, ctx.partitions)
        out["records"] += int(counted["records"])
        out["offsets"] += int(counted["offsets"])
    return out


async def quix(ctx: Context, guarantee: str) -> dict[str, Any]:
    """One Quix peer run at `guarantee` (at_least_once / exactly_once)."""
    records = ctx.fraud_data()
    n = len(records)
    tag = f"quix-{'alo' if guarantee == 'at_least_once' else 'eos'}"
    name = f"bench-{ctx.run_id}-{tag}"
    topic_in, topic_out, group = f"{name}-transactions", f"{name}-fraud-alerts", f"{name}-app"
    workdir = ctx.workdir / tag
    workdir.mkdir(parents=True, exist_ok=True)
    interval = commit_interval()
    await make_topics(ctx.broker.bootstrap, [topic_in, topic_out], ctx.partitions)
    ctx.say(f"{tag}: producing {n} transactions, then starting the Quix peer")
    await produce(ctx.broker.bootstrap, topic_in, records)
    cmd = [sys.executable, "-m", "bench.peers.quix", "--bootstrap", ctx.broker.bootstrap]
    cmd += ["--input", topic_in, "--output", topic_out, "--group", group]
    cmd += ["--guarantee", guarantee, "--commit-interval", str(interval)]
    progress = workdir / "progress"
    cmd += ["--state-dir", str(workdir / "state"), "--progress", str(progress)]
    log_path = workdir / "peer.log"
    trace = CommitTrace()
    processed: list[tuple[float, float]] = []
    next_read = 0.0
    first_seen = False
    cpu0 = cpu1 = b0 = b1 = s0 = s1 = m0 = m1 = 0.0
    rss: float | None = None
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + max(600.0, n / 50)
            async with OffsetWatcher(ctx.broker.bootstrap, group, topic_in, ctx.partitions) as ow:
                while True:
                    value = await ow.committed()
                    now = time.monotonic()
                    if value >= 0:
                        trace.samples.append(CommitSample(now, value))
                        if value > 0 and not first_seen:
                            first_seen = True
                            cpu0, b0 = cpu_seconds(proc.pid), cpu_seconds(ctx.broker_pid)
                            s0, m0 = time.process_time(), machine_cpu_seconds()
                        if value >= n:
                            cpu1, b1 = cpu_seconds(proc.pid), cpu_seconds(ctx.broker_pid)
                            s1, m1 = time.process_time(), machine_cpu_seconds()
                            rss = rss_mib(proc.pid)
                            break
                    if now >= next_read:  # the processed count, every 0.5 s (as Vigil's scrape)
                        count = read_progress(progress)
                        if count is not None:
                            processed.append((now, float(count)))
                        next_read = now + 0.5
                    if proc.poll() is not None:
                        tail = _tail(log_path)
                        raise RuntimeError(f"{tag}: the peer exited {proc.returncode}:\n{tail}")
                    if now > deadline:
                        raise TimeoutError(f"{tag}: committed {value} of {n}")
                    await asyncio.sleep(0.05)
            proc.terminate()  # Quix's SIGTERM handler: stop, commit, close
            await asyncio.to_thread(proc.wait, 60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stop_s = time.monotonic() - started
    summary = last_json_line(log_path.read_text(errors="replace"))
    alerts = await count_records(ctx.broker.bootstrap, topic_out, ctx.partitions)
    changelog = await _changelog_records(ctx, group)
    rate, seconds, events = trace.rate(0, n)
    vigil = ctx.results.get(f"fraud_{guarantee}", {}).get("alerts")
    out: dict[str, Any] = {
        "peer": "quix",
        "library": _version(),
        "guarantee": guarantee,
        "events_per_s": round(rate, 1),
        "window_s": round(seconds, 2),
        "events_in_window": events,
        "events": n,
        "max_commit_stall_s": round(trace.max_stall(0, n), 2),
        # Counted every PROGRESS_EVERY records: the last few hundred may not show.
        "processed_events_per_s": _processed_rate(processed, n - n % PROGRESS_EVERY),
        "source": ctx.fraud_source,
        "avg_value_bytes": round(avg_len(records), 1),
        "commit_interval_s": interval,
        "decode": "bytes + Vigil's intake (app.contract.intake.TRANSACTIONS)",
        "places": "none (empty InMemoryFeedback places; the fraud data set has no labels)",
        "alerts": int(alerts["records"]),  # read back, read_committed
        "alerts_counted": summary.get("alerts"),  # the peer's own count
        "vigil_alerts": int(vigil) if vigil is not None else None,
        "counts": summary,
        "changelog": changelog,
        "changelog_records_per_update": (
            round(changelog["records"] / summary["state_updates"], 4)
            if summary.get("state_updates")
            else None
        ),
        "rss_mib": rss,
        "exit_code": proc.returncode,
        "wall_s": round(stop_s, 1),
        "cpu_s": round(cpu1 - cpu0, 2),
    }
    if seconds:
        own = (cpu1 - cpu0) + (b1 - b0) + (s1 - s0)
        out["cpu_per_wall"] = round((cpu1 - cpu0) / seconds, 2)
        out["cpu_us_per_event"] = round(1e6 * (cpu1 - cpu0) / max(events, 1), 1)
        out["broker_cpu_per_wall"] = round((b1 - b0) / seconds, 2)
        out["bench_cpu_per_wall"] = round((s1 - s0) / seconds, 2)
        out["other_cpu_per_wall"] = round(max(0.0, m1 - m0 - own) / seconds, 2)
    return out


async def run(ctx: Context, peer: str, guarantee: str) -> dict[str, Any]:
    """The named peer's run (a name `bench.peers.parse_peers` accepted)."""
    runners = {"quix": quix}
    return await runners[peer](ctx, guarantee)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"quixstreams {version('quixstreams')}, confluent-kafka {version('confluent-kafka')}"
    except PackageNotFoundError:
        return "quixstreams (version unknown)"
