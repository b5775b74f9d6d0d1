"""Rule `compromised_terminal`: the point of sale has recently confirmed fraud on it.

Fires when the transaction's place (its terminal, else its merchant; see
`app.contract.events.place_key`)
has >= `terminal_fraud_count` distinct transactions labelled fraud with feedback ts in
(ts - `terminal_window_ms`, ts]. Labels live in a per-place store fed by the feedback side
(`app.detect.feedback`); this rule only reads it through `PlaceLookup`, so the live tables and
the in-memory replay store are interchangeable.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from app.contract.events import Transaction, place_key
from app.detect.config import FraudConfig
from app.detect.hits import RuleHit, long_span, place_name
from app.detect.state import CardState

RULE = "compromised_terminal"


class PlaceLookup(Protocol):
    """Read access to fraud labels per place."""

    def fraud_label_times(self, place: str) -> Collection[int]:
        """Feedback ts of each distinct txn currently labelled fraud at `place` (one per txn)."""
        ...


def check_compromised_terminal(
    txn: Transaction, state: CardState, config: FraudConfig, places: PlaceLookup
) -> RuleHit | None:
    """Count fraud labels at the txn's place in the window (`state` is unused)."""
    place = place_key(txn.terminal_id, txn.merchant_id)
    if place is None:
        return None
    times = places.fraud_label_times(place)
    if len(times) < config.terminal_fraud_count:
        return None
    until = txn.ts
    after = until - config.terminal_window_ms
    count = 0
    for t in times:
        if after < t <= until:
            count += 1
    if count < config.terminal_fraud_count:
        return None
    return RuleHit(
        RULE,
        f"{count} transactions at {place_name(place)} labelled fraud in the last "
        f"{long_span(config.terminal_window_ms)} (alert at {config.terminal_fraud_count})",
        count,
        config.terminal_fraud_count,
    )
