"""`CartEngine`: processing order, the lateness clock, end of input, disposal and restarts."""

from __future__ import annotations

from collections.abc import Callable

from app.cart.config import CartConfig
from app.cart.engine import CartEngine
from app.cart.machine import CartOutput
from app.cart.state import CartState
from app.cart.store import DictCartStore
from app.contract.events import CartEvent
from app.contract.timeutil import parse_ts
from tests.unit.cart.steps import MakeEvent
from tests.unit.cart.timeline import HOUR, MIN, SEC, T0

TIMEOUT = 30 * MIN
LATE = 10 * SEC


def feed(engine: CartEngine, events: list[CartEvent]) -> list[CartOutput]:
    outputs: list[CartOutput] = []
    for event in events:
        outputs.extend(engine.process(event))
    return outputs


def test_contract_example() -> None:
    """The contract's cart-abandoned example, field for field (detected 10.4 s after the
    deadline, when another user's event moves the clock past it)."""
    engine = CartEngine()
    add = CartEvent(
        event_id="e-1",
        user_id="u-8",
        session_id="s-3",
        type="add_to_cart",
        product_id="sku-12",
        quantity=2,
        price=19.99,
        currency="EUR",
        ts=parse_ts("2026-11-22T10:01:00Z"),
    )
    assert engine.process(add) == []
    later = CartEvent(
        event_id="e-2", user_id="u-9", type="view", ts=parse_ts("2026-11-22T10:31:10.400Z")
    )
    outputs = engine.process(later)
    assert [o.kind for o in outputs] == ["cart_abandoned"]
    value = dict(outputs[0].value)
    value.pop("event_id")
    assert outputs[0].key == "u-8"
    assert value == {
        "user_id": "u-8",
        "session_id": "s-3",
        "items": [{"product_id": "sku-12", "quantity": 2, "price": 19.99}],
        "cart_value": 39.98,
        "currency": "EUR",
        "last_activity_ts": "2026-11-22T10:01:00.000Z",
        "abandoned_at": "2026-11-22T10:31:00.000Z",
        "detected_ts": "2026-11-22T10:31:10.400Z",
    }


def test_deadline_fires_only_once_an_event_is_lateness_past_it(make_event: MakeEvent) -> None:
    engine = CartEngine()
    assert feed(engine, [make_event("add_to_cart", 0)]) == []
    # other users' events advance the clock; it stands at their highest ts minus 10 s
    assert feed(engine, [make_event("view", TIMEOUT + LATE - 1, user_id="u-2")]) == []
    assert engine.clock.now() == T0 + TIMEOUT - 1
    outputs = feed(engine, [make_event("view", TIMEOUT + LATE, user_id="u-3")])
    assert [(o.kind, o.key) for o in outputs] == [("cart_abandoned", "u-1")]


def test_event_within_lateness_prevents_the_abandonment(make_event: MakeEvent) -> None:
    engine = CartEngine()
    outputs = feed(
        engine,
        [
            make_event("add_to_cart", 0),
            make_event("view", TIMEOUT + 5 * SEC, user_id="u-2"),
            make_event("purchase", TIMEOUT - SEC),  # 6 s late, before the deadline
        ],
    )
    assert outputs == []
    assert engine.finish() == []


def test_users_own_event_at_its_deadline_abandons_before_the_clock_does(
    make_event: MakeEvent,
) -> None:
    engine = CartEngine()
    outputs = feed(engine, [make_event("add_to_cart", 0), make_event("view", TIMEOUT)])
    assert [o.kind for o in outputs] == ["cart_abandoned"]


def test_finish_fires_what_is_due_at_the_highest_ts_seen(make_event: MakeEvent) -> None:
    engine = CartEngine()
    feed(engine, [make_event("add_to_cart", 0), make_event("view", TIMEOUT - 1, user_id="u-2")])
    assert engine.finish() == []

    engine = CartEngine()
    feed(engine, [make_event("add_to_cart", 0), make_event("view", TIMEOUT, user_id="u-2")])
    outputs = engine.finish()
    assert [(o.kind, o.key) for o in outputs] == [("cart_abandoned", "u-1")]
    assert outputs[0].value["detected_ts"] == outputs[0].value["abandoned_at"]
    assert engine.finish() == []  # once


def test_due_timers_fire_in_deadline_then_user_order(make_event: MakeEvent) -> None:
    engine = CartEngine()
    feed(
        engine,
        [
            make_event("add_to_cart", MIN, user_id="b"),
            make_event("add_to_cart", MIN, user_id="a"),
            make_event("add_to_cart", 0, user_id="c"),
        ],
    )
    outputs = feed(engine, [make_event("view", HOUR, user_id="z")])
    assert [o.key for o in outputs] == ["c", "a", "b"]


def test_timers_fire_before_the_event_is_applied(make_event: MakeEvent) -> None:
    engine = CartEngine()
    feed(engine, [make_event("add_to_cart", 0)])
    # the user's own purchase far later: the timer fires first (clock past the deadline),
    # then the purchase recovers it
    outputs = feed(engine, [make_event("purchase", HOUR)])
    assert [o.kind for o in outputs] == ["cart_abandoned", "cart_recovered"]


