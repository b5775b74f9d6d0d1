"""Transactions: everyday spending, and the scripted episodes each fraud rule must catch.

Also the fraud labels, since a compromised terminal is an episode of labels followed by
transactions, and the routine `legit` labels that must never raise an alert.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from app.devtools.generate.records import GeneratedRecord
from app.devtools.generate.world import _CITIES, TsStyle, _Card, _rfc3339, _TxnRef, _World


class _Fraud(_World):
    """Transaction decisions: a normal purchase, or the first step of a fraud pattern."""

    def _txn_decision(self, ts: int) -> GeneratedRecord:
        p = self.patterns
        r = self._rng.random()
        starters: tuple[tuple[float, Callable[[int], GeneratedRecord | None]], ...] = (
            (p.velocity, self._velocity),
            (p.amount_spike, self._amount_spike),
            (p.impossible_travel, self._impossible_travel),
            (p.card_testing, self._card_testing),
            (p.large_amount, self._large_amount),
            (p.compromised_terminal, self._compromise_terminal),
        )
        edge = 0.0
        for probability, start in starters:
            edge += probability
            if r < edge:
                record = start(ts)
                if record is not None:
                    return record
                break
        return self._normal_txn(self._pick_card(), ts)

    def _txn(
        self,
        card: _Card,
        merchant_index: int,
        ts: int,
        amount: float,
        *,
        terminal: str | None = None,
        channel: str | None = None,
    ) -> GeneratedRecord:
        """Build one transaction value and remember it (stats, labels, duplicates)."""
        rng = self._rng
        merchant = self._merchants[merchant_index]
        city = _CITIES[merchant.city if merchant.city is not None else card.city]
        online = merchant.city is None
        value: dict[str, Any] = {
            "txn_id": f"t-{self._hex(64)}",
            "card_id": card.card_id,
            "amount": f"{amount:.2f}" if merchant.amount_as_string else amount,
            # Billed in the card's currency (what the issuer sees), wherever the shop is.
            "currency": _CITIES[card.city].currency,
            "merchant_id": merchant.merchant_id,
            "ts": self._format_ts(ts, merchant.ts_style, city.utc_offset_min),
            "mcc": merchant.mcc if rng.random() < 0.8 else int(merchant.mcc),
            "country": city.country,
            "channel": channel or ("ecom" if online else "pos"),
        }
        if online:
            value["device_id"] = card.device_id
        else:
            terminal = terminal or rng.choice(merchant.terminals)
            value["terminal_id"] = terminal
            value["lat"] = merchant.lat
            value["lon"] = merchant.lon
        card.observe(amount)
        if card.count == 5:
            self._spike_ready.append(card.index)
        record = GeneratedRecord("transactions", card.card_id, value)
        ref = _TxnRef(value["txn_id"], card.card_id, merchant.merchant_id, terminal, record)
        self._recent_txns.append(ref)
        if terminal is not None:
            seen = self._by_terminal.get(terminal)
            if seen is None:
                seen = self._by_terminal[terminal] = deque(maxlen=12)
                self._terminal_order.append(terminal)
            seen.append(ref)
        return record

    def _format_ts(self, ts: int, style: TsStyle, offset_min: int) -> str | int:
        if style == "epoch_ms":
            return ts
        if style == "offset":
            return _rfc3339(ts, offset_min)
        return _rfc3339(ts, 0, millis=style == "z_ms")

    def _normal_txn(self, card: _Card, ts: int) -> GeneratedRecord:
        rng = self._rng
        local = self._local[card.city]
        if local and rng.random() >= card.online_share:
            merchant = rng.choice(local)
        else:
            merchant = rng.choice(self._online)
        self._count("normal_txn")
        return self._txn(card, merchant, ts, self._amount(card))

    def _velocity(self, ts: int) -> GeneratedRecord:
        """A stolen card run through an online shop: 6-9 purchases a few seconds apart."""
        rng = self._rng
        card = self._pick_card()
        merchant = rng.choice(self._online)
        n = rng.randint(6, 9)
        at = float(ts)
        for _ in range(n - 1):
            at += rng.uniform(1_000, 5_000)
            self._schedule(
                at, lambda t: self._txn(card, merchant, t, self._amount(card, rng.uniform(0.6, 2)))
            )
        self._count("pattern_velocity")
        return self._txn(card, merchant, ts, self._amount(card, rng.uniform(0.6, 2)))

    def _amount_spike(self, ts: int) -> GeneratedRecord | None:
        """One purchase several times larger than anything the card's history explains."""
        if not self._spike_ready:
            return None
        rng = self._rng
        card = self._cards[rng.choice(self._spike_ready)]
        need = max(card.mean + 6 * card.stddev, 4 * card.mean)
        amount = round(need * rng.uniform(1.1, 1.6), 2)
        local = self._luxury_local[card.city] or self._local[card.city]
        merchant = rng.choice(local) if local and rng.random() < 0.7 else rng.choice(self._online)
        self._count("pattern_amount_spike")
        return self._txn(card, merchant, ts, amount)

    def _impossible_travel(self, ts: int) -> GeneratedRecord | None:
        """A purchase at home, then a cloned card used >= 1500 km away 0.5-12 minutes later."""
        rng = self._rng
        card = self._pick_card()
        home_shops = self._local[card.city]
        far = [c for c in self._far[card.city] if self._local[c]]
        if not home_shops or not far:
            return None
        away = rng.choice(far)
        away_shop = rng.choice(self._local[away])
        self._schedule(
            ts + rng.uniform(0.5, 12) * 60_000,
            lambda t: self._txn(card, away_shop, t, self._amount(card, rng.uniform(1, 4))),
        )
        self._count("pattern_impossible_travel")
        return self._txn(card, rng.choice(home_shops), ts, self._amount(card))

    def _card_testing(self, ts: int) -> GeneratedRecord:
        """A fraudster checks a stolen number with tiny charges, then sometimes cashes out."""
        rng = self._rng
        card = self._pick_card()
        merchant = rng.choice(self._online)

        def small(t: int) -> GeneratedRecord:
            return self._txn(card, merchant, t, round(rng.uniform(0.3, 2.0), 2))

        at = float(ts)
        for _ in range(rng.randint(5, 8) - 1):
            at += rng.uniform(3_000, 60_000)
            self._schedule(at, small)
        if rng.random() < 0.5:
            cash_out = rng.choice(self._luxury_online or self._online)
            self._schedule(
                at + rng.uniform(60_000, 300_000),
                lambda t: self._txn(card, cash_out, t, self._amount(card, rng.uniform(3, 8))),
            )
        self._count("pattern_card_testing")
        return small(ts)

    def _large_amount(self, ts: int) -> GeneratedRecord:
        """A single very large purchase (jewellery, electronics, flights)."""
        rng = self._rng
        card = self._pick_card()
        local = self._luxury_local[card.city]
        if local and rng.random() < 0.6:
            merchant = rng.choice(local)
        else:
            merchant = rng.choice(self._luxury_online or self._online)
        self._count("pattern_large_amount")
        return self._txn(card, merchant, ts, round(rng.uniform(10_000, 25_000), 2))

    def _compromise_terminal(self, ts: int) -> GeneratedRecord | None:
        """A skimmed terminal: 2-3 of its earlier transactions are confirmed fraud, then it is
        used again (by any card) and every later transaction there should alert."""
        rng = self._rng
        for _ in range(10):
            if not self._terminal_order:
                return None
            terminal = rng.choice(self._terminal_order)
            seen = self._by_terminal[terminal]
            if terminal not in self._compromised and len({r.txn_id for r in seen}) >= 2:
                break
        else:
            return None
        self._compromised.add(terminal)
        victims: list[_TxnRef] = []
        for ref in reversed(seen):
            if ref.txn_id not in {v.txn_id for v in victims}:
                victims.append(ref)
        victims = victims[: rng.randint(2, 3)]
        at = float(ts)
        for ref in victims[1:]:
            at += rng.uniform(5_000, 60_000)
            self._schedule(at, partial(self._label, ref, "fraud"))
        shop = next(
            i for i, m in enumerate(self._merchants) if m.merchant_id == victims[0].merchant_id
        )
        city = self._merchants[shop].city
        locals_ = [c for c in self._cards if c.city == city] or self._cards
        for _ in range(rng.randint(2, 4)):
            at += rng.uniform(20_000, 120_000)
            card = rng.choice(locals_)
            self._schedule(
                at, partial(self._txn, card, shop, amount=self._amount(card), terminal=terminal)
            )
        # The bank then has the terminal swapped: later sales at the shop use a new one, so a
        # campaign alerts for a while instead of on every sale there for the next 28 days.
        self._schedule(at + rng.uniform(60_000, 600_000), lambda t: self._replace(shop, terminal))
        self._count("pattern_compromised_terminal")
        return self._label(victims[0], "fraud", ts)

    def _replace(self, shop: int, terminal: str) -> None:
        terminals = self._merchants[shop].terminals
        if terminal in terminals:
            terminals[terminals.index(terminal)] = f"pos-{self._hex(32)}"
        return None

    # ---- feedback ----------------------------------------------------------------------------

    def _label(self, ref: _TxnRef, label: str, ts: int) -> GeneratedRecord:
        value: dict[str, Any] = {
            "txn_id": ref.txn_id,
            "label": label,
            "ts": ts,
            "card_id": ref.card_id,
            "merchant_id": ref.merchant_id,
        }
        if ref.terminal_id is not None:
            value["terminal_id"] = ref.terminal_id
        return GeneratedRecord("feedback", ref.txn_id, value)

    def _routine_label(self, ts: int) -> GeneratedRecord:
        """A dispute closed as legitimate: the common label, which must never raise an alert."""
        ref = self._rng.choice(self._recent_txns)
        self._count("label_legit")
        return self._label(ref, "legit", ts)
