"""Helpers for callers: a record kind's topic, a value's bytes, and JSONL for `vigil replay`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from app.devtools.generate.records import TOPIC_KINDS
from app.settings import Settings


def topic_for(kind: str, settings: Settings) -> str:
    """The configured topic name of a record kind (`transactions`, `feedback`, `cart_events`)."""
    names = {
        "transactions": settings.topic_transactions,
        "feedback": settings.topic_feedback,
        "cart_events": settings.topic_cart_events,
    }
    try:
        return names[kind]
    except KeyError:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {TOPIC_KINDS}") from None


def to_bytes(value: Mapping[str, Any] | bytes) -> bytes:
    """A record value as Kafka bytes: dicts as compact JSON, malformed records as they are."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return orjson.dumps(value)


def write_jsonl(
    path: str | Path,
    records: Iterable[tuple[str, str, Mapping[str, Any] | bytes]],
    settings: Settings,
) -> int:
    """Write `records` as `{"topic","key","value"}` envelope lines that `vigil replay` reads.

    A malformed record's bytes go in as a JSON string (replay feeds a string value's text to the
    decoder as is), so it reaches the detectors exactly as a broken producer would send it.
    Returns the number of lines written.
    """
    written = 0
    with open(path, "wb") as out:
        for kind, key, value in records:
            body: Any = value.decode("utf-8") if isinstance(value, bytes) else value
            out.write(orjson.dumps({"topic": topic_for(kind, settings), "key": key, "value": body}))
            out.write(b"\n")
            written += 1
    return written