def test_late_event_whose_deadline_already_passed_fires_at_once(make_event: MakeEvent) -> None:
    engine = CartEngine()
    feed(engine, [make_event("view", 2 * HOUR, user_id="u-2")])
    outputs = feed(engine, [make_event("add_to_cart", 0)])  # 2 h late
    assert [(o.kind, o.key) for o in outputs] == [("cart_abandoned", "u-1")]
    assert engine.timers.get("u-1") is None  # nothing pending at or before the clock


def test_disposable_states_are_deleted(make_event: MakeEvent) -> None:
    store = DictCartStore()
    engine = CartEngine(store=store)
    feed(engine, [make_event("view", 0, user_id="viewer")])
    assert store.get("viewer") is not None  # its ts is still ahead of the clock
    feed(engine, [make_event("add_to_cart", 0), make_event("purchase", MIN)])
    feed(engine, [make_event("view", MIN + LATE, user_id="u-2")])
    assert store.get("viewer") is None and store.get("u-1") is None
    assert store.get("u-2") is not None
    # an abandoned, then emptied cart is kept until it can no longer be recovered
    feed(engine, [make_event("add_to_cart", HOUR, user_id="u-3")])
    feed(engine, [make_event("remove_from_cart", 2 * HOUR, user_id="u-3")])
    assert store.get("u-3") is not None
    feed(engine, [make_event("view", HOUR + TIMEOUT + 24 * HOUR + LATE, user_id="u-4")])
    assert store.get("u-3") is not None  # clock == last moment a purchase could recover
    feed(engine, [make_event("view", HOUR + TIMEOUT + 24 * HOUR + LATE + 1, user_id="u-4")])
    assert store.get("u-3") is None
    assert [u for u, _ in store.items()] == ["u-4"]
    assert engine.pending_timers == 1


def test_late_event_for_a_deleted_user_is_not_stored(make_event: MakeEvent) -> None:
    store = DictCartStore()
    engine = CartEngine(store=store)
    feed(engine, [make_event("view", HOUR, user_id="u-2"), make_event("view", 0)])
    assert store.get("u-1") is None and engine.timers.get("u-1") is None


def _history(make_event: MakeEvent) -> list[CartEvent]:
    return [
        make_event("add_to_cart", 0, quantity=2),
        make_event("add_to_cart", MIN, user_id="u-2", price=3.5),
        make_event("view", 10 * MIN, user_id="u-3"),
        make_event("view", 40 * MIN, user_id="u-3"),
        make_event("add_to_cart", 2 * HOUR),
        make_event("purchase", 3 * HOUR),
        make_event("view", 3 * HOUR + 5 * MIN, user_id="u-2"),
        make_event("view", 5 * HOUR, user_id="u-3"),
    ]


def test_event_ids_are_deterministic(make_event: MakeEvent) -> None:
    events = _history(make_event)
    first = CartEngine()
    second = CartEngine()
    a = feed(first, events) + first.finish()
    b = feed(second, events) + second.finish()
    assert a == b
    assert [(o.kind, o.key) for o in a] == [
        ("cart_abandoned", "u-1"),
        ("cart_abandoned", "u-2"),
        ("cart_abandoned", "u-1"),  # its second episode, abandoned just before the purchase
        ("cart_recovered", "u-1"),
        ("cart_abandoned", "u-2"),  # the view at 3 h 05 opened a second episode
    ]
    ids = [o.value["event_id"] for o in a]
    assert len(set(ids)) == len(ids)


def test_timers_survive_a_restart_from_stored_bytes(make_event: MakeEvent) -> None:
    events = _history(make_event)
    whole = CartEngine()
    expected = feed(whole, events) + whole.finish()

    for cut in range(len(events) + 1):
        before = CartEngine()
        outputs = feed(before, events[:cut])
        assert isinstance(before.store, DictCartStore)
        stored = [(user, state.to_bytes()) for user, state in before.store.items()]
        # a new worker: states come back from the table, timers are rebuilt from them
        after = CartEngine()
        restored = [(user, CartState.from_bytes(data)) for user, data in stored]
        for user, state in restored:
            after.store.set(user, state)
        after.restore(restored)
        if cut:
            after.clock.observe(before.clock.highest_ms or 0)
        outputs += feed(after, events[cut:]) + after.finish()
        assert outputs == expected, cut


def test_wall_clock_fires_quiet_streams_and_stamps_detection(
    make_event: MakeEvent, iso: Callable[[int], str]
) -> None:
    wall = [T0]
    engine = CartEngine(CartConfig(), wall_clock=lambda: wall[0])
    feed(engine, [make_event("add_to_cart", 0)])
    wall[0] = T0 + TIMEOUT + LATE - 1
    assert engine.tick() == []
    wall[0] = T0 + TIMEOUT + LATE + 250
    outputs = engine.tick()
    assert [o.kind for o in outputs] == ["cart_abandoned"]
    assert outputs[0].value["detected_ts"] == iso(TIMEOUT + LATE + 250)


def test_deadline_counts_from_a_view_seen_just_before_a_late_add(make_event: MakeEvent) -> None:
    # the view leaves an empty cart whose ts is ahead of the clock: it is kept, so the late add
    # (within the lateness) gets the deadline of the latest ts seen, not its own
    engine = CartEngine()
    feed(engine, [make_event("view", 10 * SEC), make_event("add_to_cart", 5 * SEC)])
    assert engine.timers.get("u-1") == T0 + 10 * SEC + TIMEOUT
