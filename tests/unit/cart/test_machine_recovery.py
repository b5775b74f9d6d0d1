"""The contract's recovery sentence, and the choices made where the paragraph is silent."""

from __future__ import annotations

from collections.abc import Callable

from app.cart.config import CartConfig
from app.cart.machine import CartOutput, event_id, fire
from app.cart.state import CartState
from tests.unit.cart.steps import DETECTED, TIMEOUT, MakeEvent, kinds, run
from tests.unit.cart.timeline import HOUR, MIN, T0

# "A purchase within 24 h after the latest abandonment (purchase ts - abandoned_at <= 24 h)
# emits one cart-recovered (order_value: the cart's value when purchased)."


def _abandoned(make_event: MakeEvent, cfg: CartConfig) -> tuple[CartState, CartOutput]:
    state, _ = run([make_event("add_to_cart", 0, quantity=2, session_id="s-1")], cfg)
    state, outputs = fire("u-1", state, T0 + TIMEOUT, cfg, DETECTED)
    return state, outputs[0]


def test_purchase_exactly_24h_after_abandonment_recovers(
    make_event: MakeEvent, cfg: CartConfig, iso: Callable[[int], str]
) -> None:
    state, abandoned = _abandoned(make_event, cfg)
    assert state.abandoned is not None
    key = state.abandoned.episode_key
    assert abandoned.value["event_id"] == event_id(key, "cart_abandoned")
    state, outputs = run(
        [
            make_event("add_to_cart", 24 * HOUR + 10 * MIN, product_id="sku-2", price=5.0),
            make_event("purchase", TIMEOUT + 24 * HOUR, session_id="s-9"),
        ],
        cfg,
        state,
    )
    assert kinds(outputs) == ["cart_recovered"]
    value = outputs[0].value
    assert value["event_id"] == event_id(key, "cart_recovered")
    assert value["event_id"] != abandoned.value["event_id"]
    # the abandoned episode, as it was abandoned...
    for field in ("items", "cart_value", "currency", "last_activity_ts", "abandoned_at"):
        assert value[field] == abandoned.value[field]
    # ...and the order as purchased
    assert value["recovered_ts"] == iso(TIMEOUT + 24 * HOUR)
    assert value["order_value"] == 25.0
    assert value["session_id"] == "s-9"
    assert value["detected_ts"] == iso(99 * HOUR)
    assert not state.items and state.abandoned is None


def test_purchase_24h_and_1ms_after_abandonment_does_not_recover(
    make_event: MakeEvent, cfg: CartConfig
) -> None:
    state, _ = _abandoned(make_event, cfg)
    state, outputs = run([make_event("purchase", TIMEOUT + 24 * HOUR + 1)], cfg, state)
    assert outputs == []
    assert not state.items  # the purchase still empties the cart


def test_recovery_is_emitted_only_once(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, _ = _abandoned(make_event, cfg)
    state, outputs = run(
        [
            make_event("purchase", HOUR),
            make_event("add_to_cart", 2 * HOUR),
            make_event("purchase", 2 * HOUR + MIN),
        ],
        cfg,
        state,
    )
    assert kinds(outputs) == ["cart_recovered"]


def test_recovery_refers_to_the_latest_abandonment(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, first = _abandoned(make_event, cfg)
    state, _ = run([make_event("add_to_cart", HOUR, product_id="sku-2")], cfg, state)
    state, second = fire("u-1", state, T0 + HOUR + TIMEOUT, cfg, DETECTED)
    state, outputs = run([make_event("purchase", 3 * HOUR)], cfg, state)
    assert kinds(outputs) == ["cart_recovered"]
    assert outputs[0].value["abandoned_at"] == second[0].value["abandoned_at"]
    assert outputs[0].value["abandoned_at"] != first.value["abandoned_at"]
    assert len(outputs[0].value["items"]) == 2


def test_purchase_without_abandonment_emits_nothing(make_event: MakeEvent, cfg: CartConfig) -> None:
    _, outputs = run([make_event("add_to_cart", 0), make_event("purchase", MIN)], cfg)
    assert outputs == []


# Where the contract is silent


def test_session_is_the_last_one_seen_and_survives_events_without_one(
    make_event: MakeEvent, cfg: CartConfig
) -> None:
    state, _ = run(
        [make_event("add_to_cart", 0, session_id="s-1"), make_event("view", 1, session_id=None)],
        cfg,
    )
    assert state.session_id == "s-1"
    _, outputs = fire("u-1", state, T0 + 1 + TIMEOUT, cfg, DETECTED)
    assert outputs[0].value["session_id"] == "s-1"
    state, _ = run([make_event("add_to_cart", 0, session_id=None)], cfg)
    _, outputs = fire("u-1", state, T0 + TIMEOUT, cfg, DETECTED)
    assert outputs[0].value["session_id"] is None


def test_currency_is_that_of_the_latest_add(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, _ = run(
        [
            make_event("add_to_cart", 0, currency="EUR"),
            make_event("add_to_cart", 1, product_id="sku-2", currency="USD"),
        ],
        cfg,
    )
    assert state.currency == "USD"


def test_late_purchase_older_than_the_abandonment_still_recovers(
    make_event: MakeEvent, cfg: CartConfig
) -> None:
    # add@0, a view past the deadline abandons first, then a purchase arrives that happened
    # before the deadline: ts - abandoned_at < 0 <= 24 h, so the abandoned cart was recovered.
    _, outputs = run(
        [
            make_event("add_to_cart", 0),
            make_event("view", TIMEOUT + 5),
            make_event("purchase", TIMEOUT - 1),
        ],
        cfg,
    )
    assert kinds(outputs) == ["cart_abandoned", "cart_recovered"]


def test_functions_do_not_mutate_their_input(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, _ = run([make_event("add_to_cart", 0, quantity=2)], cfg)
    items = dict(state.items)
    run([make_event("remove_from_cart", 1), make_event("purchase", 2)], cfg, state)
    fire("u-1", state, T0 + TIMEOUT, cfg, DETECTED)
    assert dict(state.items) == items and state.deadline_ms == T0 + TIMEOUT
