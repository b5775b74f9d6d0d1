"""Exactly-once under SIGKILL: a worker killed mid-stream and restarted produces, for
read_committed readers, exactly the alerts and dead letters of an uninterrupted run (replay),
and reads only the changelog tail on restart; SIGTERM under load commits and exits cleanly.

One worker, one topic: `tests/e2e/test_chaos.py` (and `make chaos`) kills several workers."""

from __future__ import annotations

import os
import random
import re
import time

import pytest

from tests.replay_compare import replay_records
from tests.scenarios import T0, txn, without_detected
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

N = 3000
# One SIGKILL mid-stream by default; CHAOS_KILL_AT=0.25,0.6 kills twice.
KILL_AT = tuple(float(f) for f in os.environ.get("CHAOS_KILL_AT", "0.4").split(","))


def _records():
    rng = random.Random(11)
    records = []
    for i in range(N):
        card = f"card-{rng.randrange(40)}"
        amount = round(rng.lognormvariate(3, 0.6), 2)
        if rng.random() < 0.02:
            amount = 15000
        if rng.random() < 0.01:
            records.append(("transactions", card, b'{"txn_id": "broken'))
            continue
        records.append(
            txn(f"t-{i}", card, amount, T0 + i * 200, terminal_id=f"pos-{rng.randrange(9)}")
        )
    return records


def _processed(worker, topic):
    text = worker.metrics() if worker.alive() else ""
    total = 0.0
    for outcome in ("ok", "dead_letter", "duplicate"):
        m = re.search(
            r'vigil_events_in_total\{outcome="'
            + outcome
            + '",topic="'
            + re.escape(topic)
            + r'"\} ([0-9.e+]+)',
            text,
        )
        total += float(m.group(1)) if m else 0.0
    return total


def _wait_processed(worker, topic, at_least, timeout=120):
    done, _ = wait_until(lambda: _processed(worker, topic) >= at_least, timeout)
    assert done, f"worker stuck below {at_least}:\n{worker.tail()}"


def test_sigkill_mid_stream_loses_and_duplicates_nothing(deployment, tmp_path):
    records = _records()
    topic = deployment.topics["transactions"]
    worker = deployment.worker().start().wait_ready()
    deployment.produce(records)

    for fraction in KILL_AT:
        _wait_processed(worker, topic, N * fraction)
        worker.kill()  # SIGKILL: no shutdown, no commit
        worker = deployment.worker().start().wait_ready()  # same store dir, like a pod restart
        _assert_restored_only_the_tail(deployment, worker)
        # (each restart processes from the last committed offset; the store catches up from
        # the changelog, aborted transactions are invisible)

    _assert_like_replay(deployment, tmp_path, records)


#: How long a worker may take to stop cleanly on SIGTERM under load (the README's grace).
STOP_GRACE_S = 60


def test_sigterm_under_load_commits_and_the_restart_loses_nothing(deployment, tmp_path):
    records = _records()
    topic = deployment.topics["transactions"]
    worker = deployment.worker().start().wait_ready()
    deployment.produce(records)
    _wait_processed(worker, topic, N * 0.3)
    started = time.monotonic()
    code = worker.stop(timeout=STOP_GRACE_S)  # SIGTERM while events flow
    stopped_in = time.monotonic() - started
    assert code == 0, f"exit {code} after SIGTERM:\n{worker.tail()}"
    assert "checkpoint failed" not in worker.tail(400)
    worker = deployment.worker().start().wait_ready()  # same store dir
    _assert_like_replay(deployment, tmp_path, records)
    # The stop committed what it had processed: the restart did only the rest.
    assert _processed(worker, topic) <= N * 0.71
    print(f"SIGTERM under load: stopped cleanly in {stopped_in:.1f} s")


def _assert_restored_only_the_tail(deployment, worker):
    """The restart kept its store (no wipe) and read only the changelog's committed tail."""
    found = re.findall(r"bulk restore: (\d+) changelog records", worker.log_path.read_text())
    assert found, worker.tail()
    tail = int(found[-1])
    changelog = f"{deployment.env['VIGIL_APP_ID']}-cards-changelog"
    total = deployment.end_offsets(changelog)
    print(f"restart after SIGKILL read {tail} of {total} changelog offsets")
    assert tail * 2 <= total, f"read {tail} of {total}: a rebuild, not the tail"


def _assert_like_replay(deployment, tmp_path, records):
    replayed = replay_records(deployment, records, tmp_path)
    expected = [value for _, value in replayed["fraud_alerts"]]
    expected_dead = replayed["dead_letters"]
    assert len(expected) > 100

    live = deployment.consume("fraud_alerts", min_count=len(expected), timeout=180, settle=5)
    dead = deployment.consume("dead_letters", min_count=len(expected_dead), timeout=30, settle=2)

    live_ids = [v["alert_id"] for _, v in live]
    assert len(live_ids) == len(set(live_ids)), "duplicate alerts visible to read_committed"
    assert sorted((without_detected(v) for _, v in live), key=lambda a: a["txn_id"]) == sorted(
        (without_detected(a) for a in expected), key=lambda a: a["txn_id"]
    )
    sources = [(v["partition"], v["offset"]) for _, v in dead]
    assert len(set(sources)) == len(sources), f"dead letters repeated: {sorted(sources)}"
    assert len(dead) == len(expected_dead)
