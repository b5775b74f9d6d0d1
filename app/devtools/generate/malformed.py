"""Malformed records: what buggy producers really send, each one bound for dead letters."""

from __future__ import annotations

import time
from typing import Any

import orjson

from app.devtools.generate.records import GeneratedRecord
from app.devtools.generate.world import _CITIES, _rfc3339, _World


class _Malformed(_World):
    """Broken records for every input topic (`bad_rate` of the output, 0 by default)."""

    def _malformed(self, ts: int) -> GeneratedRecord:
        """Something a buggy producer really sends; every one must end up in dead letters."""
        rng = self._rng
        self._count("malformed")
        card = self._pick_card()
        kind = rng.randrange(9)
        txn: dict[str, Any] = {
            "txn_id": f"t-{self._hex(64)}",
            "card_id": card.card_id,
            "amount": self._amount(card),
            "currency": _CITIES[card.city].currency,
            "merchant_id": self._merchants[rng.choice(self._online)].merchant_id,
            "ts": _rfc3339(ts),
        }
        if kind == 0:  # cut off mid-record (a producer that crashed while writing)
            raw = orjson.dumps(txn)
            return GeneratedRecord(
                "transactions", card.card_id, raw[: rng.randint(5, len(raw) - 2)]
            )
        if kind == 1:
            txn["amount"] = -txn["amount"]  # a refund sent to the wrong topic
        elif kind == 2:
            txn["currency"] = rng.choice(["eur", "EURO", "€", "US"])
        elif kind == 3:
            txn["amount"] = f"{txn['amount']:.2f}".replace(".", ",")  # a locale-formatted amount
        elif kind == 4:
            txn["ts"] = time.strftime("%d/%m/%Y %H:%M", time.gmtime(ts // 1000))
        elif kind == 5:
            txn["lat"], txn["lon"] = 123.4, 45.6  # lat and lon swapped and mangled
        elif kind == 6:
            return GeneratedRecord(
                "transactions", card.card_id, b"txn_id=" + txn["txn_id"].encode() + b";amount=1"
            )
        elif kind == 7:
            ref = self._recent_txns[-1] if self._recent_txns else None
            txn_id = ref.txn_id if ref is not None else txn["txn_id"]
            value = {"txn_id": txn_id, "label": rng.choice(["FRAUD", "maybe", "chargeback"])}
            value["ts"] = ts
            return GeneratedRecord("feedback", txn_id, orjson.dumps(value))
        else:
            user = rng.choice(self._users)
            product, _ = rng.choice(self._products)
            cart: dict[str, Any] = {
                "event_id": f"e-{self._hex(64)}",
                "user_id": user.user_id,
                "type": "add_to_cart",
                "product_id": product,
                "currency": _CITIES[user.city].currency,
                "ts": _rfc3339(ts),
            }
            if rng.random() < 0.5:
                cart["quantity"] = 0  # no price either: two reasons, the first one is reported
            else:
                cart["type"] = "wishlist_add"
                cart["price"] = 9.99
            return GeneratedRecord("cart_events", user.user_id, orjson.dumps(cart))
        return GeneratedRecord("transactions", card.card_id, orjson.dumps(txn))
