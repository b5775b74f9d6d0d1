"""`python -m bench`: run the selected scenarios against one broker, print a table, save JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench import peers, scenarios, variants
from bench.kafka import Broker
from bench.machine import code_state, machine
from bench.peers import scenario as peer_scenario
from bench.profiling import py_spy
from bench.report import GUARANTEES, TARGETS, render_table, summarize
from bench.scenarios import Context, Sizes
from bench.worker import load_average

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SCENARIOS = ("baseline", "fraud", "alerting", "carts", "latency", "recovery")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark Vigil's workers against a raw aiokafka baseline on a real broker.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    p.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of: {','.join(SCENARIOS)} (default: all)",
    )
    p.add_argument("--broker", help="use this broker (host:port) instead of starting one")
    p.add_argument("--partitions", type=int, default=4, help="partitions of every topic (4)")
    p.add_argument("--seed", type=int, default=20261122, help="seed of every data set")
    p.add_argument(
        "--preload",
        choices=("changelog", "worker"),
        default="changelog",
        help="how tables are pre-loaded for carts/recovery: write the states to the changelog "
        "with Vigil's own code (default, fast) or send the events through the worker (slow)",
    )
    p.add_argument(
        "--state-guarantee",
        choices=GUARANTEES,
        default="exactly_once",
        help="processing guarantee of the carts and recovery workers (default exactly_once, "
        "the worker's default)",
    )
    p.add_argument(
        "--latency-rate",
        type=float,
        help="offered rate of the latency run, events/s (default: 25 %% of this run's max "
        "fraud throughput, else of the latest saved result)",
    )
    p.add_argument(
        "--latency-guarantees",
        default=",".join(GUARANTEES),
        help="guarantees to measure latency at (default both)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after the measured runs, run the fraud pipeline again (both guarantees) under "
        "py-spy and print the hot spots (the measured runs are never profiled)",
    )
    p.add_argument(
        "--ab",
        metavar="NAME=A,B",
        help="also run the fraud worker (both guarantees) with worker setting NAME at each "
        "value, alternated (e.g. VIGIL_LEAN_FETCH=0,1)",
    )
    p.add_argument("--repeat", type=int, default=1, help="A/B pairs per guarantee (1)")
    p.add_argument(
        "--ab-parallel",
        action="store_true",
        help="run the A and B workers of a pair at the same time (same load for both)",
    )
    p.add_argument(
        "--commit-intervals",
        metavar="S,S,...",
        help="exactly_once fraud throughput and latency at each VIGIL_COMMIT_INTERVAL_S "
        "(e.g. 0.1,0.25,0.5,1)",
    )
    p.add_argument(
        "--peers",
        metavar="NAME,...",
        help="after the fraud scenario, run its work on these peers too (quix: the six rules "
        "on Quix Streams, both guarantees; needs .venv/bin/pip install -e '.[bench]')",
    )
    p.add_argument("--keep", action="store_true", help="keep the work and broker directories")
    p.add_argument("--events", type=int, help="override the fraud run's transaction count")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        print(f"bench: unknown scenario(s) {sorted(unknown)}; known: {SCENARIOS}", file=sys.stderr)
        return 2
    lat_guarantees = [g.strip() for g in args.latency_guarantees.split(",") if g.strip()]
    if set(lat_guarantees) - set(GUARANTEES):
        print(f"bench: --latency-guarantees takes {GUARANTEES}", file=sys.stderr)
        return 2
    ab: tuple[str, list[str]] | None = None
    if args.ab:
        try:
            ab = variants.parse_ab(args.ab)
        except ValueError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
    intervals = [v.strip() for v in (args.commit_intervals or "").split(",") if v.strip()]
    try:
        [float(v) for v in intervals]
    except ValueError:
        print("bench: --commit-intervals takes seconds, e.g. 0.1,0.25,0.5,1", file=sys.stderr)
        return 2
    try:
        peer_names = peers.parse_peers(args.peers)
    except ValueError as exc:
        print(f"bench: --peers: {exc}", file=sys.stderr)
        return 2
    lacking = peers.missing(peer_names)
    if lacking:
        print("\n".join(lacking), file=sys.stderr)
        return 2
    if args.profile and py_spy() is None:
        print("bench: --profile needs py-spy (.venv/bin/pip install py-spy)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)

    sizes = Sizes.for_mode(args.quick)
    if args.events:
        sizes = Sizes(**{**sizes.__dict__, "fraud_events": args.events})
    run_id = time.strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"vigil-bench-{run_id}-"))
    started = time.monotonic()
    print(f"bench {run_id}: {'quick' if args.quick else 'full'} mode, scenarios {only}")
    print(f"  machine: {machine()}")
    broker = Broker.start(args.broker, keep=args.keep)
    print(f"  broker: Kafka {broker.version} at {broker.bootstrap}")
    ctx = Context(
        broker=broker,
        run_id=run_id,
        workdir=workdir,
        results_dir=RESULTS_DIR,
        partitions=args.partitions,
        seed=args.seed,
        sizes=sizes,
        preload_via=args.preload,
        state_guarantee=args.state_guarantee,
        profile=args.profile,
        broker_pid=broker.pid,
    )
    errors: dict[str, str] = {}
    try:
        asyncio.run(_run_all(ctx, only, args, lat_guarantees, errors, ab, intervals, peer_names))
    except KeyboardInterrupt:
        errors["interrupted"] = "Ctrl-C"
    finally:
        broker.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "run_id": run_id,
        "mode": "quick" if args.quick else "full",
        "scenarios": only,
        "peers": peer_names,
        "machine": machine(),
        "code": code_state(),
        "broker": {"version": broker.version, "external": bool(args.broker)},
        "partitions": args.partitions,
        "seed": args.seed,
        "preload": args.preload,
        "state_guarantee": args.state_guarantee,
        "sizes": sizes.__dict__,
        "elapsed_s": round(time.monotonic() - started, 1),
        "results": ctx.results,
        "errors": errors,
    }
    rows, verdicts = summarize(ctx.results, args.quick)
    report["targets"] = verdicts
    print()
    print(render_table(rows + variants.variant_rows(ctx.results)))
    print()
    for key, verdict in verdicts.items():
        print(f"  {verdict['status']:4}  {TARGETS[key]}: {verdict['detail']}")
    for name, err in errors.items():
        print(f"  ERROR {name}: {err.strip().splitlines()[-1] if err.strip() else err}")
    path = RESULTS_DIR / f"{run_id}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nresults: {path}  ({report['elapsed_s']:.0f} s)")
    return 1 if errors else 0


async def _run_all(
    ctx: Context,
    only: list[str],
    args: argparse.Namespace,
    lat_guarantees: list[str],
    errors: dict[str, str],
    ab: tuple[str, list[str]] | None = None,
    intervals: list[str] | None = None,
    peer_names: list[str] | None = None,
) -> None:
    async def step(name: str, coro: Any) -> None:
        load0 = load_average()
        try:
            ctx.results[name] = await coro
            ctx.results[name]["loadavg_1m"] = [load0, load_average()]  # before, after
            ctx.say(f"{name}: {_brief(ctx.results[name])}")
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            ctx.say(f"{name} FAILED: {errors[name]}")
            traceback.print_exc()

    if "baseline" in only:
        await step("baseline", scenarios.baseline(ctx))
    if "fraud" in only:
        for g in GUARANTEES:
            await step(f"fraud_{g}", scenarios.fraud(ctx, g))
    for peer in peer_names or []:  # the fraud scenario's work on another library, same data
        for g in GUARANTEES:
            await step(f"{peer}_{g}", peer_scenario.run(ctx, peer, g))
    if ab is not None:
        await variants.run_ab(ctx, step, ab[0], ab[1], max(1, args.repeat), args.ab_parallel)
    # The latency run offers 25 % of the max rate on its own (all-alerting) traffic.
    wants_rate = ("latency" in only or intervals) and not args.latency_rate
    if "alerting" in only or wants_rate:
        for g in GUARANTEES:
            await step(f"alerting_{g}", scenarios.fraud(ctx, g, traffic="alerting"))
    if "carts" in only:
        for n in ctx.sizes.cart_open:
            await step(f"carts_{n}", scenarios.carts(ctx, n))
    if "latency" in only:
        rate = args.latency_rate or _latency_rate(ctx.results)
        for g in lat_guarantees:
            await step(f"latency_{g}", scenarios.latency(ctx, g, rate))
    if intervals:
        rate = args.latency_rate or _latency_rate(ctx.results)
        await variants.run_commit_sweep(ctx, step, intervals, rate)
    if "recovery" in only:
        await step("recovery", scenarios.recovery(ctx))
    if args.profile:
        for g in GUARANTEES:
            await step(f"profile_fraud_{g}", scenarios.fraud(ctx, g, profile=True))


def _brief(result: dict[str, Any]) -> str:
    keys = (
        "events_per_s",
        "cpu_us_per_event",
        "alerts",
        "changelog_records_per_update",
        "p50_ms",
        "p99_ms",
        "restart_after_sigkill_s",
        "restart_changelog_records",
        "recovery_s",
        "rss_mib",
        "ready_s",
    )
    brief = ", ".join(f"{k}={result[k]}" for k in keys if k in result)
    scoring = result.get("scoring")
    if scoring:  # the risk-scoring cost per event, measured in the same run
        brief += f", scoring_us={scoring['features_and_model_us_per_event']}"
        brief += f" (rules {scoring['rules_us_per_event']})"
    return brief


def _capacity(fraud: dict[str, Any]) -> float:
    """A fraud run's max rate: the committed rate, or the processed one if lower (lumpy commits
    can make a short committed window look faster than the worker is)."""
    rates = [fraud.get("events_per_s") or 0.0, fraud.get("processed_events_per_s") or math.inf]
    return float(min(rates)) if rates[0] else 0.0


def _latency_rate(results: dict[str, Any]) -> float:
    """25 % of the max throughput on the latency run's own traffic (every transaction alerts)
    in this run, else in the latest saved run that measured it, else 100/s."""
    rates = [_capacity(results.get(f"alerting_{g}", {})) for g in GUARANTEES]
    if max(rates) > 0:
        return 0.25 * max(rates)
    for path in sorted(RESULTS_DIR.glob("*.json"), reverse=True):
        try:
            old = json.loads(path.read_text())["results"]
        except (OSError, ValueError, KeyError):
            continue
        rates = [_capacity(old.get(f"alerting_{g}", {})) for g in GUARANTEES]
        if max(rates) > 0:
            return 0.25 * max(rates)
    return 100.0
