"""The shape of the simulated dataset of Le Borgne et al.'s fraud-detection handbook, as Vigil
input: to check the learned risk score against the public benchmark's kind of stream.

An own re-implementation of the handbook's generator (chapter "Simulated dataset"): 5 000
customers and 10 000 terminals on a 100 x 100 map, each customer using the terminals within
radius 5; per customer a mean amount (uniform 5..100, stddev half of it) and a daily rate
(uniform 0..4), transaction times around noon; frauds: every amount > 220 (scenario 1), 2
terminals a day compromised for 28 days (2), 3 customers a day for 14 days with a third of
their payments multiplied by 5 (3). Feedback: one `fraud` label per fraud, 7 days after it,
naming only the `txn_id` (as a chargeback feed might).

    python -m bench.handbook_shape --days 60 --out lb   # lb-stream.jsonl, lb-labels.jsonl
    vigil replay lb-stream.jsonl --out lb-out
    vigil evaluate lb-out/txn-scores.jsonl lb-labels.jsonl --since 2018-05-01T00:00:00Z

Not the handbook's code or its random draws: the figures it gives are for this shape, not for
the published files.
"""

from __future__ import annotations

import argparse
import math
import random
from datetime import UTC, datetime
from typing import Any

import orjson

DAY_S = 86_400


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def simulate(seed: int, days: int) -> list[list[Any]]:
    """[seconds, customer, terminal, amount, fraud, scenario] per transaction, time-ordered."""
    rng = random.Random(seed)
    customers = []
    for _ in range(5000):
        x, y, mean, rate = rng.uniform(0, 100), rng.uniform(0, 100), rng.uniform(5, 100), 0.0
        rate = rng.uniform(0, 4)
        customers.append((x, y, mean, mean / 2, rate))
    terminals = [(rng.uniform(0, 100), rng.uniform(0, 100)) for _ in range(10000)]
    near = [
        [i for i, (tx, ty) in enumerate(terminals) if (tx - x) ** 2 + (ty - y) ** 2 < 25]
        for x, y, _, _, _ in customers
    ]
    txs: list[list[Any]] = []
    for c, (_, _, mean, std, rate) in enumerate(customers):
        if not near[c]:
            continue
        for d in range(days):
            for _ in range(_poisson(rng, rate)):
                t = int(rng.gauss(DAY_S / 2, 20000))
                if 0 < t < DAY_S:
                    a = rng.gauss(mean, std)
                    if a < 0:
                        a = rng.uniform(0, mean * 2)
                    txs.append([d * DAY_S + t, c, rng.choice(near[c]), round(a, 2), 0, 0])
    txs.sort(key=lambda r: (r[0], r[1]))
    for r in txs:
        if r[3] > 220:
            r[4], r[5] = 1, 1
    by_day: list[list[int]] = [[] for _ in range(days)]
    for i, r in enumerate(txs):
        by_day[r[0] // DAY_S].append(i)
    for d in range(days):
        compromised = set(rng.sample(range(len(terminals)), 2))
        for dd in range(d, min(d + 28, days)):
            for i in by_day[dd]:
                if txs[i][2] in compromised and not txs[i][4]:
                    txs[i][4], txs[i][5] = 1, 2
        cards = set(rng.sample(range(len(customers)), 3))
        for dd in range(d, min(d + 14, days)):
            idx = [i for i in by_day[dd] if txs[i][1] in cards]
            for i in rng.sample(idx, len(idx) // 3) if idx else []:
                txs[i][3] = round(txs[i][3] * 5, 2)
                txs[i][4], txs[i][5] = 1, 3
    return txs


def write(out: str, seed: int = 0, days: int = 60, delay_days: int = 7) -> tuple[int, int]:
    """Write `<out>-stream.jsonl` (replay envelopes) and `<out>-labels.jsonl`."""
    start = int(datetime(2018, 4, 1, tzinfo=UTC).timestamp() * 1000)
    txs = simulate(seed, days)
    events = []
    with open(out + "-labels.jsonl", "wb") as labels:
        for n, (sec, c, t, amount, fraud, scenario) in enumerate(txs):
            ts = start + sec * 1000
            txn_id = f"tx{n}"
            value = {
                "txn_id": txn_id,
                "card_id": f"c{c}",
                "amount": amount,
                "currency": "EUR",
                "merchant_id": f"T{t}",
                "terminal_id": f"T{t}",
                "ts": ts,
            }
            events.append((ts, 0, n, {"topic": "transactions", "key": f"c{c}", "value": value}))
            line = {"txn_id": txn_id, "card_id": f"c{c}", "ts": ts, "fraud": fraud}
            labels.write(orjson.dumps({**line, "scenario": scenario}) + b"\n")
            if fraud:
                at = ts + delay_days * DAY_S * 1000
                label = {"txn_id": txn_id, "label": "fraud", "ts": at}
                events.append(
                    (at, 1, n, {"topic": "fraud-feedback", "key": txn_id, "value": label})
                )
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    with open(out + "-stream.jsonl", "wb") as fh:
        fh.writelines(orjson.dumps(e[3]) + b"\n" for e in events)
    return len(txs), sum(r[4] for r in txs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="path prefix of the two files")
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    n, frauds = write(args.out, args.seed, args.days)
    print(f"transactions: {n}\nfrauds: {frauds}")


if __name__ == "__main__":
    main()
