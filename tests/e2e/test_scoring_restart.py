"""The risk model survives a SIGKILL: the restarted worker has the model it had learned.

A worker learns from a labelled history (app.devtools.generate.labelled), saving its model
snapshot every second under `<store>/vigil/model/`; it is SIGKILLed and restarted on the same
store. It must come back with the very model it had (`/model`, weights and all), having loaded
the snapshot and read only the training records after it (not all history), and keep scoring.
"""

from __future__ import annotations

import json
import re

import pytest

from app.devtools.generate.labelled import DAY, START_MS, build
from app.score.learner import DelayedLearner
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

SETTINGS = {"min_fraud_labels": "3", "model_snapshot_s": "1"}


def model_view(worker) -> dict:
    status, body = worker.http("/model")
    assert status == 200, body[:200]
    return json.loads(body)


def test_the_model_after_a_sigkill_is_the_one_learned(deployment):
    events, _, _ = build(weeks=2, cards=100, seed=5)
    kinds = {"transactions": "transactions", "fraud-feedback": "feedback"}
    cut = START_MS + 12 * DAY
    history = [(kinds[e["topic"]], e["key"], e["value"]) for ts, _, e in events if ts < cut]
    later = [
        ("transactions", e["key"], e["value"])
        for ts, _, e in events
        if ts >= cut and e["topic"] == "transactions"
    ][:100]

    worker = deployment.worker("w1", **SETTINGS).start().wait_ready()
    deployment.produce(history)
    held, _ = wait_until(lambda: model_view(worker)["fed"] >= len(history), timeout=240)
    assert held, f"the model applied {model_view(worker)['fed']} of {len(history)} records"
    learned = model_view(worker)
    assert learned["updates"] > 100 and learned["frauds"] >= 3
    snapshot = worker.workdir / "store" / "vigil" / "model" / "learner.snap"
    held, _ = wait_until(
        lambda: (
            snapshot.exists()
            and DelayedLearner.snapshot_head(snapshot.read_bytes())["offset"] == learned["offset"]
        ),
        timeout=30,
    )
    assert held, "no snapshot of the learned model"
    worker.kill()  # SIGKILL: no shutdown hook runs

    again = deployment.worker("w1", **SETTINGS).start().wait_ready()
    assert model_view(again) == learned  # the very model it had learned
    log = again.log_path.read_text()  # both runs' logs: the restart's lines come last
    caught = re.findall(r"model caught up: offset (\d+) \((\d+) read since start\)", log)
    assert len(caught) == 2, again.tail()
    assert caught[-1] == (str(learned["offset"]), "0")  # from the snapshot, no history read
    assert f"model snapshot loaded: offset {learned['offset']}" in log

    deployment.produce(later)  # and it goes on scoring and learning from there
    scores = deployment.consume("txn_scores", min_count=len(history) + len(later), timeout=120)
    txn_ids = {v["txn_id"] for _, v in scores}
    assert {v["txn_id"] for _, _, v in later} <= txn_ids
    last = next(v for _, v in scores if v["txn_id"] == later[-1][2]["txn_id"])
    assert last["model"]["offset"] >= learned["offset"]
    assert last["model"]["kind"] == "logistic"
