"""`vigil replay`: the live detectors, run offline over JSONL files.

The same intake, the same fraud detector, the same label handling and the same cart engine as
the workers, fed in file order. Differences from a live worker, by design:
- time is event time only: the cart clock never advances with the wall clock, and at the end
  of input it stands at the highest cart-event ts seen (so what is due then fires);
- `detected_ts` is event time too (the transaction's ts; for carts, the cart clock), so a
  replay of the same input always writes the same bytes.
Compare replay with live output on every field but `detected_ts`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from app.cart.engine import CartEngine
from app.contract.deadletters import dead_letter
from app.contract.events import CartEvent, Transaction
from app.contract.intake import CART_EVENTS, FEEDBACK, TRANSACTIONS, UNKNOWN_KEY, Rejected
from app.detect.feedback import InMemoryFeedback
from app.detect.fraud import FraudDetector
from app.detect.state import CardState
from app.settings import Settings

OUTPUT_FILES = {
    "fraud_alerts": "fraud-alerts.jsonl",
    "cart_abandoned": "cart-abandoned.jsonl",
    "cart_recovered": "cart-recovered.jsonl",
    "dead_letters": "dead-letters.jsonl",
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
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield Record(None, None, line, None, number, f"line {number}: not JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("topic"), str):
            yield Record(None, None, line, None, number, f"line {number}: no 'topic' field")
            continue
        key = obj.get("key")
        if "payload" in obj and "value" not in obj:  # kcat -J
            payload = obj["payload"]
            value = payload.encode() if isinstance(payload, str) else None
            yield Record(obj["topic"], key, value, obj.get("partition"), obj.get("offset"))
        else:
            raw = obj.get("value")
            value = (
                raw.encode() if isinstance(raw, str) else None if raw is None else orjson.dumps(raw)
            )
            yield Record(obj["topic"], key, value, obj.get("partition"), obj.get("offset"))


class Replayer:
    """Holds the offline state (cards, labels, carts) and turns records into outputs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.detector = FraudDetector(settings.fraud_config())
        self.cards: dict[str, CardState] = {}
        self.feedback = InMemoryFeedback(self.detector.config)
        self.carts = CartEngine(settings.cart_config())
        self.counts: dict[str, int] = {"records": 0, "duplicates": 0, "skipped": 0}

    def feed(self, record: Record) -> list[Output]:
        """Process one record; return its outputs in order."""
        s = self.settings
        self.counts["records"] += 1
        if record.error is not None:
            return [self._dead(record, record.error)]
        if record.topic == s.topic_transactions:
            txn = TRANSACTIONS(record.value, record.key)
            return self._dead_or(record, txn) if isinstance(txn, Rejected) else self._txn(txn)
        if record.topic == s.topic_feedback:
            fb = FEEDBACK(record.value, record.key)
            if isinstance(fb, Rejected):
                return self._dead_or(record, fb)
            self.feedback.process(fb)
            return []
        if record.topic == s.topic_cart_events:
            ev = CART_EVENTS(record.value, record.key)
            return self._dead_or(record, ev) if isinstance(ev, Rejected) else self._cart(ev)
        self.counts["skipped"] += 1  # another topic's record in a dump: not an input
        return []

    def finish(self) -> list[Output]:
        """End of input: the cart clock stands at the highest cart-event ts; fire what is due."""
        return [self._cart_output(o) for o in self.carts.finish()]

    def _txn(self, txn: Transaction) -> list[Output]:
        result = self.detector.process(
            txn, self.cards.get(txn.card_id), self.feedback.places, txn.ts
        )
        if result.outcome == "duplicate":
            self.counts["duplicates"] += 1
            return []
        self.cards[txn.card_id] = result.state
        if result.alert is None:
            return []
        return [Output("fraud_alerts", self.settings.topic_fraud_alerts, txn.card_id, result.alert)]

    def _cart(self, event: CartEvent) -> list[Output]:
        return [self._cart_output(o) for o in self.carts.process(event)]

    def _cart_output(self, out: Any) -> Output:
        topic = (
            self.settings.topic_cart_abandoned
            if out.kind == "cart_abandoned"
            else self.settings.topic_cart_recovered
        )
        return Output(out.kind, topic, out.key, out.value)

    def _dead_or(self, record: Record, rejected: Rejected) -> list[Output]:
        return [self._dead(record, rejected.error)]

    def _dead(self, record: Record, error: str) -> Output:
        key = None if record.key is UNKNOWN_KEY else record.key
        value = dead_letter(
            source_topic=record.topic or "",
            partition=record.partition,
            offset=record.offset,
            key=key if isinstance(key, bytes | str) or key is None else str(key),
            error=error,
            payload=record.value,
            ts_ms=0,
        )
        value.pop("ts")  # wall-clock time of the failure: meaningless offline
        return Output(
            "dead_letters",
            self.settings.topic_dead_letters,
            key if isinstance(key, str) else None,
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
    """Replay `files` in order and write the four output files to `out_dir`.

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
                envelope = {"topic": o.topic, "key": o.key, "value": o.value}
                sinks[o.kind].write(orjson.dumps(envelope) + b"\n")
                written[OUTPUT_FILES[o.kind]] += 1

        for handle in _open_inputs(files, stack):
            for record in read_records(handle, topic):
                write(replayer.feed(record))
        write(replayer.finish())
    return {**written, **replayer.counts}
