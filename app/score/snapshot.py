"""The learner's snapshot: everything a `DelayedLearner` learned and holds, as bytes, and back.

A friend of `app.score.learner` (it reads and fills the learner's private state): kept apart
because the layout is its own concern, and `DelayedLearner.snapshot_parts`, `to_bytes`,
`snapshot_head` and `from_bytes` call these.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator
from typing import Any

import orjson

from app.contract.events import Feedback
from app.score.config import ScoreConfig
from app.score.features import FEATURES, N_FEATURES
from app.score.learner import DelayedLearner, Example

SNAPSHOT_VERSION = 4
#: First bytes of a snapshot file (an older, JSON snapshot starts with `{`).
SNAPSHOT_MAGIC = b"VIGIL-LEARNER\x00"
#: Held examples (or place volumes) per snapshot section.
SNAPSHOT_CHUNK = 5_000
_LEN = struct.Struct("<I")

# -- layout -----------------------------------------------------------------------------
#
# Layout (binary: the held feature vectors are most of it, and as JSON text they cost
# seconds to format and parse): SNAPSHOT_MAGIC, a section with the JSON head (version,
# features, offsets, counts, model, labels, parked labels, the extra fields), then sections
# of at most SNAPSHOT_CHUNK held examples or place volumes each. A section is its kind
# (1 byte), the length of its JSON part (4 bytes, little endian) and the JSON (columns: a
# list per field); an examples section is followed by the features of its examples that
# have any, as little-endian float64.
# `snapshot_parts` yields one section at a time, so that a caller on an event loop can let
# other tasks run between them (the learner must not change meanwhile).


def _section(kind: bytes, body: bytes) -> bytes:
    return kind + _LEN.pack(len(body)) + body


def _read_section(view: memoryview, at: int) -> tuple[bytes, memoryview, int]:
    """(kind, JSON part, where the JSON part ends) of the snapshot section at `at`."""
    if at + 5 > len(view):
        raise ValueError("model snapshot cut short")
    kind = bytes(view[at : at + 1])
    (size,) = _LEN.unpack_from(view, at + 1)
    end = at + 5 + size
    if end > len(view):
        raise ValueError("model snapshot cut short")
    return kind, view[at + 5 : end], end


def parts(learner: DelayedLearner, **extra: Any) -> Iterator[bytes]:
    """The snapshot (everything learned and held, with the stream position it reflects and
    `extra` fields such as the settings' fingerprint), one section at a time."""
    head = {
        **extra,
        "version": SNAPSHOT_VERSION,
        "features": FEATURES,
        "offset": learner.offset,
        "fed": learner.fed,
        "clock": learner.clock,
        "frauds": learner.frauds,
        "updates": learner.updates,
        "counts": learner.counts,
        "model": learner.model.to_dict(),
        "pending": len(learner._pending),
        "parked": [
            [
                f.txn_id,
                f.label,
                f.ts,
                f.card_id,
                f.merchant_id,
                f.terminal_id,
                f is learner._parked.get(f.txn_id),
            ]
            for f in learner._parked_log
        ],
        "labels": [
            [t, k, i, held[i][1]]
            for t, k, i in learner._label_log
            if (held := learner._labels.get(k)) is not None and held.get(i, (None,))[0] == t
        ],
    }
    yield SNAPSHOT_MAGIC + _section(b"H", orjson.dumps(head))
    examples = list(learner._pending) + list(learner._late)
    little = sys.byteorder == "little"
    for i in range(0, len(examples), SNAPSHOT_CHUNK):
        chunk = examples[i : i + SNAPSHOT_CHUNK]
        # Columns, not a list per example: few new containers, so no garbage collection
        # pass over the whole heap is triggered while serialising.
        columns = [
            [e.txn_id for e in chunk],
            [e.card_id for e in chunk],
            [e.place for e in chunk],
            [e.ts for e in chunk],
            [e.status for e in chunk],
            [e.x is not None for e in chunk],
        ]
        block = array("d")
        for e in chunk:
            if e.x is not None:
                block.extend(e.x)
        if not little:
            block.byteswap()
        yield _section(b"E", orjson.dumps(columns)) + block.tobytes()
    volume = learner._volume
    log = list(learner._volume_log)
    for i in range(0, len(log), SNAPSHOT_CHUNK):
        days, places = zip(*log[i : i + SNAPSHOT_CHUNK], strict=True)
        counts = [volume[p][d] for d, p in zip(days, places, strict=True)]
        yield _section(b"V", orjson.dumps([days, places, counts]))


def read_head(raw: bytes) -> dict[str, Any]:
    """The JSON head of a snapshot (ValueError when it is not one of this layout)."""
    if raw[: len(SNAPSHOT_MAGIC)] != SNAPSHOT_MAGIC:
        raise ValueError("not a model snapshot of this layout (an older version?)")
    kind, body, _ = _read_section(memoryview(raw), len(SNAPSHOT_MAGIC))
    if kind != b"H":
        raise ValueError("model snapshot without its head")
    head = orjson.loads(body)
    if not isinstance(head, dict):
        raise ValueError("model snapshot head is not an object")
    return head


def restore(raw: bytes, config: ScoreConfig | None = None) -> DelayedLearner:
    """A learner in the state `to_bytes` wrote (ValueError when it cannot be used)."""
    data = read_head(raw)
    if data.get("version") != SNAPSHOT_VERSION or tuple(data["features"]) != FEATURES:
        raise ValueError("model snapshot of another version or feature set")
    learner = DelayedLearner(config)
    learner.offset = int(data["offset"])
    learner.fed = int(data["fed"])
    learner.clock = data["clock"]
    learner.frauds = int(data["frauds"])
    learner.updates = int(data["updates"])
    learner.counts.update(data["counts"])
    learner.model.load(data["model"])
    for txn_id, label, ts, card, merchant, terminal, live in data["parked"]:
        fb = Feedback(txn_id, label, ts, card, merchant, terminal)
        learner._parked_log.append(fb)
        if live:
            learner._parked[txn_id] = fb
    for t, key, txn_id, tx_ts in data["labels"]:
        learner._labels.setdefault(key, {})[txn_id] = (t, tx_ts)
        learner._label_log.append((t, key, txn_id))
    pending = int(data["pending"])
    view = memoryview(raw)
    _, _, at = _read_section(view, len(SNAPSHOT_MAGIC))
    width = N_FEATURES * 8
    little = sys.byteorder == "little"
    n = 0
    while at < len(raw):
        kind, body, at = _read_section(view, at)
        if kind == b"E":
            for txn_id, card, place, ts, status, has_x in zip(*orjson.loads(body), strict=True):
                x = None
                if has_x:
                    if at + width > len(raw):
                        raise ValueError("model snapshot cut short")
                    x = array("d")
                    x.frombytes(view[at : at + width])
                    if not little:
                        x.byteswap()
                    at += width
                ex = Example(txn_id, card, place, ts, x, status)
                if n < pending:
                    learner._pending.append(ex)
                    learner.examples[ex.txn_id] = ex
                else:
                    learner._late.append(ex)
                    learner.examples.setdefault(ex.txn_id, ex)
                n += 1
        elif kind == b"V":
            for day, place, count in zip(*orjson.loads(body), strict=True):
                learner._volume.setdefault(place, {})[day] = count
                learner._volume_log.append((day, place))
        else:
            raise ValueError(f"model snapshot section of unknown kind {bytes(kind)!r}")
    if n < pending:
        raise ValueError("model snapshot cut short")
    return learner
