"""Building the `fraud-alerts` value from the rules that fired.

Kept apart from detection so the output format (the contract's "Fraud alert") lives in one
place, and so the id and the score are pure functions of the input: the same transaction always
gives the same alert, live or in replay, which is what lets readers and exactly-once restarts
deduplicate on `alert_id`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from app.contract.events import Transaction
from app.contract.timeutil import format_ts
from app.detect.config import FraudConfig
from app.detect.hits import RuleHit


def alert_id(txn: Transaction) -> str:
    """Deterministic id: the first 32 hex digits of sha256 of `card_id|txn_id|ts`.

    The ts is part of the key because a txn_id may legitimately be counted again after the
    duplicate window; card_id because txn ids are only promised unique, not namespaced.
    """
    key = f"{txn.card_id}|{txn.txn_id}|{txn.ts}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


def score(hits: Sequence[RuleHit], config: FraudConfig) -> float:
    """1 - prod(1 - weight) over the fired rules, rounded to 4 places, within 0..1.

    Treats each rule as independent evidence: more rules raise the score, none can exceed 1.
    """
    keep = 1.0
    for hit in hits:
        keep *= 1.0 - config.weight(hit.rule)
    return min(1.0, max(0.0, round(1.0 - keep, 4)))


def build_alert(
    txn: Transaction, hits: Sequence[RuleHit], config: FraudConfig, detected_ms: int
) -> dict[str, Any]:
    """The alert value for `txn`; `hits` must be non-empty and in the fixed rule order."""
    return {
        "alert_id": alert_id(txn),
        "txn_id": txn.txn_id,
        "card_id": txn.card_id,
        "amount": txn.amount,
        "currency": txn.currency,
        "merchant_id": txn.merchant_id,
        "event_ts": format_ts(txn.ts),
        "detected_ts": format_ts(detected_ms),
        "score": score(hits, config),
        "rules": [hit.to_dict() for hit in hits],
    }
