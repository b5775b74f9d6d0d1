from __future__ import annotations

from collections.abc import Callable

import pytest

from app.contract.events import Transaction
from app.detect.amount_spike import check_amount_spike
from app.detect.config import FraudConfig
from app.detect.state import CardState
from tests.unit.detect.helpers import T0, S, state_of

MakeTxn = Callable[..., Transaction]


def stats(count: int, mean: float, m2: float) -> CardState:
    state = CardState()
    state.count, state.mean, state.m2 = count, mean, m2
    return state


def test_five_prior_fires_four_do_not(make_txn: MakeTxn, config: FraudConfig) -> None:
    five = state_of([make_txn(amount=10.0, ts=T0 + i * S) for i in range(5)])
    hit = check_amount_spike(make_txn(amount=100.0), five, config)
    assert hit is not None
    assert (hit.rule, hit.value, hit.threshold) == ("amount_spike", 100.0, 30.0)
    assert hit.reason == (
        "amount 100.00 against a mean of 10.00 (stddev 0.00) over 5 prior transactions "
        "(alert above 30.00: more than mean + 4 stddev and at least 3 times the mean)"
    )
    four = state_of([make_txn(amount=10.0, ts=T0 + i * S) for i in range(4)])
    assert check_amount_spike(make_txn(amount=100.0), four, config) is None


@pytest.mark.parametrize(("amount", "fires"), [(30.0, True), (29.99, False)])
def test_at_least_three_times_the_mean(
    make_txn: MakeTxn, config: FraudConfig, amount: float, fires: bool
) -> None:
    state = stats(5, 10.0, 0.0)  # stddev 0: only the multiple bar matters (>=)
    assert (check_amount_spike(make_txn(amount=amount), state, config) is not None) is fires


@pytest.mark.parametrize(("amount", "fires"), [(5.0, False), (5.0001, True)])
def test_strictly_more_than_mean_plus_4_stddev(
    make_txn: MakeTxn, config: FraudConfig, amount: float, fires: bool
) -> None:
    state = stats(6, 1.0, 6.0)  # mean 1, stddev 1: bars 5 (strict) and 3 (inclusive)
    hit = check_amount_spike(make_txn(amount=amount), state, config)
    assert (hit is not None) is fires
    if hit is not None:
        assert hit.threshold == 5.0
        assert "stddev 1.00" in hit.reason


def test_zero_mean_and_zero_amount(make_txn: MakeTxn, config: FraudConfig) -> None:
    zeros = stats(5, 0.0, 0.0)
    assert check_amount_spike(make_txn(amount=0.0), zeros, config) is None
    assert check_amount_spike(make_txn(amount=0.01), zeros, config) is not None


def test_population_stddev_over_all_prior(make_txn: MakeTxn, config: FraudConfig) -> None:
    amounts = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]  # mean 5, population stddev 2
    state = state_of([make_txn(amount=a, ts=T0 + i * S) for i, a in enumerate(amounts)])
    assert state.count == 8
    assert state.mean == pytest.approx(5.0)
    assert state.stddev == pytest.approx(2.0)
    assert check_amount_spike(make_txn(amount=13.0), state, config) is None  # 13 = 5 + 4*2
    hit = check_amount_spike(make_txn(amount=15.01), state, config)
    assert hit is not None and hit.threshold == 15.0  # 3 x mean is the higher bar
