"""`vigil replay`: the live detectors, run offline over JSONL files.

The same intake, the same fraud detector, the same label handling and the same cart engine as
the workers, fed in file order. Differences from a live worker, by design:
- time is event time only: the cart clock never advances with the wall clock, and at the end
  of input it stands at the highest cart-event ts seen (so what is due then fires);
- `detected_ts` is event time too (the transaction's ts; for carts, the cart clock), so a
  replay of the same input always writes the same bytes.
Compare replay with live output on every field but `detected_ts` (and `scored_ts`).

Risk scoring (`app.score`): every non-duplicate transaction is scored to `txn-scores.jsonl`
with the learner as it stands at that record, then its features join the learner; feedback is
learned from at its place in the file. A worker learns from the same records through its
training topic, in that topic's order, and scores with the model it has read so far: see the
README ("Risk scoring") for why live scores agree with replay's only within a tolerance.

One record never stops a replay: as in a worker (`agents.loop.run`), a record whose processing
raises is dead-lettered (`app.contract.intake.failure` words the reason) and whatever it
changed in the offline state is undone first.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import orjson

from app.cart.clock import EventClock
from app.cart.engine import CartEngine
from app.cart.state import CartState
from app.cart.store import DictCartStore
from app.contract import jsontext
from app.contract.deadletters import dead_letter
from app.contract.events import CartEvent, Feedback, Transaction
from app.contract.intake import (
    CART_EVENTS,
    FEEDBACK,
    TRANSACTIONS,
    UNKNOWN_KEY,
    Rejected,
    failure,
)
from app.detect.feedback import InMemoryFeedback, PlaceState
from app.detect.fraud import FraudDetector
from app.detect.state import CardState
from app.exceptions import DecodeError
from app.score.learner import DelayedLearner
from app.score.scorer import RiskScorer
from app.settings import Settings

log = logging.getLogger(__name__)

OUTPUT_FILES = {
    "fraud_alerts": "fraud-alerts.jsonl",
    "cart_abandoned": "cart-abandoned.jsonl",
    "cart_recovered": "cart-recovered.jsonl",
    "dead_letters": "dead-letters.jsonl",
    "txn_scores": "txn-scores.jsonl",
}


@dataclass(frozen=True, slots=True)
class Record:
    """One input record as read from a file, whatever the line format."""

    topic: str | None
    key: bytes | str | object | None
    value: bytes | None
    partition: int | None = None
    offset: int | None = None
    error: str | None = None  # the line itself could not be read


@dataclass(frozen=True, slots=True)
class Output:
    """One output record: which file/topic, its key and its value."""

    kind: str  # a key of OUTPUT_FILES
    topic: str
    key: str | None
    value: dict[str, Any]

    def line(self) -> bytes:
        """The output file's line for this record (without the newline)."""
        return orjson.dumps({"topic": self.topic, "key": self.key, "value": self.value})


def _copy_place(state: PlaceState | None) -> PlaceState | None:
    return None if state is None else PlaceState.from_bytes(state.to_bytes())


def read_records(lines: Iterable[bytes], topic: str | None) -> Iterator[Record]:
    """Parse envelope lines, `kcat -J` lines, or (with `topic`) bare event lines."""
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if topic is not None:
            yield Record(topic, UNKNOWN_KEY, line, None, number)
            continue
        try:
            # The envelope adds one level to the value's nesting limit.
            obj = jsontext.loads(line, jsontext.MAX_DEPTH + 1)
        except DecodeError as exc:
            reason = exc.message.removeprefix("value: ")
            if "nested deeper" in reason:
                reason = f"value nested deeper than {jsontext.MAX_DEPTH} levels"
            yield Record(None, None, line, None, number, f"line {number}: {reason}")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("topic"), str):
            yield Record(None, None, line, None, number, f"line {number}: no 'topic' field")
            continue
        key = obj.get("key")
        if isinstance(key, str) and jsontext.has_surrogate(key):
            key = key.encode("utf-8", "surrogatepass")  # bytes, as Kafka would deliver it
        # kcat -J holds the value in `payload`: JSON text, or (some producers) the object itself.
        raw = obj["payload"] if "payload" in obj and "value" not in obj else obj.get("value")
        value: bytes | None = None
        if isinstance(raw, str):
            value = raw.encode("utf-8", "surrogatepass")
        elif raw is not None:
            value = jsontext.dumps(raw)
        yield Record(
            _sanitize_topic(obj["topic"]),
            key,
            value,
            _position(obj.get("partition")),
            _position(obj.get("offset")),
        )


