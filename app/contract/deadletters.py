"""Dead letters: every input record Vigil could not process, with the reason and its bytes.

Built the same way by the live agents and by `vigil replay`, so a replay's
`dead-letters.jsonl` matches what the workers put on `vigil-dead-letters`.
"""

from __future__ import annotations

import base64
from typing import Any

from app.contract.timeutil import format_ts

_SHOWN = 60  # characters of an offending value quoted in an error


def _text_or_base64(raw: bytes | None) -> tuple[str | None, str]:
    """The original bytes as UTF-8 text where they decode, else base64 (and say which)."""
    if raw is None:
        return None, "utf-8"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def dead_letter(
    *,
    source_topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | str | None,
    error: str,
    payload: bytes | str | None,
    ts_ms: int,
) -> dict[str, Any]:
    """A dead-letter value with the contract's fields.

    `ts` is when Vigil gave up on the record (wall clock); the record's own time may be the
    very thing that was wrong with it.
    """
    raw = payload.encode("utf-8") if isinstance(payload, str) else payload
    text, encoding = _text_or_base64(raw)
    if isinstance(key, bytes):
        key_text, _ = _text_or_base64(key)
    else:
        key_text = key
    return {
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "key": key_text,
        "error": error,
        "payload": text,
        "payload_encoding": encoding,
        "ts": format_ts(ts_ms),
    }


def key_error(field: str, key: bytes | str | None, expected: str) -> str | None:
    """Check that a record's Kafka key is the id the contract keys its topic by.

    Vigil's state for an id lives in the partition its key hashes to; a record keyed by
    anything else would be counted against the wrong partition's state and silently split a
    card's or a user's history. Such records go to dead letters instead.
    """
    if key is None:
        return f"key: must be the record's {field} ({_quote(expected)}), got no key"
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if text != expected:
        return f"key: must be the record's {field} ({_quote(expected)}), got {_quote(text)}"
    return None


def _quote(text: str) -> str:
    """repr of `text`, cut to about 60 characters (keys and ids can be a megabyte long)."""
    shown = repr(text)
    return shown if len(shown) <= _SHOWN else shown[: _SHOWN - 1] + "…"
