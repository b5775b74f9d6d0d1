"""Live risk scoring: every transaction scored, one model on every worker, agreeing with replay.

A labelled stream (app.devtools.generate.labelled, 150 cards, 3 weeks) goes in two phases:
history with its feedback (the model learns), then two days of transactions only (scored with
what was learned). Two workers share the partitions.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.devtools.generate.labelled import DAY, START_MS, build
from app.score.features import FEATURES
from app.score.follower import EXAMPLE_MAGIC, TRAINING_TOPIC_SUFFIX, apply_record, example_of
from app.score.learner import DelayedLearner
from app.settings import Settings
from tests.replay_compare import envelope, replay_outputs
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

#: Live and replay learn from the same records, but a worker's training topic interleaves the
#: partitions' examples and labels in commit order, not in file order (the model's steps, and
#: label delays running out, come in another order), and a worker scores with the model as far
#: as it has read the topic (replay: up to the record before). See the README's tolerance.
MEDIAN_TOLERANCE = 0.02
MAX_TOLERANCE = 0.35
SETTINGS = {"min_fraud_labels": "5", "model_snapshot_s": "1"}


def phases() -> tuple[list[list[tuple[str, str, dict]]], list[tuple[str, str, dict]]]:
    """The history (a list per day), then the test days' transactions."""
    events, _, counts = build(weeks=3, cards=150, seed=11)
    assert counts["fraud_labels"] >= 20
    cut = START_MS + 19 * DAY
    kinds = {"transactions": "transactions", "fraud-feedback": "feedback"}
    first: list[list[tuple[str, str, dict]]] = [[] for _ in range(19)]
    for ts, _, e in events:
        if ts < cut:
            first[(ts - START_MS) // DAY].append((kinds[e["topic"]], e["key"], e["value"]))
    second = [
        ("transactions", e["key"], e["value"])
        for ts, _, e in events
        if ts >= cut and e["topic"] == "transactions"
    ]
    return first, second


def model_view(worker) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/model", timeout=5) as r:
        return json.loads(r.read())


def offset_of(worker) -> int:
    return int(model_view(worker)["offset"])


async def read_training(bootstrap: str, topic: str) -> list[tuple[int, bytes | None]]:
    """Every committed record of the training topic: (offset, value)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, isolation_level="read_committed"
    )
    await consumer.start()
    out: list[tuple[int, bytes | None]] = []
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            out += [(r.offset, r.value) for r in batch.get(tp, ())]
    finally:
        await consumer.stop()
    return out


def learner_at(records: list[tuple[int, bytes | None]], offsets: set[int]) -> dict[int, bytes]:
    """Apply the records in order; the learner's snapshot at each of `offsets`."""
    learner = DelayedLearner(Settings(min_fraud_labels=5).score_config())
    at: dict[int, bytes] = {}
    for offset, value in records:
        if offset >= learner.offset and learner.offset in offsets:
            at[learner.offset] = learner.to_bytes()
        learner.offset = offset
        apply_record(learner, value)
    if learner.offset in offsets:
        at[learner.offset] = learner.to_bytes()
    return at


def test_two_workers_share_one_model_and_score_like_replay(deployment, tmp_path):
    days, second = phases()
    w1 = deployment.worker("w1", **SETTINGS).start()
    w2 = deployment.worker("w2", **SETTINGS).start()
    w1.wait_ready()
    w2.wait_ready()
    # Day by day, as a live stream comes: the model reads a day before the next one goes in
    # (produced all at once, one partition's examples could run days ahead of the other's).
    fed = 0
    for day in days:
        deployment.produce(day)
        fed += len(day)
        held, _ = wait_until(lambda n=fed: model_view(w1)["fed"] >= n, timeout=120)
        assert held, f"w1 applied {model_view(w1)['fed']} of {fed} training records"
    first = [r for day in days for r in day]
    txns = sum(1 for kind, _, _ in first if kind == "transactions")
    labels = len(first) - txns
    # every example and label has reached both workers' models
    for w in (w1, w2):
        held, _ = wait_until(lambda w=w: model_view(w)["fed"] >= txns + labels, timeout=240)
        assert held, (
            f"worker {w.name} applied {model_view(w)['fed']} of {txns + labels} training records"
        )
    a, b = model_view(w1), model_view(w2)
    assert a == b  # the same model, weights and all, on both workers at the same offset
    assert a["active"] and a["frauds"] >= 5
    # ... and the same as anyone applying the topic's records in order gets
    topic = f"{deployment.env['VIGIL_APP_ID']}-{TRAINING_TOPIC_SUFFIX}"
    records = asyncio.run(read_training(deployment.bootstrap, topic))
    snapshot = learner_at(records, {a["offset"]})[a["offset"]]
    config = Settings(min_fraud_labels=5).score_config()
    assert DelayedLearner.from_bytes(snapshot, config).summary() == a

    deployment.produce(second)
    live = deployment.consume("txn_scores", min_count=txns + len(second), timeout=180)
    scores = {v["txn_id"]: v for _, v in live}
    assert len(scores) == len(live) == txns + len(second)  # every transaction once
    assert all(k == v["card_id"] for k, v in live)

    # Exact: each live score is the model at the offset it names, on the features the worker
    # wrote for that transaction (both read back from the training topic).
    records = asyncio.run(read_training(deployment.bootstrap, topic))
    examples = {}
    for _, value in records:
        if value[:1] == EXAMPLE_MAGIC:
            example = example_of(value)
            examples[example.txn_id] = list(example.x or ())
    test_ids = [v["txn_id"] for _, _, v in second]
    at = learner_at(records, {scores[t]["model"]["offset"] for t in test_ids})
    for t in test_ids:
        model = DelayedLearner.from_bytes(at[scores[t]["model"]["offset"]], config).model
        assert round(model.predict(examples[t]), 6) == scores[t]["learned_score"], t

    # Against replay (file order): the features of the card's own history are exactly
    # replay's; those counted from labels (the place's and the card's frauds so far) depend on
    # how far this worker had followed the labels when it scored, so they may differ for a
    # few transactions (seen in CI: a place's fraud share 0.2 live, 0.208 in replay).
    first = [r for day in days for r in day]
    lines = [envelope(deployment.topics[k], key, v) for k, key, v in first + second]
    replayer_examples = replay_examples(lines, deployment.topics, tmp_path)
    from_labels = {
        i for i, name in enumerate(FEATURES) if name.startswith(("place_", "card_frauds_"))
    }
    assert from_labels, "the label-derived features are named place_* and card_frauds_*"
    differing = 0
    for t in test_ids:
        live_x, replay_x = examples[t], list(replayer_examples[t])
        own = [i for i in range(len(live_x)) if i not in from_labels]
        assert [live_x[i] for i in own] == [replay_x[i] for i in own], t
        differing += live_x != replay_x
    assert differing <= max(2, len(test_ids) // 20), f"{differing} of {len(test_ids)} differ"
    # ... the scores agree within the tolerance (the model's steps come in another order, and a
    # live score uses the model as far as the worker had read it: see the README)
    expected = {
        v["txn_id"]: v
        for _, v in replay_outputs(lines, deployment.topics, tmp_path, min_fraud_labels=5)[
            "txn_scores"
        ]
    }
    assert set(expected) == set(scores)
    diffs = sorted(abs(scores[t]["score"] - expected[t]["score"]) for t in test_ids)
    median, p95 = diffs[len(diffs) // 2], diffs[int(len(diffs) * 0.95)]
    print(
        f"|live - replay| over {len(diffs)} scores: median {median:.4f}, 95th {p95:.4f}, max {diffs[-1]:.4f}"
    )
    assert median <= MEDIAN_TOLERANCE and diffs[-1] <= MAX_TOLERANCE, (median, p95, diffs[-10:])
    for t in test_ids:  # what does not depend on the model is exact
        assert scores[t]["rules"] == expected[t]["rules"]
        assert scores[t]["rule_score"] == expected[t]["rule_score"]
        assert scores[t]["event_ts"] == expected[t]["event_ts"]


def replay_examples(lines, topics, workdir):
    """The features replay scored each transaction with (its learner's held examples)."""
    from app.replay import Replayer, read_records

    replayer = Replayer(
        Settings(**{f"topic_{k}": v for k, v in topics.items()}, min_fraud_labels=5)
    )
    for record in read_records(lines, None):
        replayer.feed(record)
    return {t: e.x for t, e in replayer.learner.examples.items() if e.x is not None}
