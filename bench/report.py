"""The results table and the verdicts on the issue's targets, from a run's results."""

from __future__ import annotations

import math
from typing import Any

GUARANTEES = ("at_least_once", "exactly_once")

# The targets: (key, description).
TARGETS = {
    "fraud_vs_baseline": "fraud at_least_once >= 50 % of baseline events/s",
    "fraud_eos_vs_baseline": "fraud exactly_once >= 50 % of baseline events/s",
    "cpu_per_event": "fraud <= 150 worker CPU-us per event (both guarantees, incl. metrics)",
    "eos_cost": "exactly_once costs <= 15 % vs at_least_once",
    "p99": "p99 event-to-alert latency < 50 ms",
    "p99_eos_interval": "exactly_once p99 event-to-alert <= 2 x commit interval",
    "fraud_vs_quix": "fraud at_least_once >= the Quix peer of the same run (--peers quix)",
    "fraud_eos_vs_quix": "fraud exactly_once >= the Quix peer of the same run (--peers quix)",
    "recovery": "recovery of a 1 M-key table < 60 s",
    "rss": "worker RSS < 500 MB at 1 M cards",
}


def _num(value: Any, fmt: str = "{:,.0f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def summarize(
    results: dict[str, Any], quick: bool
) -> tuple[list[list[str]], dict[str, dict[str, str]]]:
    rows: list[list[str]] = [["measure", "result", "vs baseline", "notes"]]
    base = results.get("baseline", {}).get("events_per_s")

    def ratio(rate: float | None) -> str:
        return f"{100 * rate / base:.1f} %" if base and rate else "-"

    if "baseline" in results:
        r = results["baseline"]
        rows.append(
            [
                "baseline: aiokafka consume->orjson->produce",
                f"{_num(r['events_per_s'])} ev/s",
                "100 %",
                f"{r['events']:,} records, {r['avg_value_bytes']:.0f} B; others' CPU "
                f"{_num(r.get('other_cpu_per_wall'), '{:.2f}')}/s",
            ]
        )
    for g in GUARANTEES:
        r = results.get(f"fraud_{g}")
        if r:
            rows.append(
                [
                    f"fraud pipeline, {g}",
                    f"{_num(r['events_per_s'])} ev/s",
                    ratio(r["events_per_s"]),
                    f"{r['events']:,} txns; processed {_num(r.get('processed_events_per_s'))}"
                    f" ev/s; {_num(r.get('cpu_us_per_event'))} CPU-us/ev; max commit stall "
                    f"{_num(r.get('max_commit_stall_s'), '{:.1f}')} s; others' CPU "
                    f"{_num(r.get('other_cpu_per_wall'), '{:.2f}')}/s",
                ]
            )
    rows.extend(peer_rows(results, ratio))
    for g in GUARANTEES:
        r = results.get(f"fraud_{g}")
        if r and r.get("changelog"):
            c = r["changelog"]
            rows.append(
                [
                    f"  changelog records per state update, {g}",
                    _num(r.get("changelog_records_per_update"), "{:.3f}"),
                    "",
                    f"{_num(c['records'])} cards-changelog records (read_committed) / "
                    f"{_num(r.get('state_updates'))} ok events; {_num(c['offsets'])} offsets",
                ]
            )
    for _key, r in sorted(
        ((k, v) for k, v in results.items() if k.startswith("carts_")),
        key=lambda kv: kv[1]["open_carts"],
    ):
        pre = r.get("preload", {})
        note = f"{r['guarantee']}, batch {r['batch']:,}, RSS {_num(r.get('rss_mib'))} MiB"
        if "ready_s_with_recovery" in r:
            note += f", ready {r['ready_s_with_recovery']:.1f} s incl. recovery"
        rows.append(
            [
                f"carts, {r['open_carts']:,} open",
                f"{_num(r['events_per_s'])} ev/s",
                ratio(r["events_per_s"]),
                note,
            ]
        )
        if pre.get("via") == "worker":
            rows.append(
                [
                    f"  pre-load of {r['open_carts']:,} new carts",
                    f"{_num(pre['events_per_s'])} ev/s",
                    ratio(pre["events_per_s"]),
                    "through the worker",
                ]
            )
    for g in GUARANTEES:
        r = results.get(f"latency_{g}")
        if r:
            rows.append(
                [
                    f"latency p50/p95/p99, {g}",
                    f"{_num(r['p50_ms'], '{:.1f}')}/{_num(r['p95_ms'], '{:.1f}')}/"
                    f"{_num(r['p99_ms'], '{:.1f}')} ms",
                    "",
                    f"{r['offered_rate']:.0f} ev/s offered, {r['measured']:,} alerts, "
                    f"{r['missing']} missing; in-worker p50 {_num(r['detected_p50_ms'], '{:.0f}')}"
                    " ms",
                ]
            )
    r = results.get("recovery")
    if r:
        if "restart_after_sigkill_s" in r:
            restores = r.get("restart_bulk_restores") or []
            took = sum(x["seconds"] for x in restores)
            wiped = ", store discarded" if r.get("restart_store_discarded") else ""
            wait = (r.get("restart_phases_s") or {}).get("join_request_to_joined")
            wiped += f", group join {wait:.1f} s" if wait is not None else ""
            rows.append(
                [
                    f"restart after SIGKILL, {r['keys']:,} cards",
                    f"{_num(r['restart_after_sigkill_s'], '{:.1f}')} s",
                    "",
                    f"same store, start to /readyz 200; read "
                    f"{_num(r.get('restart_changelog_records'))} of "
                    f"{_num(r.get('changelog_offsets_at_kill'))} changelog offsets "
                    f"(bulk restore {took:.1f} s{wiped})",
                ]
            )
        rows.append(
            [
                f"full rebuild of {r['keys']:,} cards",
                f"{_num(r.get('recovery_s'), '{:.1f}')} s",
                "",
                f"store deleted, start to /readyz 200; {_num(r.get('keys_in_store'))} keys "
                "in store after",
            ]
        )
        rows.append(
            [
                f"worker RSS at {r['keys']:,} cards",
                f"{_num(max(r.get('rss_mib_loaded', 0), r.get('rss_mib_recovered_settled', 0)))}"
                " MiB",
                "",
                f"loaded {_num(r.get('rss_mib_loaded'))}, recovered "
                f"{_num(r.get('rss_mib_recovered_settled'))}, peak "
                f"{_num(r.get('hwm_mib_recovered'))} MiB",
            ]
        )
    return rows, _verdicts(results, base, quick)


