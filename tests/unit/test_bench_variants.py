"""The benchmark's A/B and commit-interval tables (bench/variants.py) read results right."""

from __future__ import annotations

import pytest

from bench import variants


def test_parse_ab_takes_a_setting_and_two_or_more_values():
    assert variants.parse_ab("VIGIL_LEAN_FETCH=0,1") == ("lean_fetch", ["0", "1"])
    assert variants.parse_ab("commit_interval_s=0.5, 1") == ("commit_interval_s", ["0.5", "1"])
    for bad in ("VIGIL_LEAN_FETCH", "VIGIL_LEAN_FETCH=1", "=0,1"):
        with pytest.raises(ValueError):
            variants.parse_ab(bad)


def _run(rate: float, cpu: float) -> dict[str, float]:
    return {"events_per_s": rate, "cpu_us_per_event": cpu}


def test_ab_rows_give_medians_shares_and_ratios_per_pair():
    g = "at_least_once"
    results = {
        "baseline": {"events_per_s": 1000.0},
        variants.ab_key(g, "lean_fetch", "0", 0): _run(100.0, 900.0),
        variants.ab_key(g, "lean_fetch", "1", 0): _run(150.0, 600.0),
        variants.ab_key(g, "lean_fetch", "0", 1): _run(200.0, 800.0),
        variants.ab_key(g, "lean_fetch", "1", 1): _run(220.0, 700.0),
    }
    rows = {row[0]: row for row in variants.variant_rows(results)}
    a, b = rows[f"A/B {g}, lean_fetch=0"], rows[f"A/B {g}, lean_fetch=1"]
    assert a[1] == "150 ev/s" and a[2] == "15.0 %"  # median of 100 and 200
    assert b[1] == "185 ev/s" and b[2] == "18.5 %"
    ratio = rows[f"  B/A {g}: lean_fetch=1 vs 0"]
    assert ratio[1] == f"{185 / 150:.2f}x"
    assert ratio[3] == "per pair 1.50 / 1.10"


def test_sweep_rows_judge_p99_against_twice_the_interval():
    results = {
        variants.sweep_key("fraud", "0.5"): _run(300.0, 500.0),
        variants.sweep_key("latency", "0.5"): {"p50_ms": 400.0, "p99_ms": 900.0},
        variants.sweep_key("fraud", "1"): _run(400.0, 400.0),
        variants.sweep_key("latency", "1"): {"p50_ms": 700.0, "p99_ms": 2100.0},
    }
    rows = {row[0]: row for row in variants.variant_rows(results)}
    assert "p99 <= 2 x interval: yes" in rows["exactly_once, commit interval 0.5 s"][3]
    assert "p99 <= 2 x interval: no" in rows["exactly_once, commit interval 1 s"][3]
