"""The contract's "Cart abandonment, per user_id" paragraph, sentence by sentence, on `machine`.

Each test sits under the sentence it checks (recovery is in `test_machine_recovery`). Events go
through `steps.run`, which applies them in order to one user's state as the engine does, without
the clock; `fire` stands in for the clock reaching the deadline.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.cart.config import CartConfig
from app.cart.machine import fire
from app.cart.state import Item
from tests.unit.cart.steps import DETECTED, TIMEOUT, MakeEvent, kinds, run
from tests.unit.cart.timeline import HOUR, MIN, T0

# "a cart episode starts with the first add_to_cart on an empty cart"


def test_first_add_on_empty_cart_starts_an_episode(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, outputs = run([make_event("view", 0), make_event("begin_checkout", 1)], cfg)
    assert state.episode == 0 and state.deadline_ms is None and not outputs

    state, outputs = run([make_event("add_to_cart", 2 * MIN)], cfg, state)
    assert state.episode == 1
    assert state.deadline_ms == T0 + 2 * MIN + TIMEOUT
    assert not outputs


def test_further_adds_stay_in_the_same_episode(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, _ = run(
        [make_event("add_to_cart", 0), make_event("add_to_cart", MIN, product_id="sku-2")], cfg
    )
    assert state.episode == 1
    assert list(state.items) == ["sku-1", "sku-2"]


# "add_to_cart of a product already in the cart adds to its quantity and takes the new price"


def test_add_existing_product_accumulates_quantity_and_takes_new_price(
    make_event: MakeEvent, cfg: CartConfig
) -> None:
    state, _ = run(
        [
            make_event("add_to_cart", 0, quantity=2, price=19.99),
            make_event("add_to_cart", MIN, quantity=3, price=17.5),
        ],
        cfg,
    )
    assert dict(state.items) == {"sku-1": Item(quantity=5, price=17.5)}
    assert state.value == 87.5


# "remove_from_cart lowers quantity (at zero the item leaves the cart; a product not in the cart
# is a no-op)"


def test_remove_lowers_quantity(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, _ = run(
        [make_event("add_to_cart", 0, quantity=3), make_event("remove_from_cart", MIN)], cfg
    )
    assert dict(state.items) == {"sku-1": Item(quantity=2, price=10.0)}

    state, _ = run([make_event("remove_from_cart", 2 * MIN, quantity=1)], cfg, state)
    assert state.items["sku-1"].quantity == 1


def test_remove_to_zero_leaves_the_cart_and_nothing_is_abandoned(
    make_event: MakeEvent, cfg: CartConfig
) -> None:
    state, _ = run(
        [
            make_event("add_to_cart", 0, quantity=2),
            make_event("add_to_cart", 0, product_id="sku-2"),
            make_event("remove_from_cart", MIN, quantity=2),
        ],
        cfg,
    )
    assert list(state.items) == ["sku-2"]

    state, _ = run([make_event("remove_from_cart", 2 * MIN, product_id="sku-2")], cfg, state)
    assert not state.items and state.deadline_ms is None
    state, outputs = fire("u-1", state, T0 + 10 * HOUR, cfg, DETECTED)
    assert not outputs


def test_remove_more_than_in_cart_removes_the_item(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, _ = run(
        [make_event("add_to_cart", 0, quantity=2), make_event("remove_from_cart", MIN, quantity=5)],
        cfg,
    )
    assert not state.items


def test_remove_of_absent_product_is_a_no_op_on_the_cart(
    make_event: MakeEvent, cfg: CartConfig
) -> None:
    before, _ = run([make_event("add_to_cart", 0, quantity=2)], cfg)
    after, outputs = run([make_event("remove_from_cart", MIN, product_id="sku-9")], cfg, before)
    assert dict(after.items) == dict(before.items)
    assert after.episode == before.episode and not outputs
    # ...but it is still activity (see "Any event of the user is activity").
    assert after.deadline_ms == T0 + MIN + TIMEOUT


def test_remove_on_empty_cart_starts_nothing(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, outputs = run([make_event("remove_from_cart", 0)], cfg)
    assert not state.items and state.deadline_ms is None and state.episode == 0
    assert not outputs


# "the cart's value is the sum of quantity x price"


def test_cart_value_is_sum_of_quantity_times_price(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, _ = run(
        [
            make_event("add_to_cart", 0, quantity=2, price=19.99),
            make_event("add_to_cart", 1, product_id="sku-2", quantity=3, price=0.1),
        ],
        cfg,
    )
    state, outputs = fire("u-1", state, T0 + 1 + TIMEOUT, cfg, DETECTED)
    # 39.98 + 0.3 exactly: summed in decimal, not 40.28000000000001
    assert outputs[0].value["cart_value"] == 40.28
    assert state.value == 40.28


# "purchase empties the cart and ends the episode"


def test_purchase_empties_cart_and_ends_episode(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, outputs = run([make_event("add_to_cart", 0), make_event("purchase", MIN)], cfg)
    assert not state.items and state.deadline_ms is None and not outputs
    state, outputs = fire("u-1", state, T0 + 10 * HOUR, cfg, DETECTED)
    assert not outputs

    state, _ = run([make_event("add_to_cart", 2 * MIN)], cfg, state)
    assert state.episode == 2 and dict(state.items) == {"sku-1": Item(1, 10.0)}


# "Any event of the user is activity"


@pytest.mark.parametrize("kind", ["view", "begin_checkout", "add_to_cart", "remove_from_cart"])
def test_any_event_is_activity(make_event: MakeEvent, cfg: CartConfig, kind: str) -> None:
    product = {"product_id": "sku-2"} if kind != "remove_from_cart" else {"product_id": "sku-9"}
    state, _ = run(
        [make_event("add_to_cart", 0), make_event(kind, 20 * MIN, **product)],
        cfg,
    )
    assert state.last_activity_ms == T0 + 20 * MIN
    assert state.deadline_ms == T0 + 20 * MIN + TIMEOUT
    state, outputs = fire("u-1", state, T0 + TIMEOUT, cfg, DETECTED)
    assert not outputs  # the first deadline moved


# "When the cart is non-empty and the user has no activity for 30 min (the deadline: the latest
# ts seen for the user + 30 min), the episode is abandoned: one cart-abandoned event, never two
# for one episode."


def test_quiet_non_empty_cart_is_abandoned_with_contract_fields(
    make_event: MakeEvent, cfg: CartConfig, iso: Callable[[int], str]
) -> None:
    state, _ = run(
        [
            make_event("view", 0, session_id="s-2"),
            make_event("add_to_cart", MIN, session_id="s-3", quantity=2, price=19.99),
        ],
        cfg,
    )
    state, outputs = fire("u-1", state, T0 + MIN + TIMEOUT, cfg, T0 + MIN + TIMEOUT + 10_400)
    assert len(outputs) == 1
    out = outputs[0]
    assert out.kind == "cart_abandoned" and out.key == "u-1"
    assert out.value == {
        "event_id": out.value["event_id"],
        "user_id": "u-1",
        "session_id": "s-3",
        "items": [{"product_id": "sku-1", "quantity": 2, "price": 19.99}],
        "cart_value": 39.98,
        "currency": "EUR",
        "last_activity_ts": iso(MIN),
        "abandoned_at": iso(MIN + TIMEOUT),
        "detected_ts": iso(MIN + TIMEOUT + 10_400),
    }
    assert len(out.value["event_id"]) == 32


def test_not_abandoned_before_the_deadline(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, _ = run([make_event("add_to_cart", 0)], cfg)
    same, outputs = fire("u-1", state, T0 + TIMEOUT - 1, cfg, DETECTED)
    assert not outputs and same == state


def test_never_two_abandonments_for_one_episode(make_event: MakeEvent, cfg: CartConfig) -> None:
    state, _ = run([make_event("add_to_cart", 0)], cfg)
    state, first = fire("u-1", state, T0 + TIMEOUT, cfg, DETECTED)
    state, second = fire("u-1", state, T0 + TIMEOUT + HOUR, cfg, DETECTED)
    assert kinds(first) == ["cart_abandoned"] and second == []
    assert state.deadline_ms is None and state.items  # the cart itself is kept
    # a late event (older than the latest activity) does not reopen it either
    state, late = run([make_event("view", -MIN)], cfg, state)
    state, third = fire("u-1", state, T0 + 10 * HOUR, cfg, DETECTED)
    assert late == [] and third == [] and state.episode == 1


def test_deadline_uses_the_latest_ts_seen_and_never_moves_back(
    make_event: MakeEvent, cfg: CartConfig
) -> None:
    state, _ = run([make_event("add_to_cart", 10 * MIN), make_event("view", 2 * MIN)], cfg)
    assert state.last_activity_ms == T0 + 10 * MIN
    assert state.deadline_ms == T0 + 10 * MIN + TIMEOUT
    # a late add (out of order) starts the episode, but the deadline counts from the latest ts
    state, _ = run([make_event("view", 20 * MIN), make_event("add_to_cart", 15 * MIN)], cfg)
    assert state.deadline_ms == T0 + 20 * MIN + TIMEOUT


# "An event of the user whose ts is at or past the pending deadline first abandons the episode
# (the user was quiet for the whole timeout), then is applied."


def test_event_exactly_at_deadline_abandons_first(
    make_event: MakeEvent, cfg: CartConfig, iso: Callable[[int], str]
) -> None:
    state, _ = run([make_event("add_to_cart", 0, quantity=2)], cfg)
    state, outputs = run([make_event("add_to_cart", TIMEOUT, product_id="sku-2")], cfg, state)
    assert kinds(outputs) == ["cart_abandoned"]
    # the abandoned episode is the cart before the event...
    assert outputs[0].value["items"] == [{"product_id": "sku-1", "quantity": 2, "price": 10.0}]
    assert outputs[0].value["abandoned_at"] == iso(TIMEOUT)
    # ...then the event is applied, to a cart that stays non-empty: a new episode
    assert list(state.items) == ["sku-1", "sku-2"]
    assert state.episode == 2 and state.deadline_ms == T0 + 2 * TIMEOUT


def test_event_one_ms_before_deadline_does_not_abandon(
    make_event: MakeEvent, cfg: CartConfig
) -> None:
    state, _ = run([make_event("add_to_cart", 0)], cfg)
    state, outputs = run([make_event("view", TIMEOUT - 1)], cfg, state)
    assert outputs == [] and state.episode == 1
    assert state.deadline_ms == T0 + 2 * TIMEOUT - 1


def test_purchase_at_deadline_is_abandoned_then_recovered(
    make_event: MakeEvent, cfg: CartConfig, iso: Callable[[int], str]
) -> None:
    state, _ = run([make_event("add_to_cart", 0)], cfg)
    state, outputs = run([make_event("purchase", TIMEOUT + MIN)], cfg, state)
    assert kinds(outputs) == ["cart_abandoned", "cart_recovered"]
    assert outputs[1].value["recovered_ts"] == iso(TIMEOUT + MIN)
    assert not state.items


# "Activity on a cart that stays non-empty after an abandonment starts a new episode."


def test_activity_after_abandonment_starts_a_new_episode_with_a_new_event_id(
    make_event: MakeEvent, cfg: CartConfig, iso: Callable[[int], str]
) -> None:
    state, _ = run([make_event("add_to_cart", 0)], cfg)
    state, first = fire("u-1", state, T0 + TIMEOUT, cfg, DETECTED)
    state, outputs = run([make_event("view", 2 * HOUR)], cfg, state)
    assert outputs == [] and state.episode == 2
    assert state.deadline_ms == T0 + 2 * HOUR + TIMEOUT
    state, second = fire("u-1", state, T0 + 2 * HOUR + TIMEOUT, cfg, DETECTED)
    assert kinds(first) == kinds(second) == ["cart_abandoned"]
    assert first[0].value["event_id"] != second[0].value["event_id"]
    assert second[0].value["last_activity_ts"] == iso(2 * HOUR)
    assert second[0].value["items"] == first[0].value["items"]


def test_activity_that_empties_an_abandoned_cart_starts_no_episode(
    make_event: MakeEvent, cfg: CartConfig
) -> None:
    state, _ = run([make_event("add_to_cart", 0)], cfg)
    state, _ = fire("u-1", state, T0 + TIMEOUT, cfg, DETECTED)
    state, _ = run([make_event("remove_from_cart", HOUR)], cfg, state)
    assert not state.items and state.deadline_ms is None and state.episode == 1
