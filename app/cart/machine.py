"""The cart-abandonment rules of the contract, as two pure functions over one user's state.

`apply` feeds one cart event to a user's state; `fire` is what happens when the clock reaches the
user's deadline with no event. Both return the new state and the outputs to write, and do no I/O,
read no clock and keep nothing between calls: the live agent and `vigil replay` call the same
code, which is what makes a replay give the events the live service gives. The order in which
they are called (which timers fire before which event) is `app.cart.engine`'s job.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from app.cart.config import CartConfig
from app.cart.state import Abandonment, CartState, Item, cart_value
from app.contract.events import MAX_QUANTITY, CartEvent
from app.contract.jsontext import show
from app.contract.timeutil import format_ts
from app.exceptions import DecodeError

CartOutputKind = Literal["cart_abandoned", "cart_recovered"]


@dataclass(frozen=True, slots=True)
class CartOutput:
    """One record to write: `kind` picks the topic, `key` is the user_id, `value` the JSON body."""

    kind: CartOutputKind
    key: str
    value: dict[str, Any]


class CartLimitError(DecodeError):
    """An `add_to_cart` would take a cart line past `MAX_QUANTITY`, or the cart's value past the
    largest float: the event is dead-lettered."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "value")


def check(state: CartState | None, event: CartEvent) -> None:
    """Raise `CartLimitError` when `apply` would take the event's cart line past the bound, or
    the cart's value to infinity.

    Called before anything changes (timers, clock, state), so a rejected event leaves no trace.
    Firing a deadline never changes a cart's items, so the state before firing is the one
    `apply` will see.
    """
    if event.type != "add_to_cart" or event.product_id is None:
        return
    items = state.items if state is not None else {}
    old = items.get(event.product_id)
    if old is not None and old.quantity + event.quantity > MAX_QUANTITY:
        raise CartLimitError(
            f"quantity: adding {event.quantity} to the {old.quantity} of product_id "
            f"{show(event.product_id)} in the cart would exceed {MAX_QUANTITY}"
        )
    # A cart's value is a number in every output: prices near the float limit times a large
    # quantity would make it infinite (written as null). Such an add is refused like the above.
    price = event.price if event.price is not None else 0.0
    quantity = event.quantity + (old.quantity if old is not None else 0)
    total = price * quantity + sum(
        i.price * i.quantity for pid, i in items.items() if pid != event.product_id
    )
    if not math.isfinite(total):
        raise CartLimitError(
            f"price: adding {event.quantity} of product_id {show(event.product_id)} at "
            f"{price:g} would make the cart's value overflow"
        )


def apply(
    state: CartState | None, event: CartEvent, cfg: CartConfig, detected_ms: int
) -> tuple[CartState, list[CartOutput]]:
    """Apply one event of `event.user_id` to its state (None: never seen, or disposed).

    An event at or past the pending deadline first abandons the episode, as if the timer had
    fired just before it: the user was quiet for the whole timeout whatever this event is.
    """
    user = event.user_id
    st = state if state is not None else CartState(last_activity_ms=event.ts)
    outputs: list[CartOutput] = []
    if st.deadline_ms is not None and event.ts >= st.deadline_ms:
        st, abandoned = _abandon(user, st, cfg, detected_ms)
        outputs.append(abandoned)

    # Only an event newer than the latest ts seen counts as activity *after* an abandonment: a
    # late one happened (in event time) before the abandonment it arrives after, so it changes
    # the cart but does not reopen it.
    advances = event.ts > st.last_activity_ms
    was_empty = not st.items
    items = dict(st.items)
    currency = st.currency
    abandoned_snap = st.abandoned

    if event.type == "add_to_cart" and event.product_id is not None:
        old = items.get(event.product_id)
        quantity = event.quantity + (old.quantity if old is not None else 0)
        price = event.price if event.price is not None else (old.price if old else 0.0)
        items[event.product_id] = Item(quantity=quantity, price=price)
        currency = event.currency if event.currency is not None else currency
    elif event.type == "remove_from_cart" and event.product_id in items:
        old = items[event.product_id]
        if old.quantity > event.quantity:
            items[event.product_id] = Item(quantity=old.quantity - event.quantity, price=old.price)
        else:
            del items[event.product_id]
    elif event.type == "purchase":
        snap = st.abandoned
        if snap is not None and event.ts <= snap.recover_until_ms:
            outputs.append(_recovered(user, st, snap, event, detected_ms))
            abandoned_snap = None  # consumed: one recovery per abandonment
        items = {}

    last = max(st.last_activity_ms, event.ts)
    episode, episode_key, deadline = st.episode, st.episode_key, st.deadline_ms
    if not items:
        deadline = None  # an empty cart has no episode to abandon (purchase ends it)
    elif was_empty or (st.deadline_ms is None and advances):
        # First add on an empty cart, or activity on a cart left non-empty after abandonment.
        episode += 1
        episode_key = _episode_key(user, episode, event)
        deadline = last + cfg.timeout_ms
    elif st.deadline_ms is not None:
        deadline = last + cfg.timeout_ms  # never earlier: `last` is the max ts seen
    # else: a late event on an abandoned cart; it stays abandoned with no deadline.

    new = CartState(
        items=items,
        currency=currency,
        session_id=event.session_id if event.session_id is not None else st.session_id,
        episode=episode,
        episode_key=episode_key,
        last_activity_ms=last,
        deadline_ms=deadline,
        abandoned=abandoned_snap,
    )
    return new, outputs


