"""Random event streams through `CartEngine` against a brute-force reading of the contract.

The reference below keeps every user forever, scans every cart for due deadlines on every
event and sums values as fractions: slow and obvious. With events at most `lateness` late the
engine (heap timers, disposed states, decimal sums) must produce exactly its outputs, ids aside.
With arbitrary disorder, no abandonment may be lost or doubled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.cart.config import CartConfig
from app.cart.engine import CartEngine
from app.cart.machine import CartOutput
from app.cart.store import DictCartStore
from app.contract.events import CartEvent
from app.contract.timeutil import format_ts

CFG = CartConfig(timeout_ms=100, lateness_ms=10, recovery_window_ms=300)
BASE = 1_000_000
USERS = ("a", "b", "c")
PRODUCTS = ("p1", "p2")
PRICES = (0.1, 19.99, 5.0, 3.33)

Row = tuple[str, str, dict[str, Any]]


@dataclass
class RefCart:
    last: int
    items: dict[str, list[Any]] = field(default_factory=dict)  # product -> [quantity, price]
    currency: str | None = None
    session: str | None = None
    deadline: int | None = None
    abandoned: dict[str, Any] | None = None


class Reference:
    """The contract paragraph, read literally, with a scan for timers."""

    def __init__(self, cfg: CartConfig) -> None:
        self.cfg = cfg
        self.carts: dict[str, RefCart] = {}
        self.highest: int | None = None
        self.out: list[Row] = []

    def process(self, e: CartEvent) -> None:
        self.highest = e.ts if self.highest is None else max(self.highest, e.ts)
        clock = self.highest - self.cfg.lateness_ms
        self._fire_all(clock)
        cart = self.carts.setdefault(e.user_id, RefCart(last=e.ts))
        if cart.deadline is not None and e.ts >= cart.deadline:
            self._abandon(e.user_id)
        reopened = bool(cart.items) and cart.deadline is None and e.ts > cart.last
        was_empty = not cart.items
        cart.last = max(cart.last, e.ts)
        if e.session_id is not None:
            cart.session = e.session_id
        if e.type == "add_to_cart":
            assert e.product_id is not None
            line = cart.items.setdefault(e.product_id, [0, e.price])
            line[0] += e.quantity
            line[1] = e.price
            cart.currency = e.currency
        elif e.type == "remove_from_cart" and e.product_id in cart.items:
            cart.items[e.product_id][0] -= e.quantity
            if cart.items[e.product_id][0] <= 0:
                del cart.items[e.product_id]
        elif e.type == "purchase":
            snap = cart.abandoned
            if snap is not None and e.ts - snap["at"] <= self.cfg.recovery_window_ms:
                body = self._body(e.user_id, cart.session, snap)
                body["recovered_ts"] = format_ts(e.ts)
                body["order_value"] = _value(cart.items)
                self.out.append(("cart_recovered", e.user_id, body))
                cart.abandoned = None
            cart.items = {}
        if not cart.items:
            cart.deadline = None
        elif was_empty or reopened or cart.deadline is not None:
            cart.deadline = cart.last + self.cfg.timeout_ms
        self._fire_all(clock)

    def finish(self) -> None:
        if self.highest is not None:
            self._fire_all(self.highest)

    def _fire_all(self, clock: int) -> None:
        while True:
            due = [
                (c.deadline, user)
                for user, c in self.carts.items()
                if c.deadline is not None and c.deadline <= clock
            ]
            if not due:
                return
            self._abandon(min(due)[1])

    def _abandon(self, user: str) -> None:
        cart = self.carts[user]
        snap = {
            "items": [
                {"product_id": p, "quantity": q, "price": pr} for p, (q, pr) in cart.items.items()
            ],
            "value": _value(cart.items),
            "currency": cart.currency,
            "last": cart.last,
            "at": cart.last + self.cfg.timeout_ms,
        }
        cart.abandoned = snap
        cart.deadline = None
        self.out.append(("cart_abandoned", user, self._body(user, cart.session, snap)))

    def _body(self, user: str, session: str | None, snap: dict[str, Any]) -> dict[str, Any]:
        assert self.highest is not None
        return {
            "user_id": user,
            "session_id": session,
            "items": snap["items"],
            "cart_value": snap["value"],
            "currency": snap["currency"],
            "last_activity_ts": format_ts(snap["last"]),
            "abandoned_at": format_ts(snap["at"]),
            "detected_ts": format_ts(self.highest),
        }


def _value(items: dict[str, list[Any]]) -> float:
    return float(sum((Fraction(repr(price)) * q for q, price in items.values()), Fraction(0)))


KINDS = ("add_to_cart",) * 4 + ("remove_from_cart",) * 2 + ("view", "begin_checkout", "purchase")
# Gaps that land exactly on the boundaries: at the deadline, at deadline + lateness, one ms short
# of the deadline, at the end of the recovery window.
EDGES = (
    0,
    CFG.timeout_ms,
    CFG.timeout_ms + CFG.lateness_ms,
    CFG.timeout_ms - 1,
    CFG.recovery_window_ms,
)


def streams(max_late: int | None) -> st.SearchStrategy[list[CartEvent]]:
    """Events of a few users; each at most `max_late` ms older than the newest so far."""
    low = -max_late if max_late is not None else -5 * CFG.timeout_ms
    step = st.tuples(
        st.sampled_from(KINDS),
        st.one_of(st.integers(low, 2 * CFG.timeout_ms), st.sampled_from(EDGES)),
        st.sampled_from(USERS),
        st.sampled_from(PRODUCTS),
        st.sampled_from(PRICES),
        st.integers(1, 3),
        st.sampled_from(("s1", "s2")),
        st.booleans(),
    )
    return st.lists(step, max_size=50).map(lambda steps: _events(steps, low))


def _events(steps: list[tuple[Any, ...]], low: int) -> list[CartEvent]:
    highest = BASE
    events: list[CartEvent] = []
    for i, (kind, delta, user, product, price, quantity, session, usd) in enumerate(steps):
        ts = highest + max(delta, low)
        highest = max(highest, ts)
        events.append(
            CartEvent(
                event_id=f"e{i}",
                user_id=user,
                type=kind,
                ts=ts,
                product_id=product if kind in ("add_to_cart", "remove_from_cart") else None,
                price=price if kind == "add_to_cart" else None,
                currency=("USD" if usd else "EUR") if kind == "add_to_cart" else None,
                quantity=quantity,
                session_id=session,
            )
        )
    return events


def _run_engine(events: list[CartEvent]) -> tuple[CartEngine, list[CartOutput]]:
    engine = CartEngine(CFG)
    outputs: list[CartOutput] = []
    for event in events:
        outputs.extend(engine.process(event))
        _check_timers_match_states(engine)
    outputs.extend(engine.finish())
    return engine, outputs


def _check_timers_match_states(engine: CartEngine) -> None:
    assert isinstance(engine.store, DictCartStore)
    states = dict(engine.store.items())
    assert len(engine.timers) == sum(1 for s in states.values() if s.timer_ms() is not None)
    clock = engine.clock.now()
    for user, state in states.items():
        assert engine.timers.get(user) == state.timer_ms()
        assert not state.is_disposable(clock)  # disposable states were deleted
        if state.deadline_ms is not None:
            assert state.deadline_ms > clock  # nothing due is left pending


def _rows(outputs: list[CartOutput]) -> list[Row]:
    rows: list[Row] = []
    for o in outputs:
        value = dict(o.value)
        value.pop("event_id")
        rows.append((o.kind, o.key, value))
    return rows


@settings(max_examples=200, deadline=None)
@given(streams(max_late=CFG.lateness_ms))
def test_engine_matches_reference_when_events_are_within_lateness(
    events: list[CartEvent],
) -> None:
    reference = Reference(CFG)
    for event in events:
        reference.process(event)
    reference.finish()
    _, outputs = _run_engine(events)
    assert _rows(outputs) == reference.out
    _check_ids(outputs)


@settings(max_examples=200, deadline=None)
@given(streams(max_late=None))
def test_no_abandonment_lost_or_doubled_under_any_disorder(events: list[CartEvent]) -> None:
    engine, outputs = _run_engine(events)
    _check_ids(outputs)
    # nothing left that the final clock (the highest ts seen) should have abandoned
    assert isinstance(engine.store, DictCartStore)
    highest = engine.clock.highest_ms
    for _, state in engine.store.items():
        assert state.deadline_ms is None or highest is None or state.deadline_ms > highest
    # the same input gives the same outputs, ids included
    assert _run_engine(events)[1] == outputs


def _check_ids(outputs: list[CartOutput]) -> None:
    """One abandonment per episode, at most one recovery per abandonment."""
    abandoned = [o.value["event_id"] for o in outputs if o.kind == "cart_abandoned"]
    recovered = [o for o in outputs if o.kind == "cart_recovered"]
    assert len(set(abandoned)) == len(abandoned)
    assert len({o.value["event_id"] for o in recovered}) == len(recovered)
    for r in recovered:
        # a recovery follows an abandonment of the same user with the same cart
        earlier = outputs[: outputs.index(r)]
        assert any(
            a.kind == "cart_abandoned"
            and a.key == r.key
            and a.value["abandoned_at"] == r.value["abandoned_at"]
            and a.value["items"] == r.value["items"]
            for a in earlier
        )
