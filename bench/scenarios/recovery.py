"""Scenario 5, recovery and memory: restart after SIGKILL, full rebuild, RSS at many cards."""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import time
from pathlib import Path
from typing import Any

from bench import data, preload
from bench.kafka import end_offsets, make_topics, produce
from bench.profiling import Recorder
from bench.scenarios.common import (
    GAUGE_WAIT_S,
    READY_POLL_S,
    Context,
    avg_len,
    profile_result,
    watch_worker,
)


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
                "avg_state_bytes": round(avg_len(states), 1),
            }
            worker.start()
            first = await asyncio.to_thread(worker.wait_ready, 900.0, READY_POLL_S)
            out["first_start_ready_s"] = round(first, 2)
        else:
            ctx.say(f"{tag}: producing {keys} transactions on distinct cards (via worker)")
            await produce(ctx.broker.bootstrap, topic, cards)
            worker.start()
            trace, _, cpu = await watch_worker(
                ctx, dep, worker, topic, keys, timeout=max(900.0, keys / 20)
            )
            rate, _, _ = trace.rate(0, keys)
            out["preload"] = {"via": "worker", "events_per_s": round(rate, 1), **cpu}
            base = keys
        # A live batch on existing cards: the worker reads states back from RocksDB.
        live = data.distinct_cards(ctx.sizes.recovery_batch, ctx.seed, start_ms + 60_000)
        live = [(k, v.replace(b'"txn_id":"pre-', b'"txn_id":"live-')) for k, v in live]
        await produce(ctx.broker.bootstrap, topic, live)
        await watch_worker(ctx, dep, worker, topic, base + len(live), 600.0, start_at=base)
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
        worker.stop()
        out["stop_s"] = round(worker.last_stop_s, 2)
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
            out["profile"] = profile_result(ctx, recorder.out, err, tag)
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
