"""One transaction in: the rules, its features, its risk score, its `txn-scores` value and alert.

`RiskScorer.process` is what the fraud agent and `vigil replay` both call in place of
`FraudDetector.process`: the rules run exactly as before, the features are taken from the
card's state *before* the transaction is counted into it, and the score comes from the learner
as it is at that moment. Learning is not done here: the caller hands `Scored.example` to the
learner's stream (replay: at once; a worker: through the training topic), so the same ordered
stream builds the same model everywhere.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any, Literal

from app.contract.events import Transaction, place_key
from app.contract.timeutil import format_ts
from app.detect.alerts import build_alert
from app.detect.alerts import score as rules_score
from app.detect.fraud import FraudDetector
from app.detect.hits import RuleHit
from app.detect.state import CardState
from app.detect.terminal import PlaceLookup
from app.score.config import ScoreConfig
from app.score.features import FEATURES, describe, extract
from app.score.learner import DelayedLearner, Example

TOP_FEATURES = 3


@dataclass(frozen=True, slots=True)
class Scored:
    """What scoring one transaction produced (`score`, `example` are None for a duplicate)."""

    outcome: Literal["ok", "duplicate"]
    state: CardState
    alert: dict[str, Any] | None
    score: dict[str, Any] | None
    example: Example | None


class RiskScorer:
    """The six rules plus the learned score, with the contract's alerting rule."""

    __slots__ = ("config", "detector")

    def __init__(self, detector: FraudDetector, config: ScoreConfig | None = None) -> None:
        """Score with `detector`'s rules and `config`'s threshold and warm-up."""
        self.detector = detector
        self.config = config if config is not None else ScoreConfig()

    def process(
        self,
        txn: Transaction,
        state: CardState | None,
        places: PlaceLookup,
        learner: DelayedLearner,
        detected_ms: int,
    ) -> Scored:
        """Detect and score `txn` against the card's `state` (updated in place, as detect does)."""
        fraud = self.detector.config
        if state is None:
            state = CardState()
        elif state.is_duplicate(txn.txn_id, txn.ts, fraud.duplicate_window_ms):
            return Scored("duplicate", state, None, None, None)
        hits = self.detector.hits(txn, state, places)
        x = extract(txn, state, hits, learner, fraud)
        state.add(txn, fraud)
        weight = rules_score(hits, fraud)
        probability, contributions = learner.model.explain(x)
        active = learner.active
        risk = round(probability, 6) if active else weight
        top = _top(x, contributions)
        names = [h.rule for h in hits]
        threshold = self.config.alert_threshold
        alert = None
        if hits or (active and risk >= threshold):
            alert = build_alert(txn, hits, fraud, detected_ms)
            if active:
                alert["score"] = round(risk, 4)
                if not hits:
                    alert["rules"] = [_risk_hit(risk, threshold, top).to_dict()]
        event_ts = format_ts(txn.ts)
        value = {
            "txn_id": txn.txn_id,
            "card_id": txn.card_id,
            "event_ts": event_ts,
            "scored_ts": event_ts if detected_ms == txn.ts else format_ts(detected_ms),
            "score": risk,
            "model": {
                "kind": "logistic" if active else "rules",
                "updates": learner.updates,
                "frauds": learner.frauds,
                "offset": learner.offset,
            },
            "rules": names,
            "rule_score": weight,
            "learned_score": round(probability, 6),
            "top_features": top,
        }
        example = Example(
            txn.txn_id,
            txn.card_id,
            place_key(txn.terminal_id, txn.merchant_id),
            txn.ts,
            array("d", x),
        )
        return Scored("ok", state, alert, value, example)


def _top(x: list[float], contributions: list[float]) -> list[dict[str, Any]]:
    """The features that moved the logit most (by absolute contribution), largest first.

    `contributions` ends with the amount band's weight (`OnlineLogistic.explain`): it is
    listed as `amount_band`, valued by the amount itself.
    """
    size = [abs(c) for c in contributions]
    # sorted (in C, stable: ties keep the feature order) beats heapq.nlargest's Python loop.
    order = sorted(range(len(size)), key=size.__getitem__, reverse=True)[:TOP_FEATURES]
    return [
        {
            "feature": FEATURES[i] if i < len(x) else "amount_band",
            "value": round(x[i] if i < len(x) else x[0], 4),
            "contribution": round(contributions[i], 4),
        }
        for i in order
        if size[i] > 0.0
    ]


def _risk_hit(risk: float, threshold: float, top: list[dict[str, Any]]) -> RuleHit:
    """The `risk_score` entry of an alert the score alone raised, its reason in words."""
    words = [describe(t["feature"], t["value"]) for t in top if t["contribution"] > 0]
    reason = f"risk {risk:.2f} (alert at {threshold:.2f})"
    if words:
        reason += ": " + "; ".join(words)
    return RuleHit("risk_score", reason, round(risk, 4), threshold)
