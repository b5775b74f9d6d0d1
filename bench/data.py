"""The benchmark's input records, all from fixed seeds.

Fraud traffic comes from `app.devtools.generate.TrafficGenerator` (normal spending plus injected
fraud
patterns, ~240-byte JSON values) when that module is importable; otherwise from the small
fallback below. The pre-loads (distinct cards, distinct open carts) and the latency probes are
built here because they need a shape the realistic generator does not aim for: every key new,
or every transaction alerting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import orjson

from bench.kafka import Record

CURRENCIES = ("EUR", "EUR", "EUR", "GBP", "USD")
CART_BATCH_MIX = (  # share of each event type in the measured cart batch
    ("view", 0.40),
    ("add_to_cart", 0.30),
    ("remove_from_cart", 0.10),
    ("begin_checkout", 0.12),
    ("purchase", 0.08),
)


def iso_ms(ms: int) -> str:
    secs, frac = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:03d}Z"


def fraud_traffic(n: int, seed: int) -> tuple[list[Record], str]:
    """`n` transactions of realistic traffic; returns the records and where they came from."""
    try:
        from app.devtools.generate import CartMix, TrafficGenerator, to_bytes
    except ImportError:
        return _fallback_traffic(n, seed), "bench.data fallback generator"
    gen = TrafficGenerator(
        seed=seed,
        cards=max(1000, n // 4),  # ~4 transactions per card: state is read back, not only new
        users=1,
        events_per_second=50.0,
        cart_mix=CartMix(share=0.0),
        feedback_rate=0.0,
    )
    out: list[Record] = []
    for rec in gen.stream():
        if rec.kind != "transactions":  # labels of the compromised-terminal pattern
            continue
        out.append((rec.key.encode(), to_bytes(rec.value)))
        if len(out) >= n:
            break
    return out, "app.devtools.generate.TrafficGenerator"


def _fallback_traffic(n: int, seed: int) -> list[Record]:
    rng = random.Random(seed)
    cards = [f"tok_{rng.getrandbits(48):012x}" for _ in range(max(1000, n // 4))]
    ts = 1_795_341_600_000
    out: list[Record] = []
    for i in range(n):
        ts += int(rng.expovariate(1 / 20))
        card = rng.choice(cards)
        value = {
            "txn_id": f"t-{seed}-{i}",
            "card_id": card,
            "amount": round(rng.lognormvariate(3.5, 1.0), 2),
            "currency": rng.choice(CURRENCIES),
            "merchant_id": f"m-{rng.randrange(5000):05d}",
            "terminal_id": f"pos-{rng.randrange(20000):05d}",
            "country": "FR",
            "lat": 48.8 + rng.random() / 10,
            "lon": 2.3 + rng.random() / 10,
            "mcc": "5411",
            "ts": iso_ms(ts),
        }
        out.append((card.encode(), orjson.dumps(value)))
    return out


def distinct_cards(n: int, seed: int, start_ms: int) -> list[Record]:
    """One ordinary transaction on each of `n` distinct cards (a table of `n` keys)."""
    rng = random.Random(seed)
    out: list[Record] = []
    for i in range(n):
        card = f"tok_{seed:x}{i:08x}"
        value = {
            "txn_id": f"pre-{seed}-{i}",
            "card_id": card,
            "amount": round(rng.lognormvariate(3.5, 1.0), 2),
            "currency": "EUR",
            "merchant_id": f"m-{rng.randrange(5000):05d}",
            "terminal_id": f"pos-{rng.randrange(20000):05d}",
            "country": "FR",
            "lat": round(48.8 + rng.random() / 10, 5),
            "lon": round(2.3 + rng.random() / 10, 5),
            "ts": iso_ms(start_ms + i // 50),
        }
        out.append((card.encode(), orjson.dumps(value)))
    return out


def _user(i: int) -> str:
    return f"u-{i:08d}"


def cart_preload(n: int, seed: int, start_ms: int) -> list[Record]:
    """One `add_to_cart` for each of `n` distinct users: `n` open carts, each with a timer."""
    rng = random.Random(seed)
    out: list[Record] = []
    for i in range(n):
        user = _user(i)
        value = {
            "event_id": f"pre-{seed}-{i}",
            "user_id": user,
            "session_id": f"s-{i:08d}",
            "type": "add_to_cart",
            "product_id": f"sku-{rng.randrange(400):03d}",
            "quantity": rng.randint(1, 3),
            "price": round(rng.uniform(2, 200), 2),
            "currency": "EUR",
            "ts": iso_ms(start_ms + i // 50),
        }
        out.append((user.encode(), orjson.dumps(value)))
    return out


def cart_batch(m: int, users: int, seed: int, start_ms: int) -> list[Record]:
    """`m` further events on the pre-loaded users (views, adds, removes, checkouts, buys)."""
    rng = random.Random(seed)
    kinds = [k for k, _ in CART_BATCH_MIX]
    weights = [w for _, w in CART_BATCH_MIX]
    out: list[Record] = []
    for i in range(m):
        uid = rng.randrange(users)
        user = _user(uid)
        kind = rng.choices(kinds, weights)[0]
        value: dict[str, object] = {
            "event_id": f"b-{seed}-{i}",
            "user_id": user,
            "session_id": f"s-{uid:08d}",
            "type": kind,
            "ts": iso_ms(start_ms + i // 50),
        }
        if kind in ("add_to_cart", "remove_from_cart", "view"):
            value["product_id"] = f"sku-{rng.randrange(400):03d}"
        if kind == "add_to_cart":
            value.update(quantity=rng.randint(1, 2), price=round(rng.uniform(2, 200), 2))
            value["currency"] = "EUR"
        out.append((user.encode(), orjson.dumps(value)))
    return out


def latency_probes(seed: int) -> Iterator[tuple[str, bytes, bytes]]:
    """Endless large-amount transactions (each one alerts); the caller stamps `ts` at send.

    Yields (txn_id, key, value-with-a-`{ts}`-hole); `probe_bytes` fills the hole.
    """
    rng = random.Random(seed)
    cards = [f"tok_lat{seed:x}{i:06x}" for i in range(10_000)]
    i = 0
    while True:
        card = rng.choice(cards)
        txn_id = f"lat-{seed}-{i}"
        i += 1
        value = orjson.dumps(
            {
                "txn_id": txn_id,
                "card_id": card,
                "amount": round(rng.uniform(12_000, 25_000), 2),
                "currency": "EUR",
                "merchant_id": f"m-{rng.randrange(5000):05d}",
                "country": "FR",
                "ts": 0,
            }
        )
        yield txn_id, card.encode(), value


def probe_bytes(template: bytes, ts_ms: int) -> bytes:
    """The probe's value with `ts` (epoch ms) set to the send time."""
    return template.replace(b'"ts":0', b'"ts":%d' % ts_ms)


def alerting_traffic(n: int, seed: int, start_ms: int = 1_767_225_600_000) -> list[Record]:
    """`n` of the latency run's transactions (each one alerts), `ts` 10 ms apart: the same
    traffic as the latency run, pre-produced, so that its max rate can be measured."""
    probes = latency_probes(seed)
    out: list[Record] = []
    for i in range(n):
        _, key, template = next(probes)
        out.append((key, probe_bytes(template, start_ms + 10 * i)))
    return out
