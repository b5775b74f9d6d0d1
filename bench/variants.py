"""Runs that compare settings within one benchmark run, on one broker.

- `--ab NAME=A,B [--repeat N]`: the fraud worker at both guarantees with the worker setting (or
  diagnostic switch) NAME at each value, alternated A B, then B A, ... N times, so that a drift
  of the machine's load hits both sides alike (`--ab-parallel`: the values' workers run at the
  same time, each on its own deployment: a fairer split when the load changes by the minute).
  The table gives each value's median rate as a share of the same run's baseline, and B/A per
  pair: the spread of the pairs is the noise.
- `--commit-intervals 0.1,0.25,0.5,1`: under exactly_once, at each commit interval, the fraud
  worker's throughput and the latency run (at one offered rate for all intervals).
- The max rate on the latency run's own traffic (`alerting_<guarantee>`, every transaction
  alerts): the latency run offers 25 % of it (the issue's "25 % of max on the same traffic").
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

from bench import scenarios
from bench.report import GUARANTEES
from bench.scenarios import Context

Step = Callable[[str, Awaitable[dict[str, Any]]], Awaitable[None]]


def parse_ab(spec: str) -> tuple[str, list[str]]:
    """`VIGIL_LEAN_FETCH=0,1` -> ("lean_fetch", ["0", "1"]) (the `ctx.deployment` env form)."""
    name, sep, values = spec.partition("=")
    name = name.strip().upper()
    vals = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name or len(vals) < 2:
        raise ValueError(f"--ab takes NAME=A,B (got {spec!r})")
    return name.removeprefix("VIGIL_").lower(), vals


def _short(name: str) -> str:
    return "".join(part[:1] for part in name.split("_")) or "v"


def ab_key(guarantee: str, name: str, value: str, rep: int) -> str:
    return f"ab_{guarantee}_{name}={value}_{rep}"


async def run_ab(
    ctx: Context,
    step: Step,
    name: str,
    values: list[str],
    repeat: int,
    parallel: bool = False,
) -> None:
    """Each guarantee, `repeat` rounds; one round runs every value once, one after the other
    (order reversed every other round) or, `parallel`, all at the same time on the same broker:
    then every side sees the same load from the rest of the machine (and from each other)."""
    for g in GUARANTEES:
        for rep in range(repeat):
            order = values if rep % 2 == 0 else list(reversed(values))
            runs = [
                step(
                    ab_key(g, name, value, rep),
                    scenarios.fraud(
                        ctx,
                        g,
                        env={name: value},
                        variant=f"{_short(name)}{value}r{rep}".replace(".", "p"),
                    ),
                )
                for value in order
            ]
            if parallel:
                await asyncio.gather(*runs)
            else:
                for run in runs:
                    await run


def sweep_key(kind: str, interval: str) -> str:
    return f"sweep_{kind}_ci={interval}"


async def run_commit_sweep(ctx: Context, step: Step, intervals: list[str], rate: float) -> None:
    g = "exactly_once"
    for ci in intervals:
        env = {"commit_interval_s": ci}
        variant = f"ci{ci}".replace(".", "p")
        await step(sweep_key("fraud", ci), scenarios.fraud(ctx, g, env=env, variant=variant))
        await step(
            sweep_key("latency", ci), scenarios.latency(ctx, g, rate, env=env, variant=variant)
        )


def _rate(r: dict[str, Any]) -> float | None:
    rate = r.get("events_per_s")
    return float(rate) if rate else None


def variant_rows(results: dict[str, Any]) -> list[list[str]]:
    """Rows for the A/B runs, the commit-interval sweep and the alerting max rates."""
    base = results.get("baseline", {}).get("events_per_s")
    rows: list[list[str]] = []

    def share(rate: float | None) -> str:
        return f"{100 * rate / base:.1f} %" if base and rate else "-"

    for g in GUARANTEES:
        r = results.get(f"alerting_{g}")
        if r:
            rows.append(
                [
                    f"max rate, alerting traffic, {g}",
                    f"{_rate(r) or 0:,.0f} ev/s",
                    share(_rate(r)),
                    f"{r['events']:,} txns, every one alerts; processed "
                    f"{r.get('processed_events_per_s') or 0:,.0f} ev/s; "
                    f"{r.get('cpu_us_per_event') or 0:,.0f} CPU-us/ev",
                ]
            )
    runs: dict[tuple[str, str, str], list[tuple[int, dict[str, Any]]]] = {}
    for key, r in results.items():
        if key.startswith("ab_"):
            head, rep = key.rsplit("_", 1)
            rest = head.removeprefix("ab_")
            g = next(x for x in GUARANTEES if rest.startswith(x))
            name, _, value = rest.removeprefix(g + "_").partition("=")
            runs.setdefault((g, name, value), []).append((int(rep), r))
    for g in GUARANTEES:
        sides = sorted((k, v) for k, v in runs.items() if k[0] == g)
        medians: list[float] = []
        for (_, name, value), got in sides:
            rates = [x for _, r in sorted(got, key=lambda t: t[0]) if (x := _rate(r))]
            cpu = [r["cpu_us_per_event"] for _, r in got if r.get("cpu_us_per_event")]
            med = statistics.median(rates) if rates else None
            if med:
                medians.append(med)
            rows.append(
                [
                    f"A/B {g}, {name}={value}",
                    f"{med or 0:,.0f} ev/s",
                    share(med),
                    f"runs {' / '.join(f'{x:,.0f}' for x in rates)} ev/s; CPU-us/ev "
                    f"{' / '.join(f'{c:,.0f}' for c in cpu)}",
                ]
            )
        if len(sides) == 2 and len(medians) == 2:
            (a_key, a_runs), (b_key, b_runs) = sides
            a_by = {rep: _rate(r) for rep, r in a_runs}
            b_by = {rep: _rate(r) for rep, r in b_runs}
            pairs = [
                b_by[rep] / a  # type: ignore[operator]
                for rep, a in sorted(a_by.items())
                if a and b_by.get(rep)
            ]
            rows.append(
                [
                    f"  B/A {g}: {b_key[1]}={b_key[2]} vs {a_key[2]}",
                    f"{medians[1] / medians[0]:.2f}x",
                    "",
                    "per pair " + " / ".join(f"{p:.2f}" for p in pairs),
                ]
            )
    for key in sorted(k for k in results if k.startswith("sweep_fraud_ci=")):
        ci = key.split("=", 1)[1]
        fr = results[key]
        lat = results.get(sweep_key("latency", ci), {})
        p99 = lat.get("p99_ms")
        within = "-" if p99 is None else ("yes" if p99 <= 2000 * float(ci) else "no")
        rows.append(
            [
                f"exactly_once, commit interval {ci} s",
                f"{_rate(fr) or 0:,.0f} ev/s",
                share(_rate(fr)),
                f"latency p50/p99 {lat.get('p50_ms', '-')}/{lat.get('p99_ms', '-')} ms at "
                f"{lat.get('offered_rate', 0):.0f} ev/s offered, {lat.get('missing', '-')} "
                f"missing; p99 <= 2 x interval: {within}; "
                f"{fr.get('cpu_us_per_event') or 0:,.0f} CPU-us/ev",
            ]
        )
    return rows
