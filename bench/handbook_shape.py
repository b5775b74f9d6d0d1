"""The shape of the simulated dataset of Le Borgne et al.'s fraud-detection handbook, as Vigil
input: to check the learned risk score against the public benchmark's kind of stream.

An own re-implementation of the handbook's generator (chapter "Simulated dataset",
`generate_dataset` + `add_frauds`; the published files are 183 days from 2018-04-01, 5 000
customers, 10 000 terminals, r = 5): customers and terminals on a 100 x 100 map, each customer
using the terminals within radius 5; per customer a mean amount (uniform 5..100, stddev half of
it) and a daily rate (uniform 0..4, Poisson per day), times normal around noon (sd 20 000 s,
kept inside the day); a negative amount is redrawn uniform in 0..2 x mean. Frauds, in the
handbook's order: every amount > 220 (scenario 1); for each day but the last, 2 terminals drawn
among all, and all their transactions in the next 28 days are fraud (2); for each day but the
last, 3 customers drawn among all, and a third (rounded down) of all their transactions in the
next 14 days (frauds already included) have their amount x 5 and are fraud (3). Feedback: one
`fraud` label per fraud, `--delay-days` (7) after it, naming only the `txn_id` (as a chargeback
feed might; `--label-places` also names the card and terminal).

    python -m bench.handbook_shape --days 183 --out lb   # lb-stream.jsonl, lb-labels.jsonl
    vigil replay lb-stream.jsonl --out lb-out
    vigil evaluate lb-out/txn-scores.jsonl lb-labels.jsonl --since 2018-05-01T00:00:00Z

    # in-process (the same RiskScorer and learner as replay, without the files), by seed,
    # warm-up and fraud scenario:
    python -m bench.handbook_shape --days 183 --evaluate --seeds 0,1,2 --since-days 30,91

Not the handbook's code or its random draws (one `random.Random(seed)` for everything): the
figures it gives are for this shape, not for the published files.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

DAY_S = 86_400
START_MS = int(datetime(2018, 4, 1, tzinfo=UTC).timestamp() * 1000)
SCENARIOS = {1: "amount > 220", 2: "compromised terminal", 3: "compromised card x5"}


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _near(
    customers: list[tuple[float, float, float, float, float]],
    terminals: list[tuple[float, float]],
    r: float,
) -> list[list[int]]:
    """Per customer, the terminals within distance `r` (ascending id), through a grid of cells
    `r` wide (the handbook computes every distance: 50 M of them is slow in pure Python)."""
    cells: dict[tuple[int, int], list[int]] = {}
    for i, (tx, ty) in enumerate(terminals):
        cells.setdefault((int(tx // r), int(ty // r)), []).append(i)
    out = []
    for x, y, _, _, _ in customers:
        cx, cy = int(x // r), int(y // r)
        found = [
            i
            for gx in (cx - 1, cx, cx + 1)
            for gy in (cy - 1, cy, cy + 1)
            for i in cells.get((gx, gy), ())
            if math.dist((x, y), terminals[i]) < r
        ]
        out.append(sorted(found))
    return out


def simulate(
    seed: int, days: int, n_customers: int = 5000, n_terminals: int = 10000, r: float = 5.0
) -> list[list[Any]]:
    """[seconds, customer, terminal, amount, fraud, scenario] per transaction, time-ordered."""
    rng = random.Random(seed)
    customers = []
    for _ in range(n_customers):
        x, y, mean = rng.uniform(0, 100), rng.uniform(0, 100), rng.uniform(5, 100)
        customers.append((x, y, mean, mean / 2, rng.uniform(0, 4)))
    terminals = [(rng.uniform(0, 100), rng.uniform(0, 100)) for _ in range(n_terminals)]
    near = _near(customers, terminals, r)
    txs: list[list[Any]] = []
    for c, (_, _, mean, std, rate) in enumerate(customers):
        for d in range(days):
            for _ in range(_poisson(rng, rate)):
                t = int(rng.gauss(DAY_S / 2, 20000))
                if 0 < t < DAY_S:
                    a = rng.gauss(mean, std)
                    if a < 0:
                        a = rng.uniform(0, mean * 2)
                    if near[c]:
                        txs.append([d * DAY_S + t, c, rng.choice(near[c]), round(a, 2), 0, 0])
    txs.sort(key=lambda row: (row[0], row[1]))
    for row in txs:
        if row[3] > 220:
            row[4], row[5] = 1, 1
    by_day: list[list[int]] = [[] for _ in range(days)]
    for i, row in enumerate(txs):
        by_day[row[0] // DAY_S].append(i)
    last_day = max((row[0] // DAY_S for row in txs), default=0)
    for d in range(last_day):
        compromised = set(rng.sample(range(n_terminals), 2))
        for dd in range(d, min(d + 28, days)):
            for i in by_day[dd]:
                if txs[i][2] in compromised:
                    txs[i][4], txs[i][5] = 1, 2
    for d in range(last_day):
        cards = set(rng.sample(range(n_customers), 3))
        idx = [i for dd in range(d, min(d + 14, days)) for i in by_day[dd] if txs[i][1] in cards]
        for i in rng.sample(idx, len(idx) // 3):
            txs[i][3] = round(txs[i][3] * 5, 2)
            txs[i][4], txs[i][5] = 1, 3
    return txs


def events(
    txs: list[list[Any]], delay_days: int = 7, label_places: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(topic, value) in stream order: transactions, and fraud labels `delay_days` later."""
    out = []
    for n, (sec, c, t, amount, fraud, _) in enumerate(txs):
        ts = START_MS + sec * 1000
        value = {
            "txn_id": f"tx{n}",
            "card_id": f"c{c}",
            "amount": amount,
            "currency": "EUR",
            "merchant_id": f"T{t}",
            "terminal_id": f"T{t}",
            "ts": ts,
        }
        out.append((ts, 0, n, "transactions", value))
        if fraud:
            at = ts + delay_days * DAY_S * 1000
            label: dict[str, Any] = {"txn_id": f"tx{n}", "label": "fraud", "ts": at}
            if label_places:
                label.update(card_id=f"c{c}", terminal_id=f"T{t}")
            out.append((at, 1, n, "fraud-feedback", label))
    out.sort(key=lambda e: (e[0], e[1], e[2]))
    for _, _, _, topic, value in out:
        yield topic, value


