"""Typed input events, as the contract defines them.

Frozen, slotted dataclasses: decoded once at the edge, then passed by reference through the
detectors. Times are epoch milliseconds (see `app.contract.timeutil`), amounts are floats (the
detectors
do statistics on them; outputs round-trip them as JSON numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CartEventType = Literal["view", "add_to_cart", "remove_from_cart", "begin_checkout", "purchase"]
CART_EVENT_TYPES: frozenset[str] = frozenset(
    ("view", "add_to_cart", "remove_from_cart", "begin_checkout", "purchase")
)
FeedbackLabel = Literal["fraud", "legit"]
#: A cart event's `quantity`, and a cart line's total, are at most this (contract "Cart event").
MAX_QUANTITY = 1_000_000


@dataclass(frozen=True, slots=True)
class Transaction:
    """A card transaction (topic `transactions`, key `card_id`)."""

    txn_id: str
    card_id: str
    amount: float
    currency: str
    merchant_id: str
    ts: int
    terminal_id: str | None = None
    mcc: str | None = None
    country: str | None = None
    lat: float | None = None
    lon: float | None = None
    device_id: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Feedback:
    """A confirmed label for an earlier transaction (topic `fraud-feedback`, key `txn_id`)."""

    txn_id: str
    label: FeedbackLabel
    ts: int
    card_id: str | None = None
    merchant_id: str | None = None
    terminal_id: str | None = None

    @property
    def place(self) -> str | None:
        """The key the `compromised_terminal` rule counts under: the terminal, else the merchant."""
        return place_key(self.terminal_id, self.merchant_id)


@dataclass(frozen=True, slots=True)
class CartEvent:
    """A clickstream or cart event (topic `cart-events`, key `user_id`)."""

    event_id: str
    user_id: str
    type: CartEventType
    ts: int
    product_id: str | None = None
    price: float | None = None
    currency: str | None = None
    quantity: int = 1
    session_id: str | None = None


def place_key(terminal_id: str | None, merchant_id: str | None) -> str | None:
    """Name a point of sale: `t:<terminal>` where a terminal is known, else `m:<merchant>`.

    The prefixes keep a terminal and a merchant that happen to share an id apart.
    """
    if terminal_id:
        return "t:" + terminal_id
    if merchant_id:
        return "m:" + merchant_id
    return None