def _sanitize_topic(topic: str) -> str:
    return topic.encode("utf-8", "backslashreplace").decode("utf-8")


def _position(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _JournalStore(DictCartStore):
    """The replay's cart store, remembering what the current record changed (to undo it)."""

    __slots__ = ("_before",)

    def __init__(self) -> None:
        super().__init__()
        self._before: dict[str, CartState | None] = {}

    def begin(self) -> None:
        self._before.clear()

    def set(self, user_id: str, state: CartState) -> None:
        self._before.setdefault(user_id, self.get(user_id))
        super().set(user_id, state)

    def delete(self, user_id: str) -> None:
        self._before.setdefault(user_id, self.get(user_id))
        super().delete(user_id)

    def undo(self) -> None:
        for user_id, state in self._before.items():
            if state is None:
                super().delete(user_id)
            else:
                super().set(user_id, state)
        self._before.clear()


class Replayer:
    """Holds the offline state (cards, labels, carts) and turns records into outputs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.detector = FraudDetector(settings.fraud_config())
        self.scorer = RiskScorer(self.detector, settings.score_config())
        self.learner = DelayedLearner(settings.score_config())
        self.cards: dict[str, CardState] = {}
        self.feedback = InMemoryFeedback(self.detector.config)
        self._cart_store = _JournalStore()
        self.carts = CartEngine(settings.cart_config(), self._cart_store)
        self.counts: dict[str, int] = {"records": 0, "duplicates": 0, "skipped": 0}
        self._undo: list[Callable[[], None]] = []
        # What a record teaches the learner, applied only once its outputs are written (the
        # learner's steps cannot be undone).
        self._learn: list[Callable[[], object]] = []

    def feed(self, record: Record) -> list[Output]:
        """Process one record; return its outputs in order.

        The per-record guard: a record whose processing raises (or whose outputs cannot be
        written) is dead-lettered with `failure`'s reason and its changes are undone.
        """
        self.counts["records"] += 1
        self._undo.clear()
        self._learn.clear()
        self._cart_store.begin()
        try:
            outputs = self._feed(record)
            for o in outputs:
                o.line()  # an output that cannot be written fails here, inside the guard
        except Exception as exc:
            self._rollback()
            return [self._dead(record, failure(exc))]
        for learn in self._learn:
            learn()
        self.learner.offset += len(self._learn)
        return outputs

    def _rollback(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _feed(self, record: Record) -> list[Output]:
        s = self.settings
        if record.error is not None:
            return [self._dead(record, record.error)]
        if record.topic == s.topic_transactions:
            txn = TRANSACTIONS(record.value, record.key)
            return self._dead_or(record, txn) if isinstance(txn, Rejected) else self._txn(txn)
        if record.topic == s.topic_feedback:
            fb = FEEDBACK(record.value, record.key)
            if isinstance(fb, Rejected):
                return self._dead_or(record, fb)
            self._journal_feedback(fb)
            self.feedback.process(fb)
            self._learn.append(partial(self.learner.add_label, fb))
            return []
        if record.topic == s.topic_cart_events:
            ev = CART_EVENTS(record.value, record.key)
            return self._dead_or(record, ev) if isinstance(ev, Rejected) else self._cart(ev)
        self.counts["skipped"] += 1  # another topic's record in a dump: not an input
        return []

    def finish(self) -> list[Output]:
        """End of input: the cart clock stands at the highest cart-event ts; fire what is due."""
        return [self._cart_output(o) for o in self.carts.finish()]

    def _journal_feedback(self, fb: Feedback) -> None:
        """Remember the txn's record and the places it may touch, to undo a failed label."""
        records = self.feedback.records
        previous = records.get(fb.txn_id)
        places = self.feedback.places._places  # replay owns this in-memory index
        names = {p for p in (fb.place, previous.place if previous else None) if p is not None}
        saved = {name: _copy_place(places.get(name)) for name in names}

        def undo() -> None:
            if previous is None:
                records.pop(fb.txn_id, None)
            else:
                records[fb.txn_id] = previous
            for name, state in saved.items():
                if state is None:
                    places.pop(name, None)
                else:
                    places[name] = state

        self._undo.append(undo)

    def _txn(self, txn: Transaction) -> list[Output]:
        before = self.cards.get(txn.card_id)
        saved = before.to_bytes() if before is not None else None

        def undo() -> None:  # the detector updates a card's state in place
            if saved is None:
                self.cards.pop(txn.card_id, None)
            else:
                self.cards[txn.card_id] = CardState.from_bytes(saved)

        self._undo.append(undo)
        result = self.scorer.process(
            txn, self.cards.get(txn.card_id), self.feedback.places, self.learner, txn.ts
        )
        if result.outcome == "duplicate":
            self.counts["duplicates"] += 1
            return []
        self.cards[txn.card_id] = result.state
        example = result.example
        assert example is not None and result.score is not None
        self._learn.append(lambda: self.learner.add_example(example))
        outputs = []
        if result.alert is not None:
            s = self.settings
            outputs.append(Output("fraud_alerts", s.topic_fraud_alerts, txn.card_id, result.alert))
        outputs.append(
            Output("txn_scores", self.settings.topic_txn_scores, txn.card_id, result.score)
        )
        return outputs

    def _cart(self, event: CartEvent) -> list[Output]:
        engine = self.carts
        highest = engine.clock.highest_ms

        def undo() -> None:  # states back, then the clock and the timers they imply
            self._cart_store.undo()
            engine.clock = EventClock(engine.cfg.lateness_ms)
            if highest is not None:
                engine.clock.observe(highest)
            engine.restore(self._cart_store.items())

        self._undo.append(undo)
        return [self._cart_output(o) for o in engine.process(event)]

    def _cart_output(self, out: Any) -> Output:
        topic = (
            self.settings.topic_cart_abandoned
            if out.kind == "cart_abandoned"
            else self.settings.topic_cart_recovered
        )
        return Output(out.kind, topic, out.key, out.value)

    def _dead_or(self, record: Record, rejected: Rejected) -> list[Output]:
        return [self._dead(record, rejected)]

    def _dead(self, record: Record, rejected: Rejected | str) -> Output:
        if isinstance(rejected, str):
            rejected = Rejected(rejected, "json")
        key = None if record.key is UNKNOWN_KEY else record.key
        if rejected.masked:
            key = rejected.key  # a raw card number is never written, not even offline
        text_key = key if isinstance(key, bytes | str) or key is None else str(key)
        value = dead_letter(
            source_topic=record.topic or "",
            partition=record.partition,
            offset=record.offset,
            key=text_key,
            error=rejected.error,
            payload=rejected.payload if rejected.masked else record.value,
            ts_ms=0,
        )
        value.pop("ts")  # wall-clock time of the failure: meaningless offline
        return Output(
            "dead_letters",
            self.settings.topic_dead_letters,
            value["key"] if isinstance(text_key, str) else None,
            value,
        )


def _open_inputs(paths: Iterable[str], stack: ExitStack) -> Iterator[IO[bytes]]:
    for path in paths:
        if path == "-":
            yield sys.stdin.buffer
        else:
            yield stack.enter_context(open(path, "rb"))  # noqa: SIM115 - closed by the stack


def run_replay(
    files: Iterable[str], out_dir: str | Path, settings: Settings, topic: str | None = None
) -> dict[str, int]:
    """Replay `files` in order and write the output files (`OUTPUT_FILES`) to `out_dir`.

    Returns counts per output file plus input statistics.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    replayer = Replayer(settings)
    written = dict.fromkeys(OUTPUT_FILES.values(), 0)
    with ExitStack() as stack:
        sinks = {
            kind: stack.enter_context(open(out / name, "wb")) for kind, name in OUTPUT_FILES.items()
        }

        def write(outputs: list[Output]) -> None:
            for o in outputs:
                sinks[o.kind].write(o.line() + b"\n")
                written[OUTPUT_FILES[o.kind]] += 1

        for handle in _open_inputs(files, stack):
            for record in read_records(handle, topic):
                write(replayer.feed(record))
        write(replayer.finish())
    return {**written, **replayer.counts}
