"""Two workers share the partitions of one deployment; together they give replay's alerts."""

from __future__ import annotations

import pytest

from tests.integration.test_fraud_live import _wait_labels
from tests.replay_compare import replay_records
from tests.scenarios import feedback_records, fraud_story, without_detected

pytestmark = pytest.mark.integration


def test_two_workers_split_the_partitions_and_lose_nothing(deployment, tmp_path):
    first = deployment.worker("w1").start().wait_ready()
    second = deployment.worker("w2").start().wait_ready()
    first.wait_ready()  # the second join rebalanced the group: both ready again
    feedback = feedback_records()
    deployment.produce(feedback)
    tx1, tx2 = fraud_story()
    for worker in (first, second):  # labels replicated to both workers
        _wait_labels(worker, 4)
    deployment.produce(tx1 + tx2)

    replayed = replay_records(deployment, feedback + tx1 + tx2, tmp_path)
    expected = [value for _, value in replayed["fraud_alerts"]]

    live = deployment.consume("fraud_alerts", min_count=len(expected), timeout=90, settle=3)
    assert sorted((without_detected(v) for _, v in live), key=lambda a: a["txn_id"]) == sorted(
        (without_detected(a) for a in expected), key=lambda a: a["txn_id"]
    )
    owned = []
    for worker in (first, second):
        text = worker.metrics()
        line = next(x for x in text.splitlines() if x.startswith("vigil_assigned_partitions "))
        owned.append(float(line.split()[1]))
    assert all(n > 0 for n in owned), f"a worker owns nothing: {owned}"