def fire(
    user_id: str, state: CartState, clock_ms: int, cfg: CartConfig, detected_ms: int
) -> tuple[CartState, list[CartOutput]]:
    """The clock stands at `clock_ms` and no event came: abandon the episode if it is due.

    A state whose deadline is later, or that has none (the timer was an expiry check or is
    stale), comes back unchanged with no output, so calling it spuriously is harmless.
    """
    if state.deadline_ms is None or state.deadline_ms > clock_ms:
        return state, []
    new, output = _abandon(user_id, state, cfg, detected_ms)
    return new, [output]


def event_id(episode_key: str, kind: CartOutputKind) -> str:
    """The output's id: the same episode and kind always give the same id, in replay and live."""
    return hashlib.sha256(f"{kind}\x1f{episode_key}".encode()).hexdigest()[:32]


def _episode_key(user_id: str, episode: int, start: CartEvent) -> str:
    """Name an episode by its user, number and the event that started it.

    The number alone would repeat once a disposed state is recreated (its counter restarts), so
    the starting event's ts and event_id go in too: two episodes share a key only if the same
    event started both, i.e. the input repeated itself.
    """
    raw = f"{user_id}\x1f{episode}\x1f{start.ts}\x1f{start.event_id}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _abandon(
    user_id: str, st: CartState, cfg: CartConfig, detected_ms: int
) -> tuple[CartState, CartOutput]:
    """Abandon the current episode: emit it, remember it for recovery, drop the deadline.

    The cart keeps its items: the user may come back to it (a new episode) or buy it.
    """
    assert st.deadline_ms is not None and st.episode_key is not None  # only pending episodes
    abandoned_at = st.last_activity_ms + cfg.timeout_ms
    snap = Abandonment(
        episode_key=st.episode_key,
        items=tuple(st.items.items()),
        cart_value=cart_value(st.items),
        currency=st.currency,
        last_activity_ms=st.last_activity_ms,
        abandoned_at_ms=abandoned_at,
        recover_until_ms=abandoned_at + cfg.recovery_window_ms,
    )
    value = _body(user_id, st.session_id, snap, "cart_abandoned", detected_ms)
    new = replace(st, deadline_ms=None, abandoned=snap)
    return new, CartOutput(kind="cart_abandoned", key=user_id, value=value)


def _recovered(
    user_id: str, st: CartState, snap: Abandonment, purchase: CartEvent, detected_ms: int
) -> CartOutput:
    """The recovery of `snap` by `purchase`: the abandoned cart as it was, plus the order."""
    session = purchase.session_id if purchase.session_id is not None else st.session_id
    value = _body(user_id, session, snap, "cart_recovered", detected_ms)
    value["recovered_ts"] = format_ts(purchase.ts)
    value["order_value"] = cart_value(st.items)
    return CartOutput(kind="cart_recovered", key=user_id, value=value)


def _body(
    user_id: str,
    session_id: str | None,
    snap: Abandonment,
    kind: CartOutputKind,
    detected_ms: int,
) -> dict[str, Any]:
    return {
        "event_id": event_id(snap.episode_key, kind),
        "user_id": user_id,
        "session_id": session_id,
        "items": [
            {"product_id": product, "quantity": item.quantity, "price": item.price}
            for product, item in snap.items
        ],
        "cart_value": snap.cart_value,
        "currency": snap.currency,
        "last_activity_ts": format_ts(snap.last_activity_ms),
        "abandoned_at": format_ts(snap.abandoned_at_ms),
        "detected_ts": format_ts(detected_ms),
    }