def write(
    out: str, seed: int = 0, days: int = 183, delay_days: int = 7, label_places: bool = False
) -> tuple[int, int]:
    """Write `<out>-stream.jsonl` (replay envelopes) and `<out>-labels.jsonl`."""
    txs = simulate(seed, days)
    with open(out + "-labels.jsonl", "wb") as labels:
        for n, (sec, c, _, _, fraud, scenario) in enumerate(txs):
            ts = START_MS + sec * 1000
            line = {"txn_id": f"tx{n}", "card_id": f"c{c}", "ts": ts, "fraud": fraud}
            labels.write(orjson.dumps({**line, "scenario": scenario}) + b"\n")
    with open(out + "-stream.jsonl", "wb") as fh:
        for topic, value in events(txs, delay_days, label_places):
            key = value["card_id"] if topic == "transactions" else value["txn_id"]
            fh.write(orjson.dumps({"topic": topic, "key": key, "value": value}) + b"\n")
    return len(txs), sum(row[4] for row in txs)


def score_in_process(
    txs: list[list[Any]], delay_days: int = 7, label_places: bool = False
) -> tuple[list[float], list[float], Any]:
    """(score, rule_score) per transaction, learned as `vigil replay` learns (the same
    `RiskScorer.process`, `DelayedLearner` and feedback index, in the stream's order), and the
    learner at the end."""
    from app.contract.intake import FEEDBACK, TRANSACTIONS, Rejected
    from app.detect.feedback import InMemoryFeedback
    from app.detect.fraud import FraudDetector
    from app.detect.state import CardState
    from app.score.learner import DelayedLearner
    from app.score.scorer import RiskScorer
    from app.settings import Settings

    settings = Settings()
    detector = FraudDetector(settings.fraud_config())
    scorer = RiskScorer(detector, settings.score_config())
    learner = DelayedLearner(settings.score_config())
    feedback = InMemoryFeedback(detector.config)
    cards: dict[str, CardState] = {}
    scores = [0.0] * len(txs)
    rules = [0.0] * len(txs)
    for topic, value in events(txs, delay_days, label_places):
        if topic == "transactions":
            txn = TRANSACTIONS(orjson.dumps(value), value["card_id"].encode())
            assert not isinstance(txn, Rejected)
            result = scorer.process(txn, cards.get(txn.card_id), feedback.places, learner, txn.ts)
            cards[txn.card_id] = result.state
            assert result.score is not None and result.example is not None
            n = int(txn.txn_id[2:])
            scores[n] = result.score["score"]
            rules[n] = result.score["rule_score"]
            learner.add_example(result.example)
        else:
            fb = FEEDBACK(orjson.dumps(value), value["txn_id"].encode())
            assert not isinstance(fb, Rejected)
            feedback.process(fb)
            learner.add_label(fb)
        learner.offset += 1
    return scores, rules, learner


