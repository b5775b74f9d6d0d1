"""Factories for the cart tests: typed `CartEvent`s with sensible defaults, and the default config.

Times in tests are written as offsets from T0 (2026-11-22T10:00:00Z, see `timeline`) so a test
reads as a timeline: `make_event("add_to_cart", 1 * MIN)`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from app.cart.config import CartConfig
from app.contract.events import CartEvent
from app.contract.timeutil import format_ts
from tests.unit.cart.steps import MakeEvent
from tests.unit.cart.timeline import T0


@pytest.fixture
def cfg() -> CartConfig:
    """The contract's defaults: 30 min timeout, 10 s lateness, 24 h recovery."""
    return CartConfig()


@pytest.fixture
def make_event() -> MakeEvent:
    """`make_event(type, ts_offset_ms, **fields)`: a valid event of user u-1 at T0 + offset.

    `add_to_cart` and `remove_from_cart` default to product sku-1; `add_to_cart` to price 10.0
    in EUR. Each event gets a fresh event_id unless one is given.
    """
    counter = itertools.count(1)

    def make(type: str, ts: int, **fields: Any) -> CartEvent:
        values: dict[str, Any] = {
            "event_id": f"e-{next(counter)}",
            "user_id": "u-1",
            "session_id": "s-1",
        }
        if type in ("add_to_cart", "remove_from_cart"):
            values["product_id"] = "sku-1"
        if type == "add_to_cart":
            values["price"] = 10.0
            values["currency"] = "EUR"
        values.update(fields)
        return CartEvent(type=type, ts=T0 + ts, **values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def iso() -> Callable[[int], str]:
    """The RFC 3339 text outputs use for the instant T0 + offset."""
    return lambda offset: format_ts(T0 + offset)
