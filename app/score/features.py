"""The streaming features of one transaction, computed from what is known when it is scored.

Sources, all bounded:
- the card's state *before* this transaction (`CardState`): daily buckets of count and amount
  over the last 31 days, Welford mean/stddev over its life, the ts of its previous transaction,
  its recent (ts, amount) entries;
- the rules' outcomes on this transaction (the six `RuleHit`s);
- the confirmed-fraud labels received so far, per place (terminal, else merchant) and per card
  (`LabelLookup`, held by the learner): only labels whose feedback ts is at or before this
  transaction's ts count, so a label "from the future" in a replayed file never leaks in;
- the transaction itself: amount, hour of day, weekend.

Every feature is a float, finite, and of modest range (logs and clipped ratios), so the
online model's standardisation sees no outliers that would dominate a step. The order of
`FEATURES` is the order of the vector; it is part of the learned state (a snapshot records it).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Protocol

from app.contract.events import Transaction, place_key
from app.detect.config import RULES, FraudConfig
from app.detect.hits import RuleHit
from app.detect.state import DAY_MS, CardState

HOUR_MS = 3_600_000
#: Habit windows in days (daily buckets: the last N calendar days, today included; see
#: `CardState.habits`).
HABIT_WINDOWS = (1, 7, 30)
#: Label windows in days (feedback ts in (ts - N days, ts]).
LABEL_WINDOWS = (1, 7, 28)
#: "amount >= X" steps (a 1-2-5 series): lets a linear model score amount bands apart.
AMOUNT_STEPS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
#: "amount >= R x the card's 30-day mean" steps: a habit broken by how much, not just "more"
#: (a piecewise curve of the ratio for a linear model; finer than 2/3/5: handbook shape, 60
#: days, AP 0.688 -> 0.693, compromised cards 0.700 -> 0.714).
RATIO_STEPS = (1.5, 2, 2.5, 3, 4, 5, 7)
_LOG_RATIO_STEPS = tuple(math.log(r) for r in RATIO_STEPS)
_LOG_TWO = math.log(2)
#: Weeks of a place's fraud episode told apart (the last bin: that many weeks or more).
EPISODE_WEEKS = 6
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


class LabelLookup(Protocol):
    """The distinct transactions currently labelled fraud, per key, and places' volumes."""

    def fraud_labels(self, key: str) -> Collection[tuple[int, int]]:
        """(feedback ts, transaction ts or -1 when unknown) per fraud label; `key` is a place
        (`t:<terminal>`, `m:<merchant>`) or a card (`c:<card_id>`)."""
        ...

    def place_volume(self, place: str, since_day: int, until_day: int | None = None) -> int:
        """Transactions seen at `place` on days in [`since_day`, `until_day`] (no end: today)."""
        ...

    @property
    def risk_delay_days(self) -> int:
        """Days after which a transaction's label is taken as known."""
        ...


def _names() -> tuple[str, ...]:
    names = ["amount_log"]
    names += [f"amount_vs_mean_{d}d" for d in HABIT_WINDOWS]
    names += [f"count_{d}d" for d in HABIT_WINDOWS]
    names += ["mean_amount_30d", "no_history_30d", "amount_zscore", "since_previous", "first_txn"]
    names += [f"place_frauds_{d}d" for d in LABEL_WINDOWS]
    names += ["place_fraud_share"]
    names += [f"place_risk_{d}d" for d in LABEL_WINDOWS]
    names += [f"place_risk_7d_episode_week_{w}" for w in range(EPISODE_WEEKS)]
    names += [f"card_frauds_{d}d" for d in LABEL_WINDOWS]
    names += [f"rule_{r}" for r in RULES]
    names += ["velocity_count", "hour_sin", "hour_cos", "night", "weekend"]  # whole hours, UTC
    names += [f"amount_over_{a}" for a in AMOUNT_STEPS]
    names += [f"amount_{r}x_mean_30d" for r in RATIO_STEPS]
    names += ["flagged_card_high_amount"]
    return tuple(names)


FEATURES: tuple[str, ...] = _names()
N_FEATURES = len(FEATURES)
_RULE_SLOT = {r: i for i, r in enumerate(RULES)}
_NO_RULES = (0.0,) * len(RULES)


_NO_LABELS = (0.0, 0.0, 0.0)
_NO_RISK = (0.0,) * (3 + EPISODE_WEEKS)
_LABEL_SPANS = tuple(d * DAY_MS for d in LABEL_WINDOWS)
_LOG1P = tuple(math.log1p(n) for n in range(256))
#: sin, cos of the hour of day on the 24-hour circle, and "night" (00-06 UTC), per whole hour.
_HOURS = tuple(
    (math.sin(2 * math.pi * h / 24), math.cos(2 * math.pi * h / 24), 1.0 if h < 6 else 0.0)
    for h in range(24)
)


