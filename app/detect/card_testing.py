"""Rule `card_testing`: a run of tiny transactions, the way fraudsters probe a stolen card.

Fires when the amount is <= `card_testing_max_amount` and the card has >= `card_testing_count`
such small transactions (this one included) with ts in (ts - `card_testing_window_ms`, ts].
"""

from __future__ import annotations

from app.contract.events import Transaction
from app.detect.config import FraudConfig
from app.detect.hits import RuleHit, money, seconds
from app.detect.state import CardState

RULE = "card_testing"


def check_card_testing(txn: Transaction, state: CardState, config: FraudConfig) -> RuleHit | None:
    """Evaluate the rule on `state` as it was before `txn` was counted."""
    small = config.card_testing_max_amount
    if txn.amount > small:
        return None
    ts = txn.ts
    count = state.count_small_in(ts - config.card_testing_window_ms, ts, small) + 1
    if count < config.card_testing_count:
        return None
    return RuleHit(
        RULE,
        f"{count} transactions of {money(small)} or less in "
        f"{seconds(config.card_testing_window_ms)} (alert at {config.card_testing_count})",
        count,
        config.card_testing_count,
    )
