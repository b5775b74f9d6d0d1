"""Live fraud alerts equal `vigil replay`'s for the same records, across a worker restart."""

from __future__ import annotations

import time

import pytest

from app.detect.config import RULES
from tests.replay_compare import replay_records
from tests.scenarios import feedback_records, fraud_story, without_detected
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

ALL_RULES = set(RULES)


def _wait_labels(worker, count, timeout=30.0):
    line = f'vigil_table_keys{{table="fraud-labels"}} {float(count)}'
    held, _ = wait_until(lambda: line in worker.metrics(), timeout, interval=0.3)
    assert held, f"labels not replicated: {line!r} not in metrics"


def _replay(deployment, records, tmp_path):
    return [value for _, value in replay_records(deployment, records, tmp_path)["fraud_alerts"]]


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_live_alerts_equal_replay_across_a_restart(deployment, tmp_path, guarantee):
    feedback = feedback_records()
    first, second = fraud_story()
    deployment.env["VIGIL_PROCESSING_GUARANTEE"] = guarantee

    worker = deployment.worker().start().wait_ready()
    deployment.produce(feedback)
    _wait_labels(worker, 4)  # f-1..f-4, each txn's last record
    deployment.produce(first)
    # the first half is processed and committed before the restart
    deployment.consume("fraud_alerts", min_count=0, timeout=5, settle=3)
    assert worker.stop() == 0, worker.tail()

    worker = (
        deployment.worker("w2").start().wait_ready()
    )  # a fresh store dir: tables come from changelogs
    # ... read in bulk (app.faust_patches.recovery), before Faust's own recovery reads the rest
    assert "bulk restore:" in worker.log_path.read_text(), worker.tail()
    deployment.produce(second)
    expected = _replay(deployment, feedback + first + second, tmp_path)
    live = deployment.consume("fraud_alerts", min_count=len(expected), timeout=60)

    fired = {hit["rule"] for alert in expected for hit in alert["rules"]}
    assert fired == ALL_RULES
    assert sorted((without_detected(v) for _, v in live), key=lambda a: a["txn_id"]) == sorted(
        (without_detected(a) for a in expected), key=lambda a: a["txn_id"]
    )
    assert all(key == value["card_id"] for key, value in live)
    alerted = {v["txn_id"] for _, v in live}
    assert {"a-5", "a-6", "b-6", "c-1", "d-4", "e-0", "g-0"} <= alerted
    assert "h-0" not in alerted and "a-4" not in alerted


async def _committed(bootstrap: str, group: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(max(meta.offset, 0) for meta in offsets.values())


def test_at_least_once_sends_alerts_ahead_of_the_checkpoint(deployment):
    """at_least_once: alerts reach readers within VIGIL_OUTPUT_FLUSH_S, long before the
    checkpoint (60 s here) commits the offsets of their transactions."""
    import asyncio

    deployment.env.update(VIGIL_PROCESSING_GUARANTEE="at_least_once", VIGIL_COMMIT_INTERVAL_S="60")
    worker = deployment.worker().start().wait_ready()
    first, second = fraud_story()
    started = time.monotonic()
    deployment.produce(first + second)  # e-0 alone alerts (large_amount), and more
    live = deployment.consume("fraud_alerts", min_count=1, timeout=30, settle=0)
    waited = time.monotonic() - started
    committed = asyncio.run(_committed(deployment.bootstrap, deployment.env["VIGIL_APP_ID"]))
    assert live, worker.tail()
    assert waited < 30 and committed == 0, (waited, committed)
