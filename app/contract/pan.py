"""Raw card numbers (PANs): recognise them, mask them.

The contract's `card_id` is a token, never a raw card number. A value that looks like one
(13-19 digits, optionally grouped by single spaces or dashes, passing the Luhn check) is not
processed: its record goes to dead letters with the number masked, first 6 and last 4 digits
kept, every other digit `*`. Nothing here logs.
"""

from __future__ import annotations

import re
from typing import Final

_CANDIDATE: Final = re.compile(r"[0-9](?:[ -]?[0-9]){12,18}", re.ASCII)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def looks_like_pan(value: str) -> bool:
    """True when `value` is, as a whole, a raw card number."""
    if len(value) > 37 or _CANDIDATE.fullmatch(value) is None:
        return False
    return luhn_ok(value.replace(" ", "").replace("-", ""))


def mask(value: str) -> str:
    """Keep the first 6 and last 4 digits of a card number, replace the other digits by `*`."""
    count = sum("0" <= ch <= "9" for ch in value)
    out: list[str] = []
    seen = 0
    for ch in value:
        if "0" <= ch <= "9":
            out.append(ch if seen < 6 or seen >= count - 4 else "*")
            seen += 1
        else:
            out.append(ch)
    return "".join(out)
