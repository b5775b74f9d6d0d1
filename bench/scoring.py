"""The risk-scoring cost per event, measured in-process on the fraud run's own transactions.

Reported beside the fraud pipeline's throughput (`bench/scenarios/fraud.py` runs it on the
records it is about to produce): the six rules alone (`FraudDetector.process`), the rules plus
features plus the model's score (`RiskScorer.process`, what the fraud agent now calls), their
difference (features + model, the issue's <= 50 us target), and one learning step
(`OnlineLogistic.learn`, which every worker runs in its model follower, off the agent's path).
Each is CPU time (`time.process_time`: on a shared machine wall time counts the others' load
too), the best of three passes.

`python -m bench.scoring --snapshot [N]`: the model snapshot's cost with N examples held
(`snapshot_cost`): at once, and the longest stretch the follower's sectioned serialisation
keeps the event loop.
"""

from __future__ import annotations

import random
import time
from array import array
from typing import Any

from app.contract.events import Feedback, Transaction
from app.contract.intake import TRANSACTIONS, Rejected
from app.detect.feedback import InMemoryFeedback
from app.detect.fraud import FraudDetector
from app.detect.state import CardState
from app.score.features import N_FEATURES
from app.score.learner import DelayedLearner, Example
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


def held_learner(n_examples: int, seed: int = 7) -> DelayedLearner:
    """A learner holding `n_examples` scored transactions (15 000 a day, so that 200 000 fit
    in the label delay and late window; 2 000 cards, 5 000 places, one in 100 labelled fraud;
    features half 0, a fifth 1, the rest any float): the state a snapshot has to write."""
    rng = random.Random(seed)
    learner = DelayedLearner(Settings().score_config())
    start = 1_700_000_000_000
    step = 86_400_000 // 15_000

    def value() -> float:
        r = rng.random()
        return 0.0 if r < 0.5 else 1.0 if r < 0.7 else rng.uniform(-3, 6)

    for i in range(n_examples):
        ts = start + i * step
        x = array("d", (value() for _ in range(N_FEATURES)))
        place = f"t:p-{rng.randrange(5000)}"
        learner.add_example(Example(f"tx-{i}", f"c-{rng.randrange(2000)}", place, ts, x))
        if i % 100 == 0 and i >= 20_000:
            learner.add_label(Feedback(f"tx-{i - 20_000}", "fraud", ts))
    return learner


def snapshot_cost(n_examples: int = 200_000) -> dict[str, Any]:
    """CPU ms of one snapshot of a learner holding `n_examples`: at once (`to_bytes`), and
    the longest stretch without yielding to the event loop when serialised section by section
    (`snapshot_parts`, as the follower does: the sections are written in a thread, never
    joined on the loop); its size and load time."""
    learner = held_learner(n_examples)
    start = time.process_time()
    raw = learner.to_bytes(config="x")
    whole = time.process_time() - start
    longest = 0.0
    parts = []
    total = time.process_time()
    for part in learner.snapshot_parts(config="x"):  # the time between two yields
        parts.append(part)
        now = time.process_time()
        longest = max(longest, now - total)
        total = now
    assert b"".join(parts) == raw
    start = time.process_time()
    DelayedLearner.from_bytes(raw, learner.config)
    load = time.process_time() - start
    return {
        "examples_held": len(learner.examples),
        "snapshot_bytes": len(raw),
        "snapshot_cpu_ms": round(whole * 1e3, 1),
        "longest_loop_stall_cpu_ms": round(longest * 1e3, 1),
        "load_cpu_ms": round(load * 1e3, 1),
    }


if __name__ == "__main__":
    import sys

    from bench import data

    if sys.argv[1:2] == ["--snapshot"]:
        print(snapshot_cost(int(sys.argv[2]) if len(sys.argv) > 2 else 200_000))
    else:
        records, _ = data.fraud_traffic(20_000, 7)
        print(scoring_cost(records))
