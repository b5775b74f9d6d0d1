"""The risk-scoring cost per event, measured in-process on the fraud run's own transactions.

Reported beside the fraud pipeline's throughput (`bench/scenarios/fraud.py` runs it on the
records it is about to produce): the six rules alone (`FraudDetector.process`), the rules plus
features plus the model's score (`RiskScorer.process`, what the fraud agent now calls), their
difference (features + model, the issue's <= 50 us target), and one learning step
(`OnlineLogistic.learn`, which every worker runs in its model follower, off the agent's path).
Each is CPU time (`time.process_time`: on a shared machine wall time counts the others' load
too), the best of three passes.
"""

from __future__ import annotations

import time
from typing import Any

from app.contract.events import Transaction
from app.contract.intake import TRANSACTIONS, Rejected
from app.detect.feedback import InMemoryFeedback
from app.detect.fraud import FraudDetector
from app.detect.state import CardState
from app.score.learner import DelayedLearner
from app.score.scorer import RiskScorer
from app.settings import Settings

Record = tuple[bytes, bytes]


def _best(passes: int, run: Any) -> float:
    return min(run() for _ in range(passes))


def scoring_cost(records: list[Record], passes: int = 3) -> dict[str, Any]:
    """CPU microseconds per transaction: rules, rules + scoring, their difference, a learn step."""
    settings = Settings()
    txns = [t for t in (TRANSACTIONS(v, k) for k, v in records) if not isinstance(t, Rejected)]
    assert all(isinstance(t, Transaction) for t in txns)
    detector = FraudDetector(settings.fraud_config())
    places = InMemoryFeedback(detector.config).places
    scorer = RiskScorer(detector, settings.score_config())
    learner = DelayedLearner(settings.score_config())
    # A model that has learned something, so scoring takes its full path (standardise, dot).
    warm: dict[str, CardState] = {}
    for i, t in enumerate(txns[:2000]):
        r = scorer.process(t, warm.get(t.card_id), places, learner, t.ts)
        warm[t.card_id] = r.state
        if r.example is not None and r.example.x is not None:
            learner.model.learn(r.example.x, 1 if i % 50 == 0 else 0)

    def rules() -> float:
        cards: dict[str, CardState] = {}
        start = time.process_time()
        for t in txns:
            cards[t.card_id] = detector.process(t, cards.get(t.card_id), places, t.ts).state
        return (time.process_time() - start) / len(txns) * 1e6

    def scored() -> float:
        cards: dict[str, CardState] = {}
        start = time.process_time()
        for t in txns:
            r = scorer.process(t, cards.get(t.card_id), places, learner, t.ts)
            cards[t.card_id] = r.state
        return (time.process_time() - start) / len(txns) * 1e6

    xs = [
        r.example.x for r in (scorer.process(t, None, places, learner, t.ts) for t in txns[:2000])
    ]

    def learn() -> float:
        model = learner.model
        start = time.process_time()
        for i, x in enumerate(xs):
            if x is not None:
                model.learn(x, 1 if i % 50 == 0 else 0)
        return (time.process_time() - start) / len(xs) * 1e6

    rules_us = _best(passes, rules)
    scored_us = _best(passes, scored)
    return {
        "transactions": len(txns),
        "rules_us_per_event": round(rules_us, 1),
        "rules_and_score_us_per_event": round(scored_us, 1),
        "features_and_model_us_per_event": round(scored_us - rules_us, 1),
        "learn_step_us": round(_best(passes, learn), 1),
    }


if __name__ == "__main__":
    from bench import data

    records, _ = data.fraud_traffic(20_000, 7)
    print(scoring_cost(records))
