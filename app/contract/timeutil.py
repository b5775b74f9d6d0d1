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


def parse_ts(value: object, field: str = "ts") -> int:
    """Return epoch milliseconds for an RFC 3339 string or an integer of epoch milliseconds."""
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


def format_ts(ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 UTC with milliseconds (`...T10:00:00.250Z`)."""
    secs, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{millis:03d}Z"


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000
