"""Event-time parsing and formatting.

Inside Vigil every timestamp is an integer count of milliseconds since the epoch (UTC): cheap to
compare, exact, and what Kafka uses. The contract accepts RFC 3339 with an explicit offset or
integer epoch milliseconds on input, and always writes RFC 3339 UTC with milliseconds.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from app.exceptions import DecodeError

_SHOWN = 60  # characters of an offending value quoted in an error


def _quote(value: str) -> str:
    return _cut(repr(value))


def _cut(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


# RFC 3339 date-time: full date, 'T' (or space, or lower-case t), time with seconds, optional
# fraction, and a mandatory offset. fromisoformat alone accepts dates without time or offset.
# Any number of fraction digits (kept to the millisecond); ASCII digits only, matched whole.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Accept epoch milliseconds between 1970 and 2200: anything else is a unit mistake (seconds or
# microseconds) that would silently break every time window.
_MIN_MS = 0
_MAX_MS = 7_258_118_400_000


#: Epoch ms of `YYYY-MM-DDTHH:MM:` prefixes already parsed in full (see `parse_ts`).
_PREFIXES: dict[str, int] = {}
_PREFIXES_MAX = 4096


def parse_ts(value: object, field: str = "ts") -> int:
    """Return epoch milliseconds for an RFC 3339 string or an integer of epoch milliseconds.

    The canonical form Vigil writes (`2026-11-22T10:00:00.250Z`) has a fast path once its
    minute was parsed in full: the seconds and milliseconds are checked and added to the
    minute's epoch ms. Everything else, and every new minute, takes the full parse.
    """
    if type(value) is str and len(value) == 24 and value[19] == "." and value[23] == "Z":
        base = _PREFIXES.get(value[:17])
        if base is not None:
            tail = value[17:19] + value[20:23]
            if tail.isascii() and tail.isdigit() and value[17] < "6":
                return base + int(value[17:19]) * 1000 + int(value[20:23])
        ms = _parse_ts(value, field)
        minute = ms - int(value[17:19]) * 1000 - int(value[20:23])
        if minute + 59_999 <= _MAX_MS:
            if len(_PREFIXES) >= _PREFIXES_MAX:
                _PREFIXES.clear()
            _PREFIXES[value[:17]] = minute
        return ms
    return _parse_ts(value, field)


def _parse_ts(value: object, field: str) -> int:
    if isinstance(value, bool):
        raise DecodeError(
            f"{field}: must be RFC 3339 or integer epoch milliseconds, got {value!r}", "type"
        )
    if isinstance(value, int):
        if not _MIN_MS <= value <= _MAX_MS:
            raise DecodeError(
                f"{field}: epoch milliseconds out of range (1970..2200), got {_cut(str(value))}",
                "value",
            )
        return value
    if isinstance(value, str):
        m = _RFC3339.fullmatch(value)
        if m is None:
            raise DecodeError(
                f"{field}: must be RFC 3339 with an offset or integer epoch milliseconds, "
                f"got {_quote(value)}"
            )
        frac = m.group(7) or ""
        base = value[: m.start(7)] if frac else value[: m.start(8)]
        offset = m.group(8)
        offset = "+00:00" if offset in ("Z", "z") else offset
        try:
            dt = datetime.fromisoformat(base.replace("t", "T").replace(" ", "T") + offset)
        except ValueError as exc:
            raise DecodeError(f"{field}: not a valid date-time {_quote(value)} ({exc})") from None
        delta = dt - _EPOCH
        ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
        if frac:
            ms += int((frac[1:] + "00")[:3])
        if not _MIN_MS <= ms <= _MAX_MS:
            raise DecodeError(
                f"{field}: date-time out of range (1970..2200), got {_quote(value)}", "value"
            )
        return ms
    shown = repr(value) if isinstance(value, float) else type(value).__name__
    raise DecodeError(
        f"{field}: must be RFC 3339 or integer epoch milliseconds, got {_quote(shown)}", "type"
    )


#: `YYYY-MM-DDTHH:MM:` per epoch minute, for `format_ts`: every output carries two or three
#: timestamps, and a stream's are mostly within the same few minutes (strftime per call was
#: ~3 % of a fraud worker's CPU). Cleared when full, so it stays small.
_MINUTES: dict[int, str] = {}
_MINUTES_MAX = 4096


def format_ts(ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 UTC with milliseconds (`...T10:00:00.250Z`)."""
    secs, millis = divmod(ms, 1000)
    minute, sec = divmod(secs, 60)
    prefix = _MINUTES.get(minute)
    if prefix is None:
        if len(_MINUTES) >= _MINUTES_MAX:
            _MINUTES.clear()
        prefix = _MINUTES[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
    return f"{prefix}{sec:02d}.{millis:03d}Z"


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000
