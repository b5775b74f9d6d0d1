"""Scoring one transaction: the txn-scores value, and the contract's alerting rule."""

from __future__ import annotations

import dataclasses

from app.contract.events import Feedback, Transaction
from app.detect.feedback import InMemoryPlaces
from app.detect.fraud import FraudDetector
from app.score.config import ScoreConfig
from app.score.features import FEATURES
from app.score.learner import DelayedLearner
from app.score.scorer import RiskScorer
from tests.unit.detect.helpers import DAY, HOUR, T0

PLACES = InMemoryPlaces()


def txn(i: int, ts: int, amount: float = 10.0, card: str = "c-1") -> Transaction:
    return Transaction(f"t-{i}", card, amount, "EUR", "m-1", ts, terminal_id="p-1")


def trained(config: ScoreConfig) -> tuple[RiskScorer, DelayedLearner, dict]:
    """A learner that has seen small legit amounts and large fraudulent ones."""
    scorer = RiskScorer(FraudDetector(), config)
    learner = DelayedLearner(config)
    cards: dict = {}
    for i in range(400):
        card = f"c-{i % 20}"
        big = i % 10 == 0
        t = txn(i, T0 + i * HOUR, 900.0 if big else 10.0 + i % 5, card)
        r = scorer.process(t, cards.get(card), PLACES, learner, t.ts)
        cards[card] = r.state
        learner.add_example(r.example)
        if big:
            learner.add_label(Feedback(t.txn_id, "fraud", t.ts + HOUR))
    return scorer, learner, cards


def test_the_txn_scores_value() -> None:
    scorer = RiskScorer(FraudDetector(), ScoreConfig())
    learner = DelayedLearner()
    r = scorer.process(txn(1, T0), None, PLACES, learner, T0 + 5)
    v = r.score
    assert v is not None and r.example is not None
    assert set(v) >= {
        "txn_id",
        "card_id",
        "event_ts",
        "scored_ts",
        "score",
        "model",
        "rules",
        "top_features",
    }
    assert (
        v["event_ts"] == "2026-11-28T10:00:00.000Z" and v["scored_ts"] == "2026-11-28T10:00:00.005Z"
    )
    assert v["model"] == {"kind": "rules", "updates": 0, "frauds": 0, "offset": 0}
    assert v["score"] == 0.0 and v["rules"] == []  # untrained: the rules' weight, none fired
    assert len(r.example.x) == len(FEATURES)


def test_before_min_fraud_labels_the_score_is_the_rules_weight() -> None:
    config = ScoreConfig(min_fraud_labels=10_000)
    scorer, learner, cards = trained(config)
    t = Transaction("t-big", "c-1", 12_000.0, "EUR", "m-1", T0 + 500 * HOUR)
    r = scorer.process(t, cards["c-1"], PLACES, learner, t.ts)
    assert r.alert is not None and r.score is not None
    assert r.alert["score"] == r.score["rule_score"] == r.score["score"]
    assert r.score["learned_score"] > 0.2  # learned (fraud-sized), but not used yet
    assert r.score["model"]["kind"] == "rules"


def test_the_score_alone_raises_an_alert_with_a_risk_score_entry() -> None:
    config = ScoreConfig(min_fraud_labels=5, alert_threshold=0.5, negative_sample=1.0)
    scorer, learner, cards = trained(config)
    assert learner.active and learner.frauds == 40
    t = txn(999, T0 + 500 * HOUR, 950.0, "c-0")  # a fraud-sized amount, no rule fires
    r = scorer.process(t, cards["c-0"], PLACES, learner, t.ts)
    assert r.score is not None and r.alert is not None
    assert r.score["rules"] == [] and r.score["score"] >= 0.5
    (hit,) = r.alert["rules"]
    assert hit["rule"] == "risk_score" and hit["threshold"] == 0.5
    assert hit["value"] == r.alert["score"] == round(r.score["score"], 4)
    assert hit["reason"].startswith(f"risk {r.score['score']:.2f} (alert at 0.50): ")
    assert "amount" in hit["reason"]
    top = r.score["top_features"]
    assert 1 <= len(top) <= 3
    assert [abs(f["contribution"]) for f in top] == sorted(
        (abs(f["contribution"]) for f in top), reverse=True
    )
    # an everyday amount on an everyday card does not alert
    t2 = txn(1000, T0 + 501 * HOUR, 11.0, "c-3")
    r2 = scorer.process(t2, cards["c-3"], PLACES, learner, t2.ts)
    assert r2.alert is None and r2.score is not None and r2.score["score"] < 0.5


def test_a_duplicate_is_not_scored() -> None:
    scorer = RiskScorer(FraudDetector(), ScoreConfig())
    learner = DelayedLearner()
    first = scorer.process(txn(1, T0), None, PLACES, learner, T0)
    again = scorer.process(txn(1, T0 + 1), first.state, PLACES, learner, T0 + 1)
    assert again.outcome == "duplicate" and again.score is None and again.example is None


def test_scoring_is_deterministic() -> None:
    config = dataclasses.replace(ScoreConfig(), min_fraud_labels=5, negative_sample=0.5)
    a = trained(config)[1].to_bytes()
    b = trained(config)[1].to_bytes()
    assert a == b


def test_fraud_labels_at_the_terminal_raise_its_next_score() -> None:
    config = ScoreConfig(min_fraud_labels=5, negative_sample=1.0)
    scorer, learner, cards = trained(config)
    t = txn(2000, T0 + 401 * HOUR, 12.0, "c-4")
    before = scorer.process(t, cards["c-4"], PLACES, learner, t.ts).example
    assert before is not None
    i = FEATURES.index("place_frauds_7d")
    assert before.x[i] > 0  # the big frauds were at p-1 within 7 days ...
    later = txn(2001, T0 + 401 * HOUR + 30 * DAY, 12.0, "c-4")
    after = scorer.process(later, cards["c-4"], PLACES, learner, later.ts).example
    assert after is not None and after.x[i] == 0.0  # ... and none 30 days on
