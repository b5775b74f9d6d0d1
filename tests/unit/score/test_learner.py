"""Delayed-label learning exactly as the contract says (event time, features as scored)."""

from __future__ import annotations

from array import array

import pytest

from app.contract.events import Feedback
from app.score.config import ScoreConfig
from app.score.features import N_FEATURES
from app.score.learner import NEGATIVE, POSITIVE, SKIPPED, DelayedLearner, Example, sampled
from tests.unit.detect.helpers import DAY, HOUR, T0

CONFIG = ScoreConfig(negative_sample=1.0, min_fraud_labels=1)


def ex(
    txn_id: str, ts: int, value: float = 1.0, card: str = "c-1", place: str | None = "t:p-1"
) -> Example:
    return Example(txn_id, card, place, ts, array("d", [value] * N_FEATURES))


def fraud(txn_id: str, ts: int, **kw: str) -> Feedback:
    return Feedback(txn_id, "fraud", ts, **kw)


def legit(txn_id: str, ts: int) -> Feedback:
    return Feedback(txn_id, "legit", ts)


def test_a_fraud_label_is_a_positive_from_the_features_as_scored() -> None:
    learner = DelayedLearner(CONFIG)
    example = ex("t-1", T0, 3.0)
    learner.add_example(example)
    assert learner.add_label(fraud("t-1", T0 + DAY)) == "fraud"
    assert (learner.frauds, learner.updates) == (1, 1)
    assert learner.examples["t-1"].status == POSITIVE
    assert learner.model.seen == 1  # learned once, from that vector
    assert learner.model.to_dict()["mean"] == [3.0] * N_FEATURES


def test_a_legit_label_is_a_negative_at_once() -> None:
    learner = DelayedLearner(CONFIG)
    learner.add_example(ex("t-1", T0))
    assert learner.add_label(legit("t-1", T0 + HOUR)) == "legit"
    assert (learner.frauds, learner.updates) == (0, 1)
    assert learner.examples["t-1"].status == NEGATIVE


def test_no_label_within_the_delay_is_a_negative_in_event_time() -> None:
    learner = DelayedLearner(CONFIG)
    learner.add_example(ex("t-1", T0))
    learner.add_example(ex("t-2", T0 + 7 * DAY - 1))  # the clock stops 1 ms short
    assert learner.updates == 0
    learner.add_example(ex("t-3", T0 + 7 * DAY))  # label_delay reached for t-1 only
    assert learner.updates == 1 and learner.counts["expired"] == 1
    assert learner.examples["t-1"].status == NEGATIVE
    assert learner.examples["t-2"].status == 0  # still pending


def test_a_late_fraud_after_a_learned_negative_is_learned_as_a_positive_then() -> None:
    learner = DelayedLearner(CONFIG)
    learner.add_example(ex("t-1", T0))
    learner.add_example(ex("t-2", T0 + 8 * DAY))  # t-1 expires: negative
    assert learner.add_label(fraud("t-1", T0 + 9 * DAY)) == "late_fraud"
    assert (learner.frauds, learner.updates) == (1, 2)
    assert learner.add_label(fraud("t-1", T0 + 9 * DAY)) == "ignored"  # once only
    assert learner.updates == 2


def test_features_are_forgotten_after_the_late_window() -> None:
    learner = DelayedLearner(CONFIG)
    learner.add_example(ex("t-1", T0))
    learner.add_example(ex("t-2", T0 + 14 * DAY))  # delay 7 + late 7 days
    assert "t-1" not in learner.examples
    assert learner.add_label(fraud("t-1", T0 + 15 * DAY)) == "parked"
    learner.add_example(ex("t-3", T0 + 22 * DAY))  # label_delay after the label: given up
    assert learner.counts["unknown"] == 1 and learner.frauds == 0


def test_a_label_ahead_of_its_example_waits_for_it() -> None:
    """In a worker a label and its transaction's example come from different partitions."""
    learner = DelayedLearner(CONFIG)
    assert learner.add_label(fraud("t-1", T0 + HOUR, terminal_id="p-9")) == "parked"
    assert list(learner.fraud_times("t:p-9")) == [T0 + HOUR]  # known at once for features
    learner.add_example(ex("t-1", T0, card="c-5"))
    assert learner.frauds == 1 and learner.counts["fraud"] == 1
    assert list(learner.fraud_times("c:c-5")) == [T0 + HOUR]  # the example names the card
    a = DelayedLearner.from_bytes(learner.to_bytes(), CONFIG)
    assert a.to_bytes() == learner.to_bytes()


