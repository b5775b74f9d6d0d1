"""An `add_to_cart` that would make a cart's value infinite is refused like a line past the
quantity bound: dead-lettered, the cart unchanged (the contract's outputs carry a number)."""

from __future__ import annotations

import orjson
import pytest

from app.cart.engine import CartEngine
from app.cart.machine import CartLimitError
from app.contract.decode import decode_cart_event

TS = "2026-11-22T10:00:00Z"


def _add(product: str, price: float, quantity: int, ts: str = TS):
    value = {
        "event_id": f"e-{product}-{quantity}",
        "user_id": "u-1",
        "type": "add_to_cart",
        "product_id": product,
        "price": price,
        "currency": "EUR",
        "quantity": quantity,
        "ts": ts,
    }
    return decode_cart_event(orjson.dumps(value))


def test_a_line_whose_value_overflows_is_refused_on_a_new_cart():
    engine = CartEngine()
    with pytest.raises(CartLimitError) as info:
        engine.process(_add("p", 1e308, 10))
    assert info.value.kind == "value"
    assert info.value.message.startswith("price: ") and "overflow" in info.value.message
    assert engine.store.get("u-1") is None


def test_a_second_line_that_overflows_the_total_is_refused_and_changes_nothing():
    engine = CartEngine()
    engine.process(_add("p", 1e308, 1))
    before = engine.store.get("u-1")
    with pytest.raises(CartLimitError):
        engine.process(_add("q", 1e308, 1_000_000))
    assert engine.store.get("u-1") == before
    engine.process(_add("r", 1e300, 2))  # still finite: accepted
    assert set(engine.store.get("u-1").items) == {"p", "r"}
