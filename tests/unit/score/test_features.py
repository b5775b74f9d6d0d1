"""The label-derived place features: the handbook's terminal risk and the episode's age."""

from __future__ import annotations

from array import array

from app.contract.events import Feedback, Transaction
from app.detect.config import FraudConfig
from app.detect.state import CardState
from app.score.config import ScoreConfig
from app.score.features import EPISODE_WEEKS, FEATURES, N_FEATURES, extract
from app.score.learner import DelayedLearner, Example
from tests.unit.detect.helpers import DAY, HOUR

CONFIG = ScoreConfig(negative_sample=1.0, min_fraud_labels=1)
DAY0 = 1_795_000_000_000 // DAY * DAY  # midnight UTC: the windows are calendar days
RISK = [FEATURES.index(f"place_risk_{d}d") for d in (1, 7, 28)]
EPISODE = [FEATURES.index(f"place_risk_7d_episode_week_{w}") for w in range(EPISODE_WEEKS)]


def held(learner: DelayedLearner, txn_id: str, ts: int) -> None:
    learner.add_example(Example(txn_id, "c-1", "t:p-1", ts, array("d", [0.0] * N_FEATURES)))


def features_at(learner: DelayedLearner, ts: int) -> list[float]:
    txn = Transaction("t-new", "c-2", 10.0, "EUR", "m-1", ts, terminal_id="p-1")
    return extract(txn, CardState(), [], learner, FraudConfig())


def test_risk_is_the_fraud_share_of_days_a_label_delay_ago_and_the_episode_its_age() -> None:
    learner = DelayedLearner(CONFIG)
    for i in range(4):  # day 1: four transactions at the terminal, two of them fraud
        held(learner, f"t-{i}", DAY0 + DAY + i * HOUR)
    held(learner, "t-9", DAY0 + HOUR)  # day 0: one more, legit
    for i in range(2):
        learner.add_label(Feedback(f"t-{i}", "fraud", DAY0 + 8 * DAY))
    # Day 9: the window's last day is 9 - 7 (the delay) - 1 = day 1.
    x = features_at(learner, DAY0 + 9 * DAY + HOUR)
    assert [x[i] for i in RISK] == [0.5, 2 / 5, 2 / 5]  # 1 day: day 1; 7 and 28 days: 0 and 1
    assert [x[i] for i in EPISODE] == [0.0, 2 / 5, 0.0, 0.0, 0.0, 0.0]  # 8 days in: week 1
    # Day 10: day 1 has left the 1-day window; an episode of 9 days is still in week 1.
    x = features_at(learner, DAY0 + 10 * DAY + HOUR)
    assert [x[i] for i in RISK] == [0.0, 2 / 5, 2 / 5]


def test_a_label_from_the_future_or_of_an_unknown_transaction_does_not_count() -> None:
    learner = DelayedLearner(CONFIG)
    held(learner, "t-1", DAY0 + DAY)
    learner.add_label(Feedback("t-1", "fraud", DAY0 + 20 * DAY))  # received after the txn below
    learner.add_label(Feedback("t-x", "fraud", DAY0 + 2 * DAY, terminal_id="p-1"))  # not held
    x = features_at(learner, DAY0 + 9 * DAY + HOUR)
    assert [x[i] for i in RISK + EPISODE] == [0.0] * (3 + EPISODE_WEEKS)
    assert x[FEATURES.index("place_frauds_28d")] > 0  # the received one counts by label time


def test_risk_windows_follow_the_label_delay_setting() -> None:
    learner = DelayedLearner(ScoreConfig(label_delay_ms=2 * DAY, min_fraud_labels=1))
    held(learner, "t-1", DAY0 + DAY)
    learner.add_label(Feedback("t-1", "fraud", DAY0 + 2 * DAY))
    x = features_at(learner, DAY0 + 4 * DAY + HOUR)  # last day: 4 - 2 - 1 = day 1
    assert x[RISK[0]] == 1.0
