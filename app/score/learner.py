"""Delayed-label learning: which examples the model learns, when, and with which label.

The contract's rule, in event time: a transaction's features *as they were when it was scored*
wait `label_delay`; a `fraud` label makes it a positive; a `legit` label, or no fraud label
within `label_delay`, a negative; a fraud label that arrives after its transaction was learned
as a negative is learned as a positive then (its features are kept `late_label` longer for
that). Event time is the learner's own clock: the highest ts of the examples and labels it has
been fed, so the outcome depends only on what it was fed, in which order, never on the wall
clock (replay and every worker agree).

The learner also keeps the fraud labels it has received per place (the transaction's terminal,
else merchant) and per card, for the `place_frauds_*` / `card_frauds_*` features. The feedback
may name the terminal and card; where it does not, the held example's own do.

Bounded: examples are held for `label_delay + late_label` of event time and at most
`max_examples` of them; labels per place/card, and transactions per place and day, for the
label delay plus a day plus the widest label window (the place's risk windows).
"""

from __future__ import annotations

import math
import zlib
from array import array
from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from app.contract.events import Feedback
from app.detect.state import DAY_MS
from app.score.config import ScoreConfig
from app.score.features import FEATURES, LABEL_WINDOWS, N_FEATURES
from app.score.model import BANDS, TILINGS, OnlineLogistic

PENDING, NEGATIVE, SKIPPED, POSITIVE = 0, 1, 2, 3
#: What a label or an expiry did, for `vigil_model_labels_total{kind}`.
LEARN_KINDS = (
    "fraud",
    "late_fraud",
    "legit",
    "expired",
    "unsampled",
    "ignored",
    "parked",
    "unknown",
)
#: Days of per-place transaction counts kept: the widest label window plus a label delay.
VOLUME_DAYS = 35


@dataclass(slots=True)
class Example:
    """One scored transaction held for learning: where it happened and its features."""

    txn_id: str
    card_id: str
    place: str | None
    ts: int
    #: The features as scored (a float array: compact, and not tracked by the garbage collector,
    #: which matters with a week of examples held); None once nothing more can be learned.
    x: array[float] | None
    status: int = PENDING


def sampled(txn_id: str, rate: float) -> bool:
    """Whether a negative of this txn is learned: a hash, the same on every worker and run."""
    return rate >= 1.0 or zlib.crc32(txn_id.encode()) < rate * 4294967296.0


