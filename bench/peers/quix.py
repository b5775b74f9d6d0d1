"""The Quix Streams peer: Vigil's six fraud rules on Quix Streams, in its own process.

Run as `python -m bench.peers.quix` by the benchmark (`bench.peers.scenario`), like
`bench.baseline`. A Quix `Application` (consumer group `--group`, offsets from the earliest,
`processing_guarantee` at-least-once or exactly-once, `commit_interval` = the Vigil workers')
consumes `--input` as raw bytes and hands each record to `CardRules`, which does per record
what Vigil's fraud agent does for the rules:

- decode with Vigil's own intake (`app.contract.intake.TRANSACTIONS`, the same validation and
  decode the worker runs: the fairest comparison; a JSON deserializer would skip the checks),
- read the card's state from Quix's per-key RocksDB state (the stream is keyed by card: the
  producer keys every transaction by `card_id`), stored as Vigil's `CardState.to_bytes()`,
- apply `FraudDetector.process` (the six rules; no place labels: an empty
  `InMemoryFeedback(...).places`, as `bench.scoring` uses and as the fraud worker has on this
  data set, which carries no feedback),
- write the state back, and produce the alert (the same dict, orjson) to `--output`.

Vigil's worker does more per transaction (it also scores it, writes `txn-scores` and a
training record, and keeps metrics): see bench/README.md "Peers". It runs until SIGTERM
(Quix's own handler stops the loop and commits the last checkpoint); the benchmark sends it
when the group's committed offsets reached the end. It then prints one JSON line of counts.

Needs quixstreams (`.venv/bin/pip install -e '.[bench]'`); this module imports it only in
`run`, so `CardRules` is importable (and unit-tested) without it.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from app.contract.intake import TRANSACTIONS, Rejected
from app.contract.timeutil import now_ms
from app.detect.feedback import InMemoryFeedback
from app.detect.fraud import FraudDetector
from app.detect.state import CardState
from app.settings import Settings

#: The one entry of a card's Quix state (Quix scopes state by the message key, the card id).
STATE_KEY = b"card"
#: Every this many records the peer writes its processed count to `--progress` (a second rate,
#: of processed rather than committed events, like the Vigil worker's scraped counter).
PROGRESS_EVERY = 500
#: `--guarantee` (Vigil's spelling) -> Quix's `processing_guarantee`.
GUARANTEES = {"at_least_once": "at-least-once", "exactly_once": "exactly-once"}


class KeyState(Protocol):
    """What `CardRules` needs of Quix's `State` (one message key's view of the store)."""

    def get(self, key: bytes, default: Any = None) -> Any: ...

    def set(self, key: bytes, value: Any) -> None: ...


@dataclass
class Counts:
    """What the peer did: printed at the end, compared with Vigil's run by the benchmark."""

    processed: int = 0
    rejected: int = 0
    duplicates: int = 0
    state_updates: int = 0
    alerts: int = 0


class CardRules:
    """One transaction in (raw value and key, the card's state), its alert out (or None)."""

    def __init__(self, settings: Settings | None = None, progress: Path | None = None) -> None:
        """The worker's rule configuration (`Settings().fraud_config()`), no place labels;
        `progress`: a file to write the processed count to every `PROGRESS_EVERY` records."""
        settings = settings if settings is not None else Settings()
        self.detector = FraudDetector(settings.fraud_config())
        self.places = InMemoryFeedback(self.detector.config).places
        self.counts = Counts()
        self.progress = progress

    def __call__(
        self, value: bytes, key: bytes, timestamp: int, headers: Any, state: KeyState
    ) -> bytes | None:
        """Quix's stateful apply with metadata: (value, key, timestamp, headers, state).

        Returns the alert as orjson bytes, or None (no alert, a duplicate, or a rejected
        record: Vigil dead-letters those, the peer only counts them)."""
        counts = self.counts
        counts.processed += 1
        if self.progress is not None and counts.processed % PROGRESS_EVERY == 0:
            write_progress(self.progress, counts.processed)
        decoded = TRANSACTIONS(value, key)
        if isinstance(decoded, Rejected):
            counts.rejected += 1
            return None
        raw = state.get(STATE_KEY)
        card = CardState.from_bytes(raw) if raw is not None else None
        result = self.detector.process(decoded, card, self.places, now_ms())
        if result.outcome == "duplicate":
            counts.duplicates += 1
            return None
        state.set(STATE_KEY, result.state.to_bytes())
        counts.state_updates += 1
        if result.alert is None:
            return None
        counts.alerts += 1
        return orjson.dumps(result.alert)


def write_progress(path: Path, processed: int) -> None:
    """Replace `path`'s content with the count, atomically (the benchmark reads it meanwhile)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{processed}\n")
    os.replace(tmp, path)


def read_progress(path: Path) -> int | None:
    """The last count `write_progress` wrote, None before the first."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _raw(value: bytes) -> bytes:
    """The state's values are already bytes (`CardState.to_bytes()`): stored as they are."""
    return value


def run(args: argparse.Namespace) -> Counts:
    """Build the Quix application and run it until SIGTERM; return what it did."""
    from quixstreams import Application
    from quixstreams.state.rocksdb import RocksDBOptions

    rules = CardRules(progress=args.progress)
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        processing_guarantee=GUARANTEES[args.guarantee],  # type: ignore[arg-type]
        state_dir=str(args.state_dir),
        # Quix's defaults otherwise (block cache, write buffers, changelog topics): what a
        # team picking Quix gets; only the value codec is Vigil's (bytes in, bytes out).
        rocksdb_options=RocksDBOptions(dumps=_raw, loads=_raw),
        # The benchmarked workers' and the baseline's group timeouts (fast joins).
        consumer_extra_config={"session.timeout.ms": 10_000, "heartbeat.interval.ms": 2_000},
        loglevel="WARNING",
    )
    source = app.topic(args.input, key_deserializer="bytes", value_deserializer="bytes")
    alerts = app.topic(args.output, key_serializer="bytes", value_serializer="bytes")
    sdf = app.dataframe(source)
    sdf = sdf.apply(rules, stateful=True, metadata=True)
    sdf = sdf.filter(lambda alert: alert is not None)
    sdf.to_topic(alerts)
    app.run()
    return rules.counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peers.quix")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--guarantee", choices=sorted(GUARANTEES), required=True)
    p.add_argument("--commit-interval", type=float, required=True, help="seconds")
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--progress", type=Path, help="file for the processed count (optional)")
    args = p.parse_args(argv)
    try:
        import quixstreams  # noqa: F401
    except ImportError:
        print("bench.peers.quix needs quixstreams: .venv/bin/pip install -e '.[bench]'")
        return 2
    counts = run(args)
    print(orjson.dumps({"peer": "quix", **asdict(counts)}).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
