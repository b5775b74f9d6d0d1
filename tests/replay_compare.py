"""What `vigil replay` gives for the records a test produced, to compare live outputs with.

One helper for every live-vs-replay test (integration, e2e, chaos): write the records as
replay envelopes in production order, run the same detectors offline, return each output
topic's (key, value) pairs. Compare on every field but `detected_ts` (`without_detected`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from app.replay import OUTPUT_FILES, run_replay
from app.settings import Settings

Output = tuple[Any, dict[str, Any]]


def envelope(topic: str, key: Any, value: Any, **position: int) -> bytes:
    """One replay input line; `value` as given (dict) or as text (raw bytes a test sent)."""
    if isinstance(value, bytes):
        value = value.decode()
    return orjson.dumps({"topic": topic, "key": key, "value": value, **position})


def replay_outputs(
    lines: Iterable[bytes], topics: Mapping[str, str], workdir: Path, **settings: Any
) -> dict[str, list[Output]]:
    """Replay `lines` (from `envelope`) with these topic names; outputs per kind of topic."""
    src = workdir / "replay-input.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = workdir / "replay"
    run_replay(
        [str(src)], out, Settings(**{f"topic_{k}": v for k, v in topics.items()}, **settings)
    )
    expected: dict[str, list[Output]] = {}
    for kind, name in OUTPUT_FILES.items():
        rows = (out / name).read_bytes().splitlines()
        expected[kind] = [(e["key"], e["value"]) for e in map(orjson.loads, rows)]
    return expected


def replay_records(
    deployment: Any, records: Iterable[tuple[str, Any, Any]], workdir: Path
) -> dict[str, list[Output]]:
    """Replay (topic kind, key, value) records as a `Deployment` produced them."""
    lines = [envelope(deployment.topics[kind], key, value) for kind, key, value in records]
    return replay_outputs(lines, deployment.topics, workdir)
