from __future__ import annotations

from collections.abc import Callable

import pytest

from app.contract.events import Transaction
from app.detect.card_testing import check_card_testing
from app.detect.config import FraudConfig
from tests.unit.detect.helpers import MIN, T0, S, state_of

MakeTxn = Callable[..., Transaction]


def test_fifth_small_in_600_s_fires(make_txn: MakeTxn, config: FraudConfig) -> None:
    prior = state_of([make_txn(amount=1.0, ts=T0 + i * MIN) for i in range(4)])
    hit = check_card_testing(make_txn(amount=0.5, ts=T0 + 5 * MIN), prior, config)
    assert hit is not None
    assert (hit.rule, hit.value, hit.threshold) == ("card_testing", 5, 5)
    assert hit.reason == "5 transactions of 2.00 or less in 600 s (alert at 5)"


def test_fourth_small_does_not_fire(make_txn: MakeTxn, config: FraudConfig) -> None:
    prior = state_of([make_txn(amount=1.0, ts=T0 + i * S) for i in range(3)])
    assert check_card_testing(make_txn(amount=1.0, ts=T0 + 5 * S), prior, config) is None


@pytest.mark.parametrize(("amount", "fires"), [(2.00, True), (2.01, False), (0.0, True)])
def test_this_amount_boundary(
    make_txn: MakeTxn, config: FraudConfig, amount: float, fires: bool
) -> None:
    prior = state_of([make_txn(amount=1.0, ts=T0 + i * S) for i in range(4)])
    hit = check_card_testing(make_txn(amount=amount, ts=T0 + 10 * S), prior, config)
    assert (hit is not None) is fires


def test_prior_amount_boundary(make_txn: MakeTxn, config: FraudConfig) -> None:
    at_bar = state_of([make_txn(amount=2.00, ts=T0 + i * S) for i in range(4)])
    assert check_card_testing(make_txn(amount=1.0, ts=T0 + 10 * S), at_bar, config) is not None
    above = state_of([make_txn(amount=2.01, ts=T0 + i * S) for i in range(4)])
    assert check_card_testing(make_txn(amount=1.0, ts=T0 + 10 * S), above, config) is None


def test_large_transactions_in_between_do_not_count(make_txn: MakeTxn, config: FraudConfig) -> None:
    txns = [make_txn(amount=a, ts=T0 + i * S) for i, a in enumerate([1, 500, 1, 500, 1, 1])]
    prior = state_of(txns[:5])
    assert check_card_testing(make_txn(amount=1.0, ts=T0 + 10 * S), prior, config) is None
    prior = state_of(txns)
    assert check_card_testing(make_txn(amount=1.0, ts=T0 + 10 * S), prior, config) is not None


def test_exactly_600_s_earlier_is_outside(make_txn: MakeTxn, config: FraudConfig) -> None:
    prior = state_of(
        [make_txn(amount=1.0, ts=T0)] + [make_txn(amount=1.0, ts=T0 + MIN) for _ in range(3)]
    )
    assert check_card_testing(make_txn(amount=1.0, ts=T0 + 10 * MIN), prior, config) is None
    hit = check_card_testing(make_txn(amount=1.0, ts=T0 + 10 * MIN - 1), prior, config)
    assert hit is not None and hit.value == 5
