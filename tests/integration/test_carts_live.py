"""Cart abandonment on a live worker: wall-clock firing, durable timers, recovery."""

from __future__ import annotations

import time

import pytest

from app.contract.timeutil import format_ts, now_ms

pytestmark = pytest.mark.integration

FAST = {"cart_lateness_s": "0.5", "cart_tick_interval_s": "0.5"}


def add(
    user: str, ts: int, product: str = "sku-1", qty: int = 2, price: float = 19.99, event: str = "e"
):
    return (
        "cart_events",
        user,
        {
            "event_id": f"{event}-{user}-{ts}",
            "user_id": user,
            "session_id": "s-1",
            "type": "add_to_cart",
            "product_id": product,
            "quantity": qty,
            "price": price,
            "currency": "EUR",
            "ts": format_ts(ts),
        },
    )


def purchase(user: str, ts: int):
    return (
        "cart_events",
        user,
        {"event_id": f"p-{user}-{ts}", "user_id": user, "type": "purchase", "ts": ts},
    )


def test_abandonment_fires_on_the_wall_clock_then_a_purchase_recovers(deployment):
    deployment.worker(cart_timeout_s="3", **FAST).start().wait_ready()
    t = now_ms()
    deployment.produce([add("u-1", t), add("u-1", t + 100, product="sku-2", qty=1, price=5.0)])
    # no further events: only the wall clock can fire this
    abandoned = deployment.consume("cart_abandoned", min_count=1, timeout=30, settle=4)
    assert len(abandoned) == 1
    key, value = abandoned[0]
    assert key == "u-1"
    assert value["items"] == [
        {"product_id": "sku-1", "quantity": 2, "price": 19.99},
        {"product_id": "sku-2", "quantity": 1, "price": 5.0},
    ]
    assert value["cart_value"] == pytest.approx(44.98)
    assert value["abandoned_at"] == format_ts(t + 100 + 3000)
    assert value["last_activity_ts"] == format_ts(t + 100)

    deployment.produce([purchase("u-1", now_ms())])
    recovered = deployment.consume("cart_recovered", min_count=1, timeout=30)
    assert len(recovered) == 1
    _, rec = recovered[0]
    assert rec["user_id"] == "u-1" and rec["order_value"] == pytest.approx(44.98)
    assert rec["abandoned_at"] == value["abandoned_at"]
    # the purchase emptied the cart: nothing more is abandoned
    assert len(deployment.consume("cart_abandoned", timeout=3, settle=3)) == 1


def test_a_worker_killed_before_the_deadline_emits_the_abandonment_exactly_once(deployment):
    worker = deployment.worker(cart_timeout_s="15", **FAST).start().wait_ready()
    t = now_ms()
    deployment.produce([add(f"u-{i}", t + i) for i in range(6)])
    time.sleep(3)  # processed and committed, deadline still ~12 s away
    assert deployment.consume("cart_abandoned", timeout=1, settle=0) == []
    worker.kill()

    deployment.worker("w2", cart_timeout_s="15", **FAST).start().wait_ready()
    abandoned = deployment.consume("cart_abandoned", min_count=6, timeout=60, settle=5)
    assert sorted(k for k, _ in abandoned) == [f"u-{i}" for i in range(6)]
    assert len({v["event_id"] for _, v in abandoned}) == 6
