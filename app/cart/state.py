"""What Vigil remembers about one user's cart between events, and how it is stored.

One `CartState` per `user_id` is the whole memory of the cart-abandonment detector: the live
worker keeps it in a RocksDB-backed table (so it survives restarts and moves with its partition),
replay keeps it in a dict. It is immutable: `app.cart.machine` returns a new state for every
change, so a caller can never half-apply an event.

The stored form is a compact, versioned orjson array rather than a dict: the table holds one per
open cart, and field names would be most of the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from app.exceptions import VigilError

STATE_VERSION = 1


class CartStateError(VigilError):
    """Stored cart state bytes cannot be read (corrupt, or written by an unknown version)."""


@dataclass(frozen=True, slots=True)
class Item:
    """One product line of a cart: how many, at the price of its latest `add_to_cart`."""

    quantity: int
    price: float


@dataclass(frozen=True, slots=True)
class Abandonment:
    """The latest abandoned episode, kept so a later purchase can be reported as its recovery.

    `recover_until_ms` (abandoned_at + the recovery window in force when it was abandoned) is
    stored rather than recomputed so that the purchase check and the state's disposal agree on
    one horizon even if the setting changes across a restart.
    """

    episode_key: str
    items: tuple[tuple[str, Item], ...]
    cart_value: float
    currency: str | None
    last_activity_ms: int
    abandoned_at_ms: int
    recover_until_ms: int


@dataclass(frozen=True, slots=True)
class CartState:
    """One user's cart.

    Invariants kept by `app.cart.machine`:
    - `deadline_ms` is set exactly while the cart is non-empty and its current episode has not
      been abandoned, and then equals `last_activity_ms` + the timeout;
    - a non-empty cart without a deadline is an abandoned episode waiting for new activity;
    - `items` keeps insertion order (the order products were first added), which is the order
      outputs list them in; it is never mutated after construction.
    """

    last_activity_ms: int
    items: Mapping[str, Item] = field(default_factory=dict)
    currency: str | None = None
    session_id: str | None = None
    episode: int = 0
    episode_key: str | None = None
    deadline_ms: int | None = None
    abandoned: Abandonment | None = None

    @property
    def value(self) -> float:
        """The cart's value now: the sum of quantity x price."""
        return cart_value(self.items)

    def expires_ms(self) -> int | None:
        """The clock time from which this state is no longer needed, or None while it is.

        A non-empty cart is always needed (the contract gives carts no expiry). An empty one is
        needed until (a) its latest activity is behind the clock, since an event up to the
        allowed lateness could still arrive earlier and the deadline must use the latest `ts`;
        and (b) its latest abandonment can no longer be recovered by an event within lateness.
        """
        if self.items or self.deadline_ms is not None:
            return None
        expires = self.last_activity_ms
        if self.abandoned is not None:
            expires = max(expires, self.abandoned.recover_until_ms + 1)
        return expires

    def timer_ms(self) -> int | None:
        """When the engine must look at this user again without an event: deadline or expiry."""
        return self.deadline_ms if self.deadline_ms is not None else self.expires_ms()

    def is_disposable(self, clock_ms: int) -> bool:
        """True when the table may delete this key: nothing in it can affect a future output.

        That is: an empty cart, no pending deadline, no abandonment that could still be recovered
        and no activity ahead of the clock. Deleting such states keeps the tables as large as the
        set of open carts, not the set of users ever seen.
        """
        expires = self.expires_ms()
        return expires is not None and clock_ms >= expires

    def to_bytes(self) -> bytes:
        """Serialise to the compact, versioned stored form."""
        snap = self.abandoned
        return orjson.dumps(
            [
                STATE_VERSION,
                _items_out(self.items.items()),
                self.currency,
                self.session_id,
                self.episode,
                self.episode_key,
                self.last_activity_ms,
                self.deadline_ms,
                None
                if snap is None
                else [
                    snap.episode_key,
                    _items_out(snap.items),
                    snap.cart_value,
                    snap.currency,
                    snap.last_activity_ms,
                    snap.abandoned_at_ms,
                    snap.recover_until_ms,
                ],
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CartState:
        """Read the stored form; raise `CartStateError` on anything else."""
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CartStateError(f"cart state is not JSON: {exc}") from None
        if not isinstance(raw, list) or not raw or raw[0] != STATE_VERSION:
            version = raw[0] if isinstance(raw, list) and raw else None
            raise CartStateError(f"cart state version {version!r} is not {STATE_VERSION}")
        try:
            _, items, currency, session, episode, key, last, deadline, snap = raw
            return cls(
                items=dict(_items_in(items)),
                currency=_opt_str(currency),
                session_id=_opt_str(session),
                episode=_int(episode),
                episode_key=_opt_str(key),
                last_activity_ms=_int(last),
                deadline_ms=None if deadline is None else _int(deadline),
                abandoned=None if snap is None else _abandonment_in(snap),
            )
        except (TypeError, ValueError) as exc:
            raise CartStateError(f"cart state is malformed: {exc}") from None


def cart_value(items: Mapping[str, Item]) -> float:
    """Sum quantity x price exactly in decimal, then round once to the nearest float.

    Each price is taken at its shortest decimal form (what the producer wrote: 19.99, not
    19.989999999999998...), so 3 x 0.10 reports 0.3, not 0.30000000000000004. No rounding to
    cents: prices may carry more decimals than two (3-decimal currencies, unit prices).
    """
    total = sum((Decimal(repr(item.price)) * item.quantity for item in items.values()), Decimal(0))
    return float(total)


def _items_out(items: Any) -> list[list[Any]]:
    return [[product, item.quantity, item.price] for product, item in items]


def _items_in(raw: Any) -> list[tuple[str, Item]]:
    if not isinstance(raw, list):
        raise TypeError("items must be a list")
    out: list[tuple[str, Item]] = []
    for entry in raw:
        product, quantity, price = entry
        out.append((_str(product), Item(quantity=_int(quantity), price=_float(price))))
    return out


def _abandonment_in(raw: Any) -> Abandonment:
    key, items, value, currency, last, at, until = raw
    return Abandonment(
        episode_key=_str(key),
        items=tuple(_items_in(items)),
        cart_value=_float(value),
        currency=_opt_str(currency),
        last_activity_ms=_int(last),
        abandoned_at_ms=_int(at),
        recover_until_ms=_int(until),
    )


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)
