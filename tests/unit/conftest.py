"""Factory fixtures shared by the unit tests: valid records that a test then breaks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

_MISSING = object()


def _factory(base: dict[str, Any]) -> Callable[..., bytes]:
    def make(**overrides: Any) -> bytes:
        record = dict(base)
        for field, value in overrides.items():
            if value is _MISSING:
                record.pop(field, None)
            else:
                record[field] = value
        return orjson.dumps(record)

    return make


@pytest.fixture
def missing() -> object:
    """Pass as a field's value to a factory to leave the field out."""
    return _MISSING


@pytest.fixture
def txn_bytes() -> Callable[..., bytes]:
    return _factory(
        {
            "txn_id": "t-9f2",
            "card_id": "tok_4c1a",
            "amount": "42.50",
            "currency": "EUR",
            "merchant_id": "m-77",
            "terminal_id": "pos-3",
            "country": "FR",
            "lat": 48.857,
            "lon": 2.352,
            "ts": "2026-11-22T10:00:00.250Z",
        }
    )


@pytest.fixture
def feedback_bytes() -> Callable[..., bytes]:
    return _factory(
        {"txn_id": "t-9f2", "label": "fraud", "terminal_id": "pos-3", "ts": 1795860000000}
    )


@pytest.fixture
def cart_bytes() -> Callable[..., bytes]:
    return _factory(
        {
            "event_id": "e-1",
            "user_id": "u-8",
            "session_id": "s-3",
            "type": "add_to_cart",
            "product_id": "sku-12",
            "quantity": 2,
            "price": 19.99,
            "currency": "EUR",
            "ts": "2026-11-22T10:01:00Z",
        }
    )
