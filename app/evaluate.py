"""`vigil evaluate SCORES LABELS`: how well scores rank fraud, as the fraud handbook measures it.

Metrics (Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud Detection*):
- AUC ROC: probability that a random fraud outranks a random legit transaction (ties count
  half);
- average precision: the mean of precision at each fraud, transactions ranked by score (ties
  taken as one step, as scikit-learn's `average_precision_score`);
- Card Precision@k: per day (UTC date of the transaction), each card's max score and max label
  over the day, the k highest-scored cards; precision = frauds among them / k; cards found
  compromised (fraud among a day's top k) are removed from the following days; the mean over
  days. Ties are broken by card id, so the figure is reproducible. Since a card found once is
  gone for the rest of the period, over months few compromised cards are left to find (a
  perfect ranking then scores well under 1); the handbook judges one test week at a time, so
  the report also gives the mean of CP@k over consecutive 7-day windows, each starting afresh
  (`card_precision_at_k_weekly`), and `--since`/`--until` pick one window;
- per rule: precision (frauds among the transactions it fired on) and recall (share of frauds
  it fired on); alert rate: share of transactions alerted.

SCORES is a `txn-scores.jsonl` (every transaction, `score`, `rules`) or a `fraud-alerts.jsonl`
(alerted transactions only: every other transaction of LABELS scores 0); envelopes or bare
values. LABELS has one line per transaction: `txn_id`, a label (`fraud` 0/1 or true/false, or
`label` "fraud"/"legit"), `card_id` and `ts` (RFC 3339 or epoch ms). `--score-field` picks the
score (`rule_score` in txn-scores is the rules' combined weight, for comparison).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from app.contract.timeutil import parse_ts

DAY_MS = 86_400_000


@dataclass(slots=True)
class Row:
    """One labelled transaction with its score."""

    txn_id: str
    card_id: str
    ts: int
    fraud: int
    score: float = 0.0
    alerted: bool = False
    rules: tuple[str, ...] = ()


def _value(obj: Any) -> Any:
    return obj["value"] if isinstance(obj, dict) and isinstance(obj.get("value"), dict) else obj


def _ts(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return parse_ts(value)


def _fraud(obj: dict[str, Any]) -> int:
    for key in ("fraud", "is_fraud", "TX_FRAUD"):
        if key in obj:
            return 1 if obj[key] in (1, True, "1", "true", "fraud") else 0
    return 1 if obj.get("label") == "fraud" else 0


def read_labels(lines: Iterable[bytes]) -> dict[str, Row]:
    """The labels file: txn_id -> Row (score 0 until a score is joined)."""
    rows: dict[str, Row] = {}
    for line in lines:
        if not line.strip():
            continue
        obj = _value(orjson.loads(line))
        card = obj.get("card_id", obj.get("CUSTOMER_ID"))
        ts = obj.get("ts", obj.get("event_ts", obj.get("TX_DATETIME")))
        txn_id = str(obj.get("txn_id", obj.get("TRANSACTION_ID")))
        rows[txn_id] = Row(txn_id, str(card), _ts(ts), _fraud(obj))
    return rows


def join_scores(rows: dict[str, Row], lines: Iterable[bytes], field: str = "score") -> int:
    """Put each score line's score on its row; return how many scores matched a label."""
    matched = 0
    for line in lines:
        if not line.strip():
            continue
        obj = _value(orjson.loads(line))
        row = rows.get(str(obj.get("txn_id")))
        if row is None:
            continue
        matched += 1
        row.score = float(obj.get(field) or 0.0)
        rules = obj.get("rules") or []
        row.rules = tuple(r["rule"] if isinstance(r, dict) else str(r) for r in rules)
        row.alerted = "alert_id" in obj
    return matched


def auc_roc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve by ranks (ties averaged); NaN without both classes."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return float("nan")
    rank_sum = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mid = (i + j) / 2 + 1
        rank_sum += mid * sum(labels[order[k]] for k in range(i, j + 1))
        i = j + 1
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def average_precision(scores: Sequence[float], labels: Sequence[int]) -> float:
    """sum over thresholds of (recall step) x precision, highest scores first (ties together)."""
    pos = sum(labels)
    if not pos:
        return float("nan")
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    tp = fp = 0
    ap = 0.0
    i = 0
    while i < len(order):
        j = i
        step_tp = 0
        while j < len(order) and scores[order[j]] == scores[order[i]]:
            step_tp += labels[order[j]]
            j += 1
        tp += step_tp
        fp += (j - i) - step_tp
        if step_tp:
            ap += (step_tp / pos) * (tp / (tp + fp))
        i = j
    return ap


