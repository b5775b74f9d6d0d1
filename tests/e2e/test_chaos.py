"""Exactly-once with several workers under chaos, against `vigil replay` of the same input.

Three `vigil worker` processes (w1..w3, each its own store dir) share a 6-partition deployment
on the real broker. A seeded workload over transactions, fraud-feedback and cart-events
(velocity bursts, card testing, travel jumps, large amounts, spikes, resent transactions,
labels that make terminals and a merchant compromised, carts abandoned and recovered, ~1 %
malformed records) is produced at a steady rate for CHAOS_SECONDS while: CHAOS_KILLS SIGKILLs
hit random workers at random moments (each restarted at once on its own store dir, like a pod
restart), a fourth worker (w4) joins, and one ready worker is stopped with SIGTERM (it must
exit 0 within its grace). Then, once the consumer group has committed every input offset, a
read_committed reader takes every output topic and compares it by id with replay
(tests/chaos_check.py): lost, duplicated, unexpected and mismatched must all be 0 per topic,
and no worker may have exited by itself. One summary line per run (kills, restarts, crashes,
rebalances: "Executing _on_partitions_assigned" lines in the worker logs).

Why the comparison is deterministic whatever the timing: tests/chaos_workload.py.

Two forms, selected by environment variables:

* short (default, part of `make test`): CHAOS_SECONDS=20, CHAOS_KILLS=3, one round;
* long (`make chaos`): CHAOS_SECONDS=60, CHAOS_ROUNDS=5 rounds in a row, stopping at the first
  failure (`pytest -x`); each round has its own deployment and seed.

| variable | default | meaning |
|---|---|---|
| CHAOS_SECONDS | 20 | how long the workload is produced (and the chaos lasts) |
| CHAOS_ROUNDS | 1 | runs in a row (one test each) |
| CHAOS_KILLS | 3 | SIGKILLs per run |
| CHAOS_RATE | 100 | input records per second, roughly |
| CHAOS_SEED | 1 | seed of round 1 (round n: seed + n - 1): workload and chaos schedule |
| CHAOS_WORKERS | 3 | workers at the start (one more joins) |
| CHAOS_STOP_GRACE_S | 60 | how long the SIGTERMed worker may take to exit 0 |
| CHAOS_DRAIN_S | 120 | deadline for all input to be processed after production |
| CHAOS_PROCESSING_GUARANTEE | exactly_once | the workers' guarantee (at_least_once: see the harness catch duplicates) |

Artifacts (worker logs, replay input and output) stay in the test's tmp_path, printed on failure.
"""

from __future__ import annotations

import os

import pytest

from tests.chaos import ChaosConfig, run_chaos
from tests.chaos_check import compare

pytestmark = pytest.mark.e2e

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "1"))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("round_no", range(1, ROUNDS + 1))
def test_exactly_once_under_kills_joins_and_leaves(deployment, tmp_path, capsys, round_no):
    cfg = ChaosConfig.from_env(round_no)
    result = run_chaos(deployment, tmp_path, cfg)
    with capsys.disabled():
        print(f"\n[chaos round {round_no}/{ROUNDS}] {result.summary()}")
    assert result.ok, result.report()


def test_the_comparison_counts_each_kind_of_difference():
    """The harness's own check (no broker): what it reports when live differs from replay."""
    alert = {"alert_id": "a", "score": 0.5, "detected_ts": "x"}
    expected = [("k", alert), ("k", {**alert, "alert_id": "b"}), ("k", {**alert, "alert_id": "c"})]
    live = [
        ("k", {**alert, "detected_ts": "y"}),  # equal but for the wall clock
        ("k", {**alert, "detected_ts": "z"}),  # ... twice
        ("k", {**alert, "alert_id": "c", "score": 0.6}),
        ("k", {**alert, "alert_id": "d"}),
    ]
    diff = compare("fraud_alerts", expected, live)
    assert (diff.lost, diff.duplicated, diff.unexpected, diff.mismatched) == (1, 1, 1, 1)
    assert compare("fraud_alerts", expected, expected).ok
    dead = {"source_topic": "t", "partition": 0, "offset": 7, "error": "e", "ts": "now"}
    assert compare("dead_letters", [(None, {**dead, "ts": "then"})], [(None, dead)]).ok