def _verdicts(
    results: dict[str, Any], base: float | None, quick: bool
) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}

    def put(key: str, ok: bool | None, detail: str) -> None:
        out[key] = {"status": "-" if ok is None else ("PASS" if ok else "MISS"), "detail": detail}

    alo = results.get("fraud_at_least_once", {}).get("events_per_s")
    eos = results.get("fraud_exactly_once", {}).get("events_per_s")
    if alo and base:
        share = alo / base
        put("fraud_vs_baseline", share >= 0.5, f"{100 * share:.1f} % of baseline")
    if eos and base:
        share = eos / base
        put("fraud_eos_vs_baseline", share >= 0.5, f"{100 * share:.1f} % of baseline")
    cpus = {
        g: results.get(f"fraud_{g}", {}).get("cpu_us_per_event")
        for g in GUARANTEES
        if results.get(f"fraud_{g}", {}).get("cpu_us_per_event")
    }
    if cpus:
        detail = ", ".join(f"{g} {c:.0f}" for g, c in cpus.items())
        put("cpu_per_event", max(cpus.values()) <= 150, detail)
    for g, key in (("at_least_once", "fraud_vs_quix"), ("exactly_once", "fraud_eos_vs_quix")):
        verdict = peer_verdict(results.get(f"fraud_{g}"), results.get(f"quix_{g}"))
        if verdict is not None:
            out[key] = verdict
    lat_eos = results.get("latency_exactly_once")
    if lat_eos and lat_eos.get("p99_ms") is not None:
        interval = _commit_interval(lat_eos)
        p99 = lat_eos["p99_ms"]
        put(
            "p99_eos_interval",
            p99 <= 2000 * interval,
            f"p99 {p99} ms, commit interval {interval} s",
        )
    if alo and eos:
        cost = 1 - eos / alo
        put("eos_cost", cost <= 0.15, f"exactly_once is {100 * cost:.1f} % slower")
    for g in GUARANTEES:
        lat = results.get(f"latency_{g}")
        if lat and lat.get("p99_ms") is not None:
            p99 = lat["p99_ms"]
            ok = None if isinstance(p99, float) and math.isnan(p99) else p99 < 50
            key = "p99"
            detail = f"{g}: p99 {p99} ms at {lat['offered_rate']:.0f} ev/s"
            if key in out:  # both guarantees: show both, fail if either misses
                prev = out[key]
                status = "PASS" if prev["status"] == "PASS" and ok else "MISS"
                out[key] = {"status": status, "detail": prev["detail"] + "; " + detail}
            else:
                put(key, ok, detail)
    rec = results.get("recovery")
    if rec:
        full = rec["keys"] >= 1_000_000
        note = "" if full else f" (at {rec['keys']:,} keys: the target is for 1 M, not judged)"
        if rec.get("recovery_s") is not None:
            ok = rec["recovery_s"] < 60 if full else None
            put("recovery", ok, f"{rec['recovery_s']} s{note}")
        rss = max(rec.get("rss_mib_loaded", 0), rec.get("rss_mib_recovered_settled", 0))
        rss_mb = rss * 1.048576
        put("rss", rss_mb < 500 if full else None, f"{rss_mb:.0f} MB{note}")
    return out


