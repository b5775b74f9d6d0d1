"""Rule `amount_spike`: an amount far above what this card usually spends.

Fires when the card has >= `spike_min_prior` prior transactions and the amount is both
> mean + `spike_stddevs` x stddev and >= `spike_mean_multiple` x mean. Mean and population
stddev come from Welford's running statistics over all prior transactions, read before this one
is added (otherwise a spike would raise its own bar). The second condition keeps cards with very
regular spending (stddev near 0) from alerting on a small rise.
"""

from __future__ import annotations

from app.contract.events import Transaction
from app.detect.config import FraudConfig
from app.detect.hits import RuleHit, money, number
from app.detect.state import CardState

RULE = "amount_spike"


def check_amount_spike(txn: Transaction, state: CardState, config: FraudConfig) -> RuleHit | None:
    """Evaluate the rule on `state` as it was before `txn` was counted."""
    prior = state.count
    if prior < config.spike_min_prior:
        return None
    amount = txn.amount
    mean = state.mean
    stddev = state.stddev
    spread_bar = mean + config.spike_stddevs * stddev
    multiple_bar = config.spike_mean_multiple * mean
    if not (amount > spread_bar and amount >= multiple_bar):
        return None
    bar = max(spread_bar, multiple_bar)
    return RuleHit(
        RULE,
        f"amount {money(amount)} against a mean of {money(mean)} (stddev {money(stddev)}) over "
        f"{prior} prior transactions (alert above {money(bar)}: more than mean + "
        f"{number(config.spike_stddevs)} stddev and at least "
        f"{number(config.spike_mean_multiple)} times the mean)",
        amount,
        round(bar, 2),
    )
