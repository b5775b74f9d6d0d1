"""Fraud detection core: pure rules, per-card state and alert building (no Kafka, no Faust).

The live agents and `vigil replay` both drive `FraudDetector`; nothing here does I/O.
"""

from __future__ import annotations

from app.detect.alerts import alert_id, build_alert, score
from app.detect.codec import StateFormatError
from app.detect.config import RULES, FraudConfig
from app.detect.feedback import (
    FeedbackRecord,
    InMemoryFeedback,
    InMemoryPlaces,
    PlaceDelta,
    PlaceState,
    feedback_deltas,
)
from app.detect.fraud import Detection, FraudDetector
from app.detect.hits import RuleHit
from app.detect.state import CardState
from app.detect.terminal import PlaceLookup

__all__ = [
    "RULES",
    "CardState",
    "Detection",
    "FeedbackRecord",
    "FraudConfig",
    "FraudDetector",
    "InMemoryFeedback",
    "InMemoryPlaces",
    "PlaceDelta",
    "PlaceLookup",
    "PlaceState",
    "RuleHit",
    "StateFormatError",
    "alert_id",
    "build_alert",
    "feedback_deltas",
    "score",
]