def _log1p_count(n: int) -> float:
    return _LOG1P[n] if n < 256 else math.log1p(n)


def _label_counts(labels: Collection[tuple[int, int]], ts: int) -> tuple[float, float, float]:
    """log1p of the labels with feedback ts in (ts - N days, ts], for each label window."""
    if not labels:
        return _NO_LABELS
    c1 = c7 = c28 = 0
    s1, s7, s28 = _LABEL_SPANS
    for t, _ in labels:
        age = ts - t
        if age < 0 or age >= s28:
            continue
        c28 += 1
        if age < s7:
            c7 += 1
            if age < s1:
                c1 += 1
    return _log1p_count(c1), _log1p_count(c7), _log1p_count(c28)


def _place_risk(
    labels: LabelLookup, place: str, held: Collection[tuple[int, int]], ts: int, today: int
) -> Sequence[float]:
    """The handbook's terminal risk: the share of the place's transactions of the days
    `delay + 1 .. delay + N` ago that are labelled fraud, for each label window N (days whose
    labels have all come, if labels take `delay`; only labels received by `ts` count). Unlike
    `place_fraud_share` it is 1 at a place where everything is fraud as soon as the first
    labels come, and falls back to 0 a window after the fraud stopped.

    Then the 7-day risk again, in the slot of the episode's age in weeks (days since the
    oldest labelled fraud held for the place): for the first days after a fraud episode ends
    its labels still say "all fraud", and only its age can tell a linear model that such
    episodes have usually ended by then (the weights of the slots are learned)."""
    last = today - labels.risk_delay_days - 1
    c1 = c7 = c28 = 0
    w1, w7, w28 = LABEL_WINDOWS
    first = today
    for t, tx in held:
        if t > ts or tx < 0:
            continue
        tx_day = tx // DAY_MS
        if tx_day < first:
            first = tx_day
        age = last - tx_day  # 0: the window's most recent day
        if 0 <= age < w28:
            c28 += 1
            if age < w7:
                c7 += 1
                if age < w1:
                    c1 += 1
    if not c28:
        return _NO_RISK
    out = []
    for c, w in ((c1, w1), (c7, w7), (c28, w28)):
        if c:
            volume = labels.place_volume(place, last - w + 1, last)
            share = c / volume if volume else 1.0
            out.append(1.0 if share > 1.0 else share)
        else:
            out.append(0.0)
    episode = [0.0] * EPISODE_WEEKS
    week = (today - first) // 7
    episode[week if week < EPISODE_WEEKS else EPISODE_WEEKS - 1] = out[1]
    return out + episode


