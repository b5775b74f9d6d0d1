"""Rule `velocity`: many transactions on one card within a short event-time window.

Fires when the card has >= `velocity_count` transactions (this one included) with ts in
(ts - `velocity_window_ms`, ts]. Bursts like this are typical of a stolen card being spent fast
before it is blocked.
"""

from __future__ import annotations

from app.contract.events import Transaction
from app.detect.config import FraudConfig
from app.detect.hits import RuleHit, seconds
from app.detect.state import CardState

RULE = "velocity"


def check_velocity(txn: Transaction, state: CardState, config: FraudConfig) -> RuleHit | None:
    """Evaluate the rule on `state` as it was before `txn` was counted."""
    ts = txn.ts
    count = state.count_in(ts - config.velocity_window_ms, ts) + 1
    if count < config.velocity_count:
        return None
    return RuleHit(
        RULE,
        f"{count} transactions in {seconds(config.velocity_window_ms)} "
        f"(alert at {config.velocity_count})",
        count,
        config.velocity_count,
    )
