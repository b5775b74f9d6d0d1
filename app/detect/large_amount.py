"""Rule `large_amount`: a single transaction at or above a fixed amount.

Stateless on purpose: a very large payment deserves a look whatever the card's history.
"""

from __future__ import annotations

from app.contract.events import Transaction
from app.detect.config import FraudConfig
from app.detect.hits import RuleHit, money
from app.detect.state import CardState

RULE = "large_amount"


def check_large_amount(txn: Transaction, state: CardState, config: FraudConfig) -> RuleHit | None:
    """Fire when amount >= `large_amount` (`state` is unused; taken for a uniform signature)."""
    bar = config.large_amount
    if txn.amount < bar:
        return None
    return RuleHit(
        RULE,
        f"amount {money(txn.amount)} {txn.currency} (alert at {money(bar)})",
        txn.amount,
        bar,
    )
