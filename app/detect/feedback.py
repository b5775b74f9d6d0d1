"""The feedback side of `compromised_terminal`, as pure values and functions.

Labels arrive keyed by `txn_id`, but the rule asks per place (terminal, else merchant). So the
work is split in two steps that a stream topology can run on differently keyed tables:

1. per `txn_id`: keep the `FeedbackRecord` processed last and turn each new label into
   `PlaceDelta`s (`feedback_deltas`): only the last record of a txn counts, with its label, ts
   and the place it names, so a flip to legit or a move to another place removes the old entry;
2. per place: apply those deltas to a `PlaceState` (txn_id -> feedback ts of fraud labels).

`InMemoryPlaces` / `InMemoryFeedback` run both steps in one process for `vigil replay` and tests.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from app.contract.events import Feedback, FeedbackLabel
from app.detect.codec import pack, unpack
from app.detect.config import FraudConfig

RECORD_VERSION = 1
PLACE_VERSION = 1


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """The feedback processed last for one txn_id: what the rule counts for that txn."""

    label: FeedbackLabel
    ts: int
    place: str | None

    @classmethod
    def of(cls, feedback: Feedback) -> FeedbackRecord:
        """The record a feedback event leaves behind."""
        return cls(feedback.label, feedback.ts, feedback.place)

    def to_bytes(self) -> bytes:
        """Versioned layout `[1, label, ts, place]`."""
        return pack(RECORD_VERSION, self.label, self.ts, self.place)

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray | memoryview | str) -> FeedbackRecord:
        """Read a value written by `to_bytes` (raises `StateFormatError` when it cannot)."""
        label, ts, place = unpack(raw, "feedback record", RECORD_VERSION, 3)
        return cls(label, ts, place)


@dataclass(frozen=True, slots=True)
class PlaceDelta:
    """Set (`fraud_ts` given) or remove (`fraud_ts` None) one txn's fraud label at a place."""

    place: str
    txn_id: str
    fraud_ts: int | None


def feedback_deltas(
    new: Feedback, previous: FeedbackRecord | None
) -> tuple[FeedbackRecord, list[PlaceDelta]]:
    """Replace `previous` (the txn's last record, if any) by `new`; say what changes per place.

    Returns the record to store for `new.txn_id` and the deltas to apply, each to the
    `PlaceState` of its place. A label naming no terminal and no merchant counts nowhere but
    still supersedes the previous record.
    """
    record = FeedbackRecord.of(new)
    if record == previous:
        return record, []
    deltas: list[PlaceDelta] = []
    counts = record.label == "fraud" and record.place is not None
    if (
        previous is not None
        and previous.label == "fraud"
        and previous.place is not None
        and not (counts and previous.place == record.place)
    ):
        deltas.append(PlaceDelta(previous.place, new.txn_id, None))
    if counts:
        assert record.place is not None
        deltas.append(PlaceDelta(record.place, new.txn_id, record.ts))
    return record, deltas


class PlaceState:
    """Fraud labels at one place: txn_id -> feedback ts, bounded in time.

    Labels older than (newest label held - 2 x terminal window) are dropped: a transaction can
    only look back one window from its own ts, and twice the window leaves a full window of
    slack for transactions that run behind the feedback stream. The bound depends only on the
    labels held, so an empty state is the same as no state (a table may delete it).
    """

    __slots__ = ("_fraud",)

    def __init__(self, fraud: dict[str, int] | None = None) -> None:
        """A place with the given labels (none by default)."""
        self._fraud: dict[str, int] = fraud if fraud is not None else {}

    def fraud_times(self) -> Collection[int]:
        """Feedback ts of each txn labelled fraud here (a live view, not a copy)."""
        return self._fraud.values()

    def __len__(self) -> int:
        return len(self._fraud)

    def apply(self, delta: PlaceDelta, config: FraudConfig) -> None:
        """Apply one delta for this place, then drop labels past the retention bound."""
        fraud = self._fraud
        ts = delta.fraud_ts
        if ts is None:
            fraud.pop(delta.txn_id, None)
            return
        fraud.pop(delta.txn_id, None)  # its previous ts is superseded either way
        newest = max(fraud.values(), default=ts)
        if ts > newest:
            newest = ts
        horizon = newest - 2 * config.terminal_window_ms
        if ts >= horizon:
            fraud[delta.txn_id] = ts
        if any(t < horizon for t in fraud.values()):
            self._fraud = {k: t for k, t in fraud.items() if t >= horizon}

    def to_bytes(self) -> bytes:
        """Versioned layout `[1, [txn_id...], [ts...]]`."""
        return pack(PLACE_VERSION, list(self._fraud), list(self._fraud.values()))

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray | memoryview | str) -> PlaceState:
        """Read a value written by `to_bytes` (raises `StateFormatError` when it cannot)."""
        ids, times = unpack(raw, "place state", PLACE_VERSION, 2)
        return cls(dict(zip(ids, times, strict=True)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PlaceState):
            return NotImplemented
        return self._fraud == other._fraud

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PlaceState({self._fraud!r})"


class InMemoryPlaces:
    """All places in one dict: a `PlaceLookup` with `apply`, for replay and tests."""

    def __init__(self, config: FraudConfig | None = None) -> None:
        """Use the same config as the detector, so pruning matches the live tables."""
        self._config = config if config is not None else FraudConfig()
        self._places: dict[str, PlaceState] = {}

    def fraud_label_times(self, place: str) -> Collection[int]:
        """Feedback ts of each txn currently labelled fraud at `place`."""
        state = self._places.get(place)
        return state.fraud_times() if state is not None else ()

    def apply(self, delta: PlaceDelta) -> None:
        """Apply a delta to its place; a place left without labels is forgotten."""
        state = self._places.get(delta.place)
        if state is None:
            if delta.fraud_ts is None:
                return
            state = self._places[delta.place] = PlaceState()
        state.apply(delta, self._config)
        if not len(state):
            del self._places[delta.place]

    def get(self, place: str) -> PlaceState | None:
        """The state of one place, if it holds any label."""
        return self._places.get(place)

    def __len__(self) -> int:
        return len(self._places)


class InMemoryFeedback:
    """Both feedback steps in one process: last record per txn_id, then per-place labels."""

    def __init__(self, config: FraudConfig | None = None) -> None:
        """Start with no labels; `places` is the lookup to hand to `FraudDetector.process`."""
        self.records: dict[str, FeedbackRecord] = {}
        self.places = InMemoryPlaces(config)

    def process(self, feedback: Feedback) -> list[PlaceDelta]:
        """Take one feedback event; return the deltas it applied."""
        record, deltas = feedback_deltas(feedback, self.records.get(feedback.txn_id))
        self.records[feedback.txn_id] = record
        for delta in deltas:
            self.places.apply(delta)
        return deltas