def test_a_legit_label_after_fraud_does_not_unlearn() -> None:
    learner = DelayedLearner(CONFIG)
    learner.add_example(ex("t-1", T0))
    learner.add_label(fraud("t-1", T0 + DAY))
    assert learner.add_label(legit("t-1", T0 + 2 * DAY)) == "ignored"
    assert learner.frauds == 1


def test_negatives_are_sampled_by_txn_id_and_the_sample_is_stable() -> None:
    config = ScoreConfig(negative_sample=0.25)
    ids = [f"t-{i}" for i in range(4000)]
    kept = [i for i in ids if sampled(i, 0.25)]
    assert 800 < len(kept) < 1200
    assert kept == [i for i in ids if sampled(i, 0.25)]
    learner = DelayedLearner(config)
    for n, txn_id in enumerate(ids):
        learner.add_example(ex(txn_id, T0 + n))
    learner.add_example(ex("t-end", T0 + 30 * DAY))
    assert learner.updates == len(kept)
    assert learner.counts["unsampled"] == len(ids) - len(kept)
    # an unsampled negative's features are still held for a late fraud label ...
    skipped = next(i for i in ids if not sampled(i, 0.25))
    learner2 = DelayedLearner(config)
    learner2.add_example(ex(skipped, T0))
    learner2.add_example(ex("t-next", T0 + 8 * DAY))
    assert learner2.examples[skipped].status == SKIPPED
    assert learner2.add_label(fraud(skipped, T0 + 9 * DAY)) == "late_fraud"  # ... and learned


def test_labels_are_indexed_per_place_and_card_from_the_feedback_or_the_example() -> None:
    learner = DelayedLearner(CONFIG)
    learner.add_example(ex("t-1", T0, place="t:p-1", card="c-9"))
    learner.add_label(fraud("t-1", T0 + DAY))  # names neither: the example's own
    assert list(learner.fraud_times("t:p-1")) == [T0 + DAY]
    assert list(learner.fraud_times("c:c-9")) == [T0 + DAY]
    learner.add_label(fraud("t-2", T0 + DAY, terminal_id="p-2"))  # not held: the feedback's
    assert list(learner.fraud_times("t:p-2")) == [T0 + DAY]
    learner.add_label(legit("t-1", T0 + 2 * DAY))  # the last label of a txn counts
    assert list(learner.fraud_times("t:p-1")) == []
    learner.add_example(ex("t-3", T0 + 30 * DAY))  # in the place's risk windows' reach ...
    assert list(learner.fraud_times("t:p-2")) == [T0 + DAY]
    # ... (label delay + 1 + the widest label window) and past it
    learner.add_example(ex("t-4", T0 + DAY + learner._label_span_ms))
    assert list(learner.fraud_times("t:p-2")) == []


def test_max_examples_bounds_the_state() -> None:
    learner = DelayedLearner(ScoreConfig(negative_sample=1.0, max_examples=100))
    for i in range(1000):
        learner.add_example(ex(f"t-{i}", T0 + i))
    assert len(learner.examples) == 100
    assert learner.updates == 900  # those pushed out while pending were learned as negatives


def test_a_snapshot_continues_exactly() -> None:
    """Restored from bytes, the learner learns and scores as the one that never stopped."""
    config = ScoreConfig(negative_sample=0.5, min_fraud_labels=1)
    a = DelayedLearner(config)
    events = []
    for i in range(300):
        events.append(ex(f"t-{i}", T0 + i * HOUR, float(i % 7)))
        if i % 9 == 0 and i > 20:
            events.append(fraud(f"t-{i - 20}", T0 + i * HOUR))
    half = len(events) // 2
    for e in events[:half]:
        (a.add_example if isinstance(e, Example) else a.add_label)(e)  # type: ignore[operator]
    b = DelayedLearner.from_bytes(a.to_bytes(), config)
    assert b.to_bytes() == a.to_bytes()
    for e in events[half:]:
        for learner in (a, b):
            if isinstance(e, Example):
                learner.add_example(Example(e.txn_id, e.card_id, e.place, e.ts, array("d", e.x)))
            else:
                learner.add_label(e)
    assert b.to_bytes() == a.to_bytes()
    x = [1.0] * N_FEATURES
    assert a.model.predict(x) == b.model.predict(x)
    assert a.frauds > 5


def test_a_snapshot_of_another_feature_set_is_refused() -> None:
    raw = DelayedLearner(CONFIG).to_bytes().replace(b'"amount_log"', b'"amount_raw"')
    with pytest.raises(ValueError):
        DelayedLearner.from_bytes(raw, CONFIG)