WEEK_DAYS = 7


def weekly_card_precision_at_k(rows: Sequence[Row], k: int = 100) -> float:
    """CP@k of each consecutive 7-day window (from the first row's day), averaged."""
    if not rows:
        return float("nan")
    first = min(r.ts for r in rows) // DAY_MS
    weeks: dict[int, list[Row]] = defaultdict(list)
    for r in rows:
        weeks[(r.ts // DAY_MS - first) // WEEK_DAYS].append(r)
    values = [card_precision_at_k(weeks[w], k) for w in sorted(weeks)]
    return sum(values) / len(values)


def card_precision_at_k(rows: Iterable[Row], k: int = 100) -> float:
    """The handbook's CP@k with compromised cards removed from later days (mean over days)."""
    days: dict[int, dict[str, list[float]]] = defaultdict(dict)
    for r in rows:
        day = days[r.ts // DAY_MS]
        held = day.get(r.card_id)
        if held is None:
            day[r.card_id] = [r.score, r.fraud]
        else:
            held[0] = max(held[0], r.score)
            held[1] = max(held[1], r.fraud)
    caught: set[str] = set()
    per_day = []
    for d in sorted(days):
        cards = [(c, v) for c, v in days[d].items() if c not in caught]
        cards.sort(key=lambda cv: (-cv[1][0], cv[0]))
        top = cards[:k]
        found = [c for c, v in top if v[1]]
        per_day.append(len(found) / k)
        caught.update(found)
    return sum(per_day) / len(per_day) if per_day else float("nan")


def evaluate(rows: list[Row], k: int = 100) -> dict[str, Any]:
    """Every metric of the module docstring over `rows`."""
    scores = [r.score for r in rows]
    labels = [r.fraud for r in rows]
    frauds = sum(labels)
    per_rule: dict[str, dict[str, float]] = {}
    fired: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        for rule in r.rules:
            fired[rule].append(r.fraud)
    for rule, hits in sorted(fired.items()):
        per_rule[rule] = {
            "fired": len(hits),
            "precision": sum(hits) / len(hits),
            "recall": sum(hits) / frauds if frauds else float("nan"),
        }
    alerted = sum(1 for r in rows if r.alerted or r.rules)
    return {
        "transactions": len(rows),
        "frauds": frauds,
        "auc_roc": auc_roc(scores, labels),
        "average_precision": average_precision(scores, labels),
        f"card_precision_at_{k}": card_precision_at_k(rows, k),
        f"card_precision_at_{k}_weekly": weekly_card_precision_at_k(rows, k),
        "alert_rate": alerted / len(rows) if rows else float("nan"),
        "rules": per_rule,
    }


def run_evaluate(
    scores: str | Path,
    labels: str | Path,
    *,
    field: str = "score",
    k: int = 100,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> dict[str, Any]:
    """Read both files, join by txn_id, keep transactions in [since_ms, until_ms), evaluate."""
    with open(labels, "rb") as fh:
        rows = read_labels(fh)
    with open(scores, "rb") as fh:
        matched = join_scores(rows, fh, field)
    kept = [
        r
        for r in rows.values()
        if (since_ms is None or r.ts >= since_ms) and (until_ms is None or r.ts < until_ms)
    ]
    kept.sort(key=lambda r: (r.ts, r.txn_id))
    result = evaluate(kept, k)
    result["scored"] = matched
    return result


def format_report(result: dict[str, Any], k: int = 100) -> str:
    """The result as a few readable lines."""
    lines = [
        f"transactions {result['transactions']}  frauds {result['frauds']}  "
        f"scores matched {result['scored']}",
        f"AUC ROC {result['auc_roc']:.4f}  average precision {result['average_precision']:.4f}  "
        f"CP@{k} {result[f'card_precision_at_{k}']:.4f} (per 7-day window "
        f"{result[f'card_precision_at_{k}_weekly']:.4f})  alert rate {result['alert_rate']:.4f}",
    ]
    for rule, m in result["rules"].items():
        lines.append(
            f"  {rule:22} fired {m['fired']:7d}  precision {m['precision']:.3f}  "
            f"recall {m['recall']:.3f}"
        )
    return "\n".join(lines)