class DelayedLearner:
    """The model plus everything needed to feed it delayed labels, as one ordered state."""

    def __init__(self, config: ScoreConfig | None = None) -> None:
        """An untrained model with no examples held."""
        self.config = config if config is not None else ScoreConfig()
        c = self.config
        self.model = OnlineLogistic(
            N_FEATURES, c.learning_rate, c.l2, math.log(c.negative_sample), band_feature=0
        )
        # The place's risk windows reach back risk_delay + the widest window (+1: a whole day
        # past the delay), so volumes and labels are kept that long.
        reach = self.risk_delay_days + 1 + max(LABEL_WINDOWS)
        self.volume_days = max(VOLUME_DAYS, reach)
        self._label_span_ms = reach * DAY_MS
        self.clock: int | None = None
        self.examples: dict[str, Example] = {}
        self._pending: deque[Example] = deque()  # waiting for label_delay (arrival order)
        self._late: deque[Example] = deque()  # learned or skipped, kept for late fraud labels
        # place or "c:card" -> txn_id -> (label ts, the transaction's ts or -1 when unknown)
        self._labels: dict[str, dict[str, tuple[int, int]]] = {}
        self._label_log: deque[tuple[int, str, str]] = deque()  # (ts, key, txn_id) for expiry
        # Labels that arrived before their transaction's example (in a worker the two come
        # from different partitions' transactions): applied when it arrives, else dropped as
        # "unknown" once label_delay of event time has passed.
        # Transactions per place and day (examples seen), for the places' fraud share.
        self._volume: dict[str, dict[int, int]] = {}
        self._volume_log: deque[tuple[int, str]] = deque()  # (day, place) in creation order
        self._parked: dict[str, Feedback] = {}
        self._parked_log: deque[Feedback] = deque()
        self.frauds = 0  # positives learned
        self.updates = 0  # examples learned (positives and negatives)
        self.counts: dict[str, int] = dict.fromkeys(LEARN_KINDS, 0)
        self.offset = 0  # position in the training stream (a worker: the topic's next offset)
        self.fed = 0  # examples and labels fed

    # -- reading -------------------------------------------------------------------------------

    def fraud_times(self, key: str) -> Collection[int]:
        """Feedback ts of fraud labels received for a place or `c:<card>`."""
        held = self._labels.get(key)
        return [t for t, _ in held.values()] if held is not None else ()

    def fraud_labels(self, key: str) -> Collection[tuple[int, int]]:
        """LabelLookup: (feedback ts, transaction ts or -1) of the fraud labels received for a
        place or `c:<card>` (the transaction's ts is known when its example was held)."""
        held = self._labels.get(key)
        return held.values() if held is not None else ()

    def place_volume(self, place: str, since_day: int, until_day: int | None = None) -> int:
        """Transactions seen at `place` on days in [`since_day`, `until_day`] (the last
        `volume_days` days are kept)."""
        days = self._volume.get(place)
        if not days:
            return 0
        if until_day is None:
            return sum(n for day, n in days.items() if day >= since_day)
        return sum(n for day, n in days.items() if since_day <= day <= until_day)

    @property
    def risk_delay_days(self) -> int:
        """LabelLookup: days after which a transaction's label is taken as known (the label
        delay, rounded up): the place's risk windows end that many days ago."""
        return -(-self.config.label_delay_ms // DAY_MS)

    @property
    def active(self) -> bool:
        """Whether the model's score is used (it has learned `min_fraud_labels` frauds)."""
        return self.frauds >= self.config.min_fraud_labels

    @property
    def size(self) -> int:
        """Entries held: examples plus place/card labels (the bounded learned state)."""
        return (
            len(self.examples)
            + len(self._label_log)
            + len(self._parked_log)
            + len(self._volume_log)
        )

    # -- feeding -------------------------------------------------------------------------------

    def add_example(self, example: Example) -> None:
        """A transaction was scored with these features: hold it until its label is known."""
        self.fed += 1
        if example.txn_id in self.examples:
            return  # the same transaction counted again later (after the duplicate window)
        self.examples[example.txn_id] = example
        self._pending.append(example)
        if example.place is not None:
            day = example.ts // DAY_MS
            days = self._volume.setdefault(example.place, {})
            if day not in days:
                days[day] = 0
                self._volume_log.append((day, example.place))
            days[day] += 1
        parked = self._parked.pop(example.txn_id, None)
        if parked is not None:
            self.counts[self._label(parked, example)] += 1
        self._advance(example.ts)
        cap = self.config.max_examples
        while len(self.examples) > cap:
            if self._late:
                self._forget(self._late.popleft())
            else:
                self._expire(self._pending.popleft())

    def add_label(self, feedback: Feedback) -> str:
        """A label arrived: learn from it if its transaction is held; say what it did."""
        self.fed += 1
        ex = self.examples.get(feedback.txn_id)
        if ex is None:
            if feedback.label == "fraud":
                self._index(feedback, ex)
            else:
                self._unindex(feedback.txn_id, feedback, ex)
            self._parked[feedback.txn_id] = feedback  # the last label of a txn counts
            self._parked_log.append(feedback)
            kind = "parked"
        else:
            kind = self._label(feedback, ex)
        self.counts[kind] += 1
        self._advance(feedback.ts)
        return kind

    def _label(self, feedback: Feedback, ex: Example) -> str:
        """Learn from a label of a held example; say what it did."""
        if feedback.label == "fraud":
            self._index(feedback, ex)
            if ex.status == POSITIVE:
                kind = "ignored"
            else:
                kind = "fraud" if ex.status == PENDING else "late_fraud"
                self._learn(ex, 1)
                ex.status = POSITIVE
                self.frauds += 1
        else:
            self._unindex(feedback.txn_id, feedback, ex)
            # not pending: already learned, or a fraud label said otherwise first
            kind = "ignored" if ex.status != PENDING else self._negative(ex, "legit")
        return kind

    # -- internals -----------------------------------------------------------------------------

    def _learn(self, ex: Example, y: int) -> None:
        if ex.x is not None:
            self.model.learn(ex.x, y)
            self.updates += 1

    def _negative(self, ex: Example, kind: str) -> str:
        if sampled(ex.txn_id, self.config.negative_sample):
            self._learn(ex, 0)
            ex.status = NEGATIVE
            return kind
        ex.status = SKIPPED
        return "unsampled"

    def _expire(self, ex: Example) -> None:
        """label_delay passed (or the cap was reached): a still-pending example is a negative."""
        if ex.status == PENDING:
            self.counts[self._negative(ex, "expired")] += 1
        if ex.status == POSITIVE:
            ex.x = None  # nothing more to learn from it; its id is kept to ignore repeats
        self._late.append(ex)

    def _forget(self, ex: Example) -> None:
        if self.examples.get(ex.txn_id) is ex:
            del self.examples[ex.txn_id]

    def _advance(self, ts: int) -> None:
        if self.clock is not None and ts <= self.clock:
            return
        self.clock = ts
        c = self.config
        pending, late = self._pending, self._late
        due = ts - c.label_delay_ms
        while pending and pending[0].ts <= due:
            self._expire(pending.popleft())
        gone = due - c.late_label_ms
        while late and late[0].ts <= gone:
            self._forget(late.popleft())
        parked, log_p = self._parked, self._parked_log
        while log_p and log_p[0].ts <= due:
            fb = log_p.popleft()
            if parked.get(fb.txn_id) is fb:
                del parked[fb.txn_id]
                self.counts["unknown"] += 1
        old_day = ts // DAY_MS - self.volume_days
        vlog, volume = self._volume_log, self._volume
        while vlog and vlog[0][0] < old_day:
            day, place = vlog.popleft()
            days = volume.get(place)
            if days is not None:
                days.pop(day, None)
                if not days:
                    del volume[place]
        horizon = ts - self._label_span_ms
        log = self._label_log
        while log and log[0][0] <= horizon:
            t, key, txn_id = log.popleft()
            held = self._labels.get(key)
            if held is not None and held.get(txn_id, (None,))[0] == t:
                del held[txn_id]
                if not held:
                    del self._labels[key]

    def _keys(self, feedback: Feedback, ex: Example | None) -> list[str]:
        place = feedback.place or (ex.place if ex is not None else None)
        card = feedback.card_id or (ex.card_id if ex is not None else None)
        keys = [place] if place is not None else []
        if card is not None:
            keys.append("c:" + card)
        return keys

    def _index(self, feedback: Feedback, ex: Example | None) -> None:
        self._unindex(feedback.txn_id, feedback, ex)  # only the last label of a txn counts
        tx_ts = ex.ts if ex is not None else -1
        for key in self._keys(feedback, ex):
            self._labels.setdefault(key, {})[feedback.txn_id] = (feedback.ts, tx_ts)
            self._label_log.append((feedback.ts, key, feedback.txn_id))

    def _unindex(self, txn_id: str, feedback: Feedback, ex: Example | None) -> None:
        for key in self._keys(feedback, ex):
            held = self._labels.get(key)
            if held is not None and held.pop(txn_id, None) is not None and not held:
                del self._labels[key]

    # -- snapshots (layout: app.score.snapshot) ----------------------------------------------

    def snapshot_parts(self, **extra: Any) -> Iterator[bytes]:
        """The snapshot (everything learned and held, with the stream position it reflects and
        `extra` fields such as the settings' fingerprint), one section at a time."""
        from app.score import snapshot

        return snapshot.parts(self, **extra)

    def to_bytes(self, **extra: Any) -> bytes:
        """The whole snapshot at once (`snapshot_parts` joined)."""
        return b"".join(self.snapshot_parts(**extra))

    @staticmethod
    def snapshot_head(raw: bytes) -> dict[str, Any]:
        """The JSON head of a snapshot (ValueError when it is not one of this layout)."""
        from app.score import snapshot

        return snapshot.read_head(raw)

    @classmethod
    def from_bytes(cls, raw: bytes, config: ScoreConfig | None = None) -> DelayedLearner:
        """A learner in the state `to_bytes` wrote (ValueError when it cannot be used)."""
        from app.score import snapshot

        return snapshot.restore(raw, config)

    def summary(self) -> dict[str, Any]:
        """The read-only view of `/model`: version, labels learned, weights."""
        weights = dict(zip(FEATURES, self.model.weights, strict=True))
        model = self.model
        width = model.band_width
        fine = width / TILINGS  # the curve is constant between the grids' band edges
        size = (model.band_feature or 0) + 1  # a vector long enough to hold the band feature
        curve = {
            f"{math.expm1(i * fine):.2f}": round(w, 4)
            for i in range(BANDS * TILINGS)
            if (w := model.band_weight([(i + 0.5) * fine] * size))
        }
        return {
            "kind": "logistic" if self.active else "rules",
            "offset": self.offset,
            "fed": self.fed,
            "updates": self.updates,
            "frauds": self.frauds,
            "active": self.active,
            "min_fraud_labels": self.config.min_fraud_labels,
            "clock": self.clock,
            "examples_held": len(self.examples),
            "labels_held": len(self._label_log),
            "learned": dict(self.counts),
            "bias": self.model.bias,
            "weights": dict(sorted(weights.items(), key=lambda kv: -abs(kv[1]))),
            # the learned amount curve (all grids summed) per 5 % / TILINGS step, by its floor
            "amount_bands": curve,
        }
