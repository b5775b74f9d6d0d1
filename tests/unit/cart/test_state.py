"""`CartState`: the stored form round-trips exactly, and disposal keeps only what matters."""

from __future__ import annotations

import orjson
import pytest

from app.cart.config import CartConfig
from app.cart.machine import apply, fire
from app.cart.state import Abandonment, CartState, CartStateError, Item, cart_value
from tests.unit.cart.steps import MakeEvent
from tests.unit.cart.timeline import HOUR, MIN, T0

TIMEOUT = 30 * MIN


def _full_state() -> CartState:
    return CartState(
        items={"sku-2": Item(3, 0.1), "sku-1": Item(2, 19.99)},
        currency="EUR",
        session_id="s-3",
        episode=4,
        episode_key="k" * 32,
        last_activity_ms=T0,
        deadline_ms=T0 + TIMEOUT,
        abandoned=Abandonment(
            episode_key="j" * 32,
            items=(("sku-1", Item(1, 5.0)),),
            cart_value=5.0,
            currency="USD",
            last_activity_ms=T0 - HOUR,
            abandoned_at_ms=T0 - 30 * MIN,
            recover_until_ms=T0 + 23 * HOUR + 30 * MIN,
        ),
    )


@pytest.mark.parametrize(
    "state",
    [_full_state(), CartState(last_activity_ms=T0), CartState(last_activity_ms=0, items={})],
)
def test_bytes_round_trip(state: CartState) -> None:
    data = state.to_bytes()
    back = CartState.from_bytes(data)
    assert back == state
    assert list(back.items) == list(state.items)  # insertion order kept
    assert back.to_bytes() == data


def test_stored_form_is_compact_and_versioned() -> None:
    raw = orjson.loads(_full_state().to_bytes())
    assert isinstance(raw, list) and raw[0] == 1
    assert len(_full_state().to_bytes()) < 250


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"{}",
        b"[]",
        b"[2]",
        b"[1, [], null]",
        b'[1, "x", null, null, 0, null, 0, null, null]',
    ],
)
def test_unreadable_bytes_raise_cart_state_error(data: bytes) -> None:
    with pytest.raises(CartStateError):
        CartState.from_bytes(data)


def test_cart_value_sums_in_decimal() -> None:
    assert cart_value({"a": Item(3, 0.1)}) == 0.3
    assert cart_value({"a": Item(2, 19.99)}) == 39.98
    assert cart_value({}) == 0.0


def test_non_empty_cart_is_never_disposable(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, _ = apply(None, make_event("add_to_cart", 0), cfg, T0)
    assert not state.is_disposable(T0 + 1000 * HOUR)
    state, _ = fire("u-1", state, T0 + TIMEOUT, cfg, T0)  # abandoned, items kept
    assert not state.is_disposable(T0 + 1000 * HOUR)


def test_empty_cart_is_disposable_once_its_activity_is_behind_the_clock(
    make_event: MakeEvent, cfg: CartConfig
) -> None:
    state, _ = apply(None, make_event("view", MIN), cfg, T0)
    assert state.timer_ms() == T0 + MIN
    assert not state.is_disposable(T0 + MIN - 1)
    assert state.is_disposable(T0 + MIN)


def test_recoverable_abandonment_keeps_an_empty_cart(
    make_event: MakeEvent, cfg: CartConfig
) -> None:
    state, _ = apply(None, make_event("add_to_cart", 0), cfg, T0)
    state, _ = fire("u-1", state, T0 + TIMEOUT, cfg, T0)
    state, _ = apply(state, make_event("remove_from_cart", HOUR), cfg, T0)
    assert not state.items and state.abandoned is not None
    last_recovery = T0 + TIMEOUT + 24 * HOUR
    assert state.timer_ms() == last_recovery + 1
    assert not state.is_disposable(last_recovery)
    assert state.is_disposable(last_recovery + 1)


def test_purchased_cart_is_disposable(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, _ = apply(None, make_event("add_to_cart", 0), cfg, T0)
    state, _ = apply(state, make_event("purchase", MIN), cfg, T0)
    assert state.is_disposable(T0 + MIN)