def report(txs: list[list[Any]], scores: list[float], since_day: int) -> dict[str, float]:
    """AUC, AP, CP@100 on the transactions from `since_day` on; CP@100 again as the handbook
    measures it, on test weeks (each 7-day period its own test: cards caught in one week are
    not removed from the next, as they are over one long period), with the same weeks' value
    for a perfect ranking (the ceiling: fraud cards per day are few); AP per fraud scenario
    (that scenario's frauds against all legit transactions)."""
    from app.evaluate import Row, auc_roc, average_precision, card_precision_at_k

    keep = [i for i, row in enumerate(txs) if row[0] // DAY_S >= since_day]
    s = [scores[i] for i in keep]
    y = [txs[i][4] for i in keep]
    rows = [
        Row(f"tx{i}", f"c{txs[i][1]}", START_MS + txs[i][0] * 1000, y[k], s[k])
        for k, i in enumerate(keep)
    ]
    out = {
        "auc": auc_roc(s, y),
        "ap": average_precision(s, y),
        "cp100": card_precision_at_k(rows, 100),
        "cp100_ceiling": card_precision_at_k(
            [Row(r.txn_id, r.card_id, r.ts, r.fraud, r.fraud) for r in rows], 100
        ),
    }
    weeks: dict[int, list[Any]] = {}
    for r in rows:
        weeks.setdefault((r.ts - START_MS) // (7 * DAY_S * 1000) - since_day // 7, []).append(r)
    full = [w for w in weeks.values() if len({r.ts // (DAY_S * 1000) for r in w}) == 7]
    if full:
        out["cp100_weekly"] = statistics.fmean(card_precision_at_k(w, 100) for w in full)
        perfect = [[Row(r.txn_id, r.card_id, r.ts, r.fraud, r.fraud) for r in w] for w in full]
        out["cp100_weekly_ceiling"] = statistics.fmean(card_precision_at_k(w, 100) for w in perfect)
    for sc in SCENARIOS:
        sub = [k for k, i in enumerate(keep) if txs[i][5] in (0, sc)]
        out[f"ap_s{sc}"] = average_precision([s[k] for k in sub], [y[k] for k in sub])
    return out


def evaluate_seeds(
    seeds: list[int], days: int, since_days: list[int], delay_days: int, label_places: bool
) -> dict[str, Any]:
    """Every seed's figures per warm-up, then the mean and spread over seeds."""
    per: dict[int, list[dict[str, float]]] = {d: [] for d in since_days}
    for seed in seeds:
        t0 = time.process_time()
        txs = simulate(seed, days)
        t1 = time.process_time()
        scores, rules, learner = score_in_process(txs, delay_days, label_places)
        t2 = time.process_time()
        frauds = sum(row[4] for row in txs)
        print(
            f"seed {seed}: {len(txs)} transactions, {frauds} frauds "
            f"({frauds / len(txs):.2%}); simulate {t1 - t0:.0f} CPU-s, score "
            f"{t2 - t1:.0f} CPU-s ({(t2 - t1) / len(txs) * 1e6:.0f} us/txn), "
            f"{learner.frauds} frauds learned",
            file=sys.stderr,
        )
        for d in since_days:
            learned, rule = report(txs, scores, d), report(txs, rules, d)
            per[d].append(learned)
            print(
                f"  since day {d:3d}: learned "
                + " ".join(f"{k} {v:.3f}" for k, v in learned.items())
                + f" | rules ap {rule['ap']:.3f} cp100 {rule['cp100']:.3f}",
                file=sys.stderr,
            )
    summary: dict[str, Any] = {}
    for d, results in per.items():
        summary[f"since_day_{d}"] = {
            k: {
                "mean": round(statistics.fmean(r[k] for r in results), 4),
                "min": round(min(r[k] for r in results), 4),
                "max": round(max(r[k] for r in results), 4),
            }
            for k in results[0]
        }
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="path prefix of the two files")
    p.add_argument("--days", type=int, default=183)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--delay-days", type=int, default=7)
    p.add_argument("--label-places", action="store_true", help="labels name card and terminal")
    p.add_argument("--evaluate", action="store_true", help="score in-process and evaluate")
    p.add_argument("--seeds", default="0,1,2", help="with --evaluate: comma-separated seeds")
    p.add_argument("--since-days", default="30,91", help="with --evaluate: warm-ups in days")
    args = p.parse_args()
    if args.evaluate:
        seeds = [int(s) for s in args.seeds.split(",")]
        since = [int(s) for s in args.since_days.split(",")]
        summary = evaluate_seeds(seeds, args.days, since, args.delay_days, args.label_places)
        print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        return
    if not args.out:
        p.error("--out is required without --evaluate")
    n, frauds = write(args.out, args.seed, args.days, args.delay_days, args.label_places)
    print(f"transactions: {n}\nfrauds: {frauds}")


if __name__ == "__main__":
    main()
