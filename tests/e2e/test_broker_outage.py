"""The broker goes away for 30 s under load and comes back: the workers recover by themselves.

Two `vigil worker` processes (exactly_once) on a broker of their own (stopping the session's
broker would break every other test). Transactions are produced, and while the workers are in
the middle of them the broker is stopped, kept down for OUTAGE_S (default 30 s, the issue's
figure) and started again on the same data and ports. More transactions follow. Then, once the
group has committed every input offset, a read_committed reader must see exactly what `vigil
replay` gives for the same records (nothing lost, nothing duplicated), and neither worker may
have exited: no restart by an orchestrator is part of the recovery.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

from app.devtools.kafka import LocalKafka
from tests.chaos_check import compare, read_outputs, wait_drained
from tests.fixtures.worker import new_deployment
from tests.replay_compare import replay_records
from tests.scenarios import T0, txn
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

OUTAGE_S = float(os.environ.get("OUTAGE_S", "30"))
N_BEFORE, N_AFTER = 4000, 1000


def _records(start: int, n: int, seed: int) -> list:
    rng = random.Random(seed)
    records = []
    for i in range(start, start + n):
        card = f"card-{rng.randrange(60)}"
        amount = 15000 if rng.random() < 0.02 else round(rng.lognormvariate(3, 0.6), 2)
        if rng.random() < 0.01:
            records.append(("transactions", card, b'{"txn_id": "broken'))
            continue
        records.append(txn(f"t-{i}", card, amount, T0 + i * 150, terminal_id=f"pos-{i % 7}"))
    return records


def _processed(workers, topic: str) -> float:
    return sum(w.metric_sum("vigil_events_in_total", f'topic="{topic}"') or 0.0 for w in workers)


@pytest.fixture
def own_broker(tmp_path):
    kafka = LocalKafka(tmp_path / "kafka", stop_at_exit=True, die_with_parent=True)
    kafka.start(timeout=90.0, fresh=True)
    yield kafka
    kafka.stop()


@pytest.mark.timeout(600)
def test_broker_down_30s_under_load_workers_recover_nothing_lost_or_duplicated(
    own_broker, tmp_path
):
    status = own_broker.status()
    dep = new_deployment(status.bootstrap, tmp_path)
    topic = dep.topics["transactions"]
    workers = [dep.worker(f"w{i}").start() for i in (1, 2)]
    try:
        for w in workers:
            w.wait_ready()
        before = _records(0, N_BEFORE, seed=5)
        dep.produce(before)
        # Under load: the outage starts while both workers are in the middle of the input.
        busy, _ = wait_until(lambda: _processed(workers, topic) >= N_BEFORE * 0.25, 120)
        assert busy, "\n".join(w.tail() for w in workers)

        own_broker.stop()
        assert not own_broker.status().running
        down_until = time.monotonic() + OUTAGE_S
        # The outage lasts OUTAGE_S; meanwhile the workers must stay up (a crash fails at once).
        crashed, _ = wait_until(lambda: any(not w.alive() for w in workers), OUTAGE_S, interval=0.5)
        assert not crashed, "a worker exited during the outage:\n" + "\n".join(
            f"{w.name}: exit {w.returncode()}\n{w.tail()}" for w in workers
        )
        assert time.monotonic() >= down_until - 1
        restarted = own_broker.start(timeout=90.0)
        assert restarted.bootstrap == status.bootstrap, "the broker came back elsewhere"

        after = _records(N_BEFORE, N_AFTER, seed=6)
        dep.produce(after)
        records = before + after

        def alive() -> None:
            dead = [w for w in workers if not w.alive()]
            assert not dead, "\n".join(f"{w.name}: exit {w.returncode()}\n{w.tail()}" for w in dead)

        _, lag = asyncio.run(
            wait_drained(dep.bootstrap, dep.env["VIGIL_APP_ID"], [topic], 2, 240, alive)
        )
        alive()
        assert not lag, f"never processed after the outage: {lag}\n" + "\n".join(
            w.tail() for w in workers
        )
        expected = replay_records(dep, records, tmp_path)
        outputs = {k: dep.topics[k] for k in ("fraud_alerts", "dead_letters")}
        live, complete = asyncio.run(read_outputs(dep.bootstrap, outputs, 2, 120, settle=3))
        assert complete
        assert len(expected["fraud_alerts"]) > 50
        diff = compare("fraud_alerts", expected["fraud_alerts"], live["fraud_alerts"])
        assert diff.ok, "\n".join([diff.figures(), *diff.examples])
        # Replay of these records knows no offsets: dead letters compare by content, and each
        # source record is dead-lettered once.
        dead = live["dead_letters"]
        sources = [(v["partition"], v["offset"]) for _, v in dead]
        assert len(set(sources)) == len(sources), f"dead letters repeated: {sorted(sources)}"

        def content(rows):
            return sorted((k, v["error"], v["payload"]) for k, v in rows)

        assert content(dead) == content(expected["dead_letters"])
        for w in workers:
            ready, _ = wait_until(lambda w=w: w.http("/readyz")[0] == 200, 60)
            assert ready, w.tail()
        print(f"broker outage of {OUTAGE_S:.0f} s:", diff.figures(), f"dead_letters: {len(dead)}")
    finally:
        for w in workers:
            w.kill()