def same_alerts(vigil: dict[str, Any] | None, peer: dict[str, Any]) -> bool | None:
    """Whether a peer did the same work as Vigil's fraud run of its guarantee: as many alerts
    (the peer's read back from its topic, Vigil's counted by the worker). None: no Vigil run."""
    theirs = peer.get("alerts")
    ours = (vigil or {}).get("alerts", peer.get("vigil_alerts"))
    if ours is None or theirs is None:
        return None
    return int(ours) == int(theirs)


def peer_rows(results: dict[str, Any], ratio: Any) -> list[list[str]]:
    """One row per peer run (`--peers`): rate, share of baseline, CPU per event, and whether
    its alerts match Vigil's fraud run of the same guarantee."""
    rows = []
    for g in GUARANTEES:
        r = results.get(f"quix_{g}")
        if not r:
            continue
        same = same_alerts(results.get(f"fraud_{g}"), r)
        vigil = (results.get(f"fraud_{g}") or {}).get("alerts", r.get("vigil_alerts"))
        alerts = f"{_num(r.get('alerts'))} alerts"
        alerts += {
            True: " = Vigil's",
            False: f" DIFFER from Vigil's {_num(vigil)}",
            None: " (no Vigil run to compare)",
        }[same]
        notes = [
            f"{r['events']:,} txns",
            f"processed {_num(r.get('processed_events_per_s'))} ev/s",
            f"{_num(r.get('cpu_us_per_event'))} CPU-us/ev",
            alerts,
            f"changelog {_num(r.get('changelog_records_per_update'), '{:.3f}')}/update",
            f"max commit stall {_num(r.get('max_commit_stall_s'), '{:.1f}')} s",
            f"others' CPU {_num(r.get('other_cpu_per_wall'), '{:.2f}')}/s",
        ]
        rows.append(
            [
                f"quix peer, {g}",
                f"{_num(r.get('events_per_s'))} ev/s",
                ratio(r.get("events_per_s")),
                "; ".join(notes),
            ]
        )
    return rows


def peer_verdict(
    vigil: dict[str, Any] | None, peer: dict[str, Any] | None
) -> dict[str, str] | None:
    """PASS when Vigil's fraud rate >= the peer's of the same guarantee and run; not judged
    ("-") when the alert counts differ (then the two did not do the same work)."""
    if not vigil or not peer or not vigil.get("events_per_s") or not peer.get("events_per_s"):
        return None
    ours, theirs = vigil["events_per_s"], peer["events_per_s"]
    detail = f"Vigil {ours:,.0f} ev/s vs Quix {theirs:,.0f} ev/s ({ours / theirs:.2f}x)"
    cpu_ours, cpu_theirs = vigil.get("cpu_us_per_event"), peer.get("cpu_us_per_event")
    if cpu_ours and cpu_theirs:
        detail += f"; CPU-us/ev {cpu_ours:.0f} vs {cpu_theirs:.0f}"
    if same_alerts(vigil, peer) is False:
        detail += (
            f"; not judged: alerts differ (Vigil {vigil.get('alerts')}, Quix {peer.get('alerts')})"
        )
        return {"status": "-", "detail": detail}
    return {"status": "PASS" if ours >= theirs else "MISS", "detail": detail}


def _commit_interval(result: dict[str, Any]) -> float:
    """The commit interval a run's worker had: its env, else the worker's default."""
    value = (result.get("env") or {}).get("VIGIL_COMMIT_INTERVAL_S")
    if value is not None:
        return float(value)
    from app.settings import Settings

    return float(Settings.model_fields["commit_interval_s"].default)


def render_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
