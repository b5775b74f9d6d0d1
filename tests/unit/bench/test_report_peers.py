"""The peer rows of the results table and the "fraud >= the Quix peer" verdicts."""

from __future__ import annotations

from bench.report import TARGETS, summarize


def _fraud(rate: float, alerts: int, cpu: float = 500.0) -> dict[str, object]:
    return {
        "events_per_s": rate,
        "events": 20_000,
        "alerts": float(alerts),  # the worker's counter, scraped as a float
        "cpu_us_per_event": cpu,
    }


def _peer(rate: float, alerts: int, cpu: float = 110.0) -> dict[str, object]:
    return {
        "events_per_s": rate,
        "events": 20_000,
        "alerts": alerts,
        "cpu_us_per_event": cpu,
        "changelog_records_per_update": 0.468,
        "max_commit_stall_s": 1.0,
        "other_cpu_per_wall": 0.3,
    }


def test_peer_rows_give_share_of_baseline_cpu_and_the_alert_check():
    results = {
        "baseline": {"events_per_s": 10_000.0, "events": 80_000, "avg_value_bytes": 240.0},
        "fraud_at_least_once": _fraud(2_000.0, 382),
        "fraud_exactly_once": _fraud(2_100.0, 382),
        "quix_at_least_once": _peer(8_000.0, 382),
        "quix_exactly_once": _peer(9_000.0, 381),
    }
    rows, verdicts = summarize(results, quick=True)
    by_name = {row[0]: row for row in rows}
    alo, eos = by_name["quix peer, at_least_once"], by_name["quix peer, exactly_once"]
    assert alo[1:3] == ["8,000 ev/s", "80.0 %"]
    assert "110 CPU-us/ev" in alo[3] and "382 alerts = Vigil's" in alo[3]
    assert "381 alerts DIFFER from Vigil's 382" in eos[3]
    assert verdicts["fraud_vs_quix"]["status"] == "MISS"
    assert verdicts["fraud_vs_quix"]["detail"].startswith("Vigil 2,000 ev/s vs Quix 8,000 ev/s")
    # Different alerts: not the same work, so not judged.
    assert verdicts["fraud_eos_vs_quix"]["status"] == "-"
    assert "alerts differ" in verdicts["fraud_eos_vs_quix"]["detail"]
    assert set(verdicts) <= set(TARGETS)


def test_fraud_at_least_as_fast_as_the_peer_passes():
    results = {
        "fraud_at_least_once": _fraud(9_000.0, 10),
        "quix_at_least_once": _peer(9_000.0, 10),
        "fraud_exactly_once": _fraud(8_000.0, 10),
    }
    _, verdicts = summarize(results, quick=True)
    assert verdicts["fraud_vs_quix"]["status"] == "PASS"
    assert "fraud_eos_vs_quix" not in verdicts  # no exactly_once peer run: no verdict


def test_no_peer_run_no_peer_rows_nor_verdicts():
    rows, verdicts = summarize({"fraud_at_least_once": _fraud(1_000.0, 1)}, quick=True)
    assert not [r for r in rows if r[0].startswith("quix")]
    assert not {"fraud_vs_quix", "fraud_eos_vs_quix"} & set(verdicts)
