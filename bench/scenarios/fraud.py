"""Scenario 2, the fraud pipeline: throughput of pre-produced transactions, per guarantee."""

from __future__ import annotations

from typing import Any

from bench import data, preload
from bench.kafka import count_records, make_topics, produce
from bench.profiling import Recorder
from bench.scenarios.common import Context, avg_len, profile_result, watch_worker
from bench.scoring import scoring_cost


async def fraud(
    ctx: Context,
    guarantee: str,
    profile: bool = False,
    *,
    env: dict[str, str] | None = None,
    variant: str = "",
    traffic: str = "normal",
) -> dict[str, Any]:
    """One fraud worker run. `env`: extra worker settings (`{"commit_interval_s": "0.1"}` is
    `VIGIL_COMMIT_INTERVAL_S`), `variant` names them in the tag; `traffic="alerting"`: the
    latency run's transactions (every one alerts) instead of the realistic ~1 % alerting mix."""
    records = ctx.fraud_data()
    source = ctx.fraud_source
    if traffic == "alerting":
        records = data.alerting_traffic(len(records), ctx.seed)
        source = "bench.data.alerting_traffic (the latency run's transactions)"
    if profile:  # enough samples: a longer run of the same kind of traffic
        records, _ = data.fraud_traffic(3 * len(records), ctx.seed)
    n = len(records)
    tag = f"{'alerting' if traffic == 'alerting' else 'fraud'}-"
    tag += f"{'alo' if guarantee == 'at_least_once' else 'eos'}{'-prof' if profile else ''}"
    tag += f"-{variant}" if variant else ""
    # The risk-scoring cost per event on these very transactions, before the worker starts.
    scoring = scoring_cost(records) if traffic == "normal" and not profile else None
    dep = ctx.deployment(tag, guarantee, **(env or {}))
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
        trace, ready_s, cpu = await watch_worker(
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
        # (prometheus_client writes labels sorted by name: `{outcome="ok",topic="…"}`.)
        updates = worker.metric_sum(
            "vigil_events_in_total", f'outcome="ok",topic="{dep.topics["transactions"]}"'
        )
    finally:
        prof_err = recorder.stop() if recorder is not None else ""
        worker.stop()
        stop_s = worker.last_stop_s
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
        "source": source,
        "traffic": traffic,
        "env": dep.extra_env,
        "avg_value_bytes": round(avg_len(records), 1),
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
    if scoring is not None:
        out["scoring"] = scoring
    if profile:
        out["profile"] = profile_result(ctx, raw, prof_err, tag)
    return out
