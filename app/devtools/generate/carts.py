"""Shopping sessions for `cart-events`: browse, fill a cart, buy, abandon, come back.

Whole sessions are scripted when they start and their steps scheduled at absolute times, so a
session's pacing (relative to the reader's cart timeout) holds whatever else is generated.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from app.devtools.generate.records import GeneratedRecord
from app.devtools.generate.world import _CITIES, _rfc3339, _User, _World


class _Carts(_World):
    """Cart sessions of the world's shoppers."""

    def _idle_user(self) -> _User | None:
        for _ in range(8):
            user = self._rng.choice(self._users)
            if user.busy_until <= self._now:
                return user
        return None

    def _start_session(self, ts: int) -> GeneratedRecord | None:
        """Script a whole shopping session now; its steps are emitted as their times come."""
        user = self._idle_user()
        if user is None:
            return None
        rng, mix = self._rng, self.cart_mix
        user.session_id = f"s-{self._hex(40)}"
        r = rng.random()
        outcome = (
            "purchase"
            if r < mix.purchase
            else "abandon"
            if r < mix.purchase + mix.abandon
            else "browse"
        )
        steps: list[str] = ["view"] * rng.randint(1, 3)
        if outcome != "browse":
            for _ in range(rng.randint(1, 3)):
                steps.append("add")
                if rng.random() < 0.4:
                    steps.append("view")
            if rng.random() < 0.2:
                steps.append("remove")
            if outcome == "purchase" or rng.random() < 0.4:
                steps.append("checkout")
            if outcome == "purchase":
                steps.append("purchase")
        self._count(f"session_{outcome}")
        at = float(ts)
        for step in steps[1:]:
            at += self.cart_timeout_ms * rng.uniform(0.003, 0.04)
            self._schedule(at, partial(self._cart_step, user, step))
        if outcome == "abandon":
            if rng.random() < mix.recover:
                back = at + self.cart_timeout_ms * rng.uniform(1.1, 3.0)
                self._schedule_return(user, back)
                user.busy_until = back + self.cart_timeout_ms
            else:
                user.busy_until = at + self.cart_timeout_ms * 60
        else:
            user.busy_until = at + self.cart_timeout_ms * rng.uniform(0.05, 0.5)
        return self._cart_step(user, steps[0], ts)

    def _schedule_return(self, user: _User, at: float) -> None:
        """The shopper comes back to the abandoned cart and buys it (a recovery)."""
        rng = self._rng
        self._count("session_recovery")

        def new_session(t: int) -> GeneratedRecord:
            user.session_id = f"s-{self._hex(40)}"
            return self._cart_step(user, "view_cart", t)

        self._schedule(at, new_session)
        for step in ("checkout", "purchase"):
            at += self.cart_timeout_ms * rng.uniform(0.003, 0.04)
            self._schedule(at, partial(self._cart_step, user, step))

    def _product(self, user: _User) -> tuple[str, float]:
        """A catalogue item with its price in the shopper's currency (x.99 pricing)."""
        product, eur = self._rng.choice(self._products)
        return product, round(max(1.0, math.ceil(eur * _CITIES[user.city].per_eur)) - 0.01, 2)

    def _cart_step(self, user: _User, step: str, ts: int) -> GeneratedRecord:
        rng = self._rng
        currency = _CITIES[user.city].currency
        value: dict[str, Any] = {
            "event_id": f"e-{self._hex(64)}",
            "user_id": user.user_id,
            "session_id": user.session_id,
        }
        if step == "remove" and not user.cart:
            step = "view"
        if step == "view_cart":
            step = "view"
            if user.cart:
                product = rng.choice(list(user.cart))
                value.update(type="view", product_id=product, price=user.cart[product][1])
        if step == "view" and "type" not in value:
            product, price = self._product(user)
            value.update(type="view", product_id=product, price=price, currency=currency)
        elif step == "add":
            product, price = self._product(user)
            quantity = 1 if rng.random() < 0.8 else rng.randint(2, 3)
            value.update(
                type="add_to_cart",
                product_id=product,
                quantity=quantity,
                price=price,
                currency=currency,
            )
            held = user.cart.setdefault(product, [0, price])
            held[0] += quantity
            held[1] = price
        elif step == "remove":
            product = rng.choice(list(user.cart))
            held = user.cart[product]
            quantity = 1 if rng.random() < 0.7 else held[0]
            value.update(type="remove_from_cart", product_id=product, quantity=quantity)
            held[0] -= quantity
            if held[0] <= 0:
                del user.cart[product]
        elif step == "checkout":
            value.update(type="begin_checkout", currency=currency)
        elif step == "purchase":
            total = sum(q * p for q, p in user.cart.values())
            value.update(
                type="purchase",
                order_id=f"o-{self._hex(40)}",
                order_total=round(total, 2),
                currency=currency,
            )
            user.cart.clear()
        value["ts"] = ts if user.app else _rfc3339(ts)
        return GeneratedRecord("cart_events", user.user_id, value)