def extract(
    txn: Transaction,
    state: CardState,
    hits: Sequence[RuleHit],
    labels: LabelLookup,
    config: FraudConfig,
) -> list[float]:
    """The feature vector of `txn` (in `FEATURES` order), from `state` before it is counted."""
    ts = txn.ts
    amount = txn.amount
    today = ts // DAY_MS
    log = math.log
    log_amount = log(amount + 1.0)
    x: list[float] = [log_amount]
    n1, s1, n7, s7, n30, s30 = state.habits(today)
    for n, total in ((n1, s1), (n7, s7), (n30, s30)):
        if n:
            r = log_amount - log(total / n + 1.0)
            x.append(-3.0 if r < -3.0 else 5.0 if r > 5.0 else r)
        else:
            x.append(0.0)
    x += (_log1p_count(n1), _log1p_count(n7), _log1p_count(n30))
    if n30:
        x += (log(s30 / n30 + 1.0), 0.0)
    else:
        x += (0.0, 1.0)
    if state.count >= 2:
        std = state.stddev
        z = (amount - state.mean) / std if std > 0 else (0.0 if amount == state.mean else 10.0)
        x.append(-10.0 if z < -10.0 else 10.0 if z > 10.0 else z)
    else:
        x.append(0.0)
    last = state.last_ts
    if last is None:
        x += (0.0, 1.0)
    else:
        x += (math.log1p((ts - last) / 1000.0) if ts > last else 0.0, 0.0)
    place = place_key(txn.terminal_id, txn.merchant_id)
    if place is not None:
        place_labels = labels.fraud_labels(place)
        counts = _label_counts(place_labels, ts)
        x += counts
        # The place's fraud share: labels received in 28 days over its transactions of the last
        # 35 (a label comes days after its transaction): a busy shop with two chargebacks is
        # not a skimmed terminal where half the payments come back.
        if counts[2]:
            volume = labels.place_volume(place, today - 35)
            share = math.expm1(counts[2]) / volume if volume else 1.0
            x.append(1.0 if share > 1.0 else share)
        else:
            x.append(0.0)
        x += _place_risk(labels, place, place_labels, ts, today) if place_labels else _NO_RISK
    else:
        x += _NO_LABELS
        x.append(0.0)
        x += _NO_RISK
    card_labels = _label_counts(labels.fraud_labels("c:" + txn.card_id), ts)
    x += card_labels
    if hits:
        rules = [0.0] * len(RULES)
        for hit in hits:
            rules[_RULE_SLOT[hit.rule]] = 1.0
        x += rules
    else:
        x += _NO_RULES
    x.append(_log1p_count(state.count_in(ts - config.velocity_window_ms, ts) + 1))
    x += _HOURS[(ts % DAY_MS) // HOUR_MS]
    x.append(1.0 if (today + _EPOCH_WEEKDAY) % 7 >= 5 else 0.0)
    x += [1.0 if amount >= step else 0.0 for step in AMOUNT_STEPS]
    ratio = x[3]  # amount_vs_mean_30d: log(amount + 1) - log(mean + 1), 0 without history
    x += [1.0 if ratio >= step else 0.0 for step in _LOG_RATIO_STEPS]
    # The one cross feature: a card with confirmed fraud, now spending far above (2 x) its
    # habit (a compromised card keeps being used, with inflated amounts, after its first
    # chargeback).
    x.append(1.0 if card_labels[2] and ratio >= _LOG_TWO else 0.0)
    return x


def describe(name: str, value: float) -> str:
    """A feature and its value as an analyst reads it (`amount 5.1 x the card's 30-day mean`)."""
    if name == "amount_band":
        return f"amount {math.expm1(value):.2f} in a band with a learned risk"
    if name == "amount_log":
        return f"amount {math.expm1(value):.2f}"
    if name.startswith("amount_vs_mean_"):
        days = name.removeprefix("amount_vs_mean_").removesuffix("d")
        ratio = math.exp(value)
        return f"amount {ratio:.1f} x the card's {days}-day mean"
    if name.startswith("count_"):
        days = name.removeprefix("count_").removesuffix("d")
        return f"{round(math.expm1(value))} card transactions in {days} days"
    if name == "mean_amount_30d":
        return f"30-day mean amount {math.expm1(value):.2f}"
    if name == "no_history_30d":
        return "no card history in 30 days" if value else "card has 30-day history"
    if name == "amount_zscore":
        return f"amount {value:.1f} stddev from the card's mean"
    if name == "since_previous":
        return f"{_span(math.expm1(value))} since the card's previous transaction"
    if name == "first_txn":
        return "first transaction of the card" if value else "card seen before"
    if name.startswith("place_risk_7d_episode_week_"):
        week = int(name.rsplit("_", 1)[1])
        more = "+" if week == EPISODE_WEEKS - 1 else ""
        return f"{value:.0%} fraud at this terminal/merchant, in week {week}{more} of its episode"
    if name.startswith("place_risk_"):
        days = name.removeprefix("place_risk_").removesuffix("d")
        return (
            f"{value:.0%} of this terminal/merchant's transactions of {days} days a label delay"
            " ago labelled fraud"
        )
    if name == "place_fraud_share":
        return f"{value:.0%} of recent transactions at this terminal/merchant labelled fraud"
    if name.startswith("place_frauds_") or name.startswith("card_frauds_"):
        where = "this terminal/merchant" if name.startswith("place") else "this card"
        days = name.rsplit("_", 1)[1].removesuffix("d")
        return f"{round(math.expm1(value))} fraud labels at {where} in {days} days"
    if name.startswith("rule_"):
        return f"rule {name.removeprefix('rule_')} {'fired' if value else 'did not fire'}"
    if name == "velocity_count":
        return f"{round(math.expm1(value))} card transactions in the velocity window"
    if name in ("hour_sin", "hour_cos"):
        return "time of day"
    if name == "night":
        return "at night (00-06 UTC)" if value else "daytime"
    if name == "weekend":
        return "on a weekend" if value else "on a weekday"
    if name.startswith("amount_") and name.endswith("x_mean_30d"):
        times = name.removeprefix("amount_").removesuffix("x_mean_30d")
        above = "at least" if value else "under"
        return f"amount {above} {times} x the card's 30-day mean"
    if name == "flagged_card_high_amount":
        return "card with confirmed fraud spending far above its habit"
    if name.startswith("amount_over_"):
        bar = name.removeprefix("amount_over_")
        return f"amount at least {bar}" if value else f"amount under {bar}"
    return f"{name} {value:g}"


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
