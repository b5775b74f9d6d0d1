"""What a rule returns when it fires, and the wording helpers its reason sentences share.

A hit carries a sentence for the analyst plus the measured value and the bar it crossed, so the
alert is readable on its own and still machine-sortable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.detect.config import DAY_MS, HOUR_MS, SECOND_MS


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One fired rule: its name, a readable reason, the measured value and the threshold."""

    rule: str
    reason: str
    value: float | int | None
    threshold: float | int

    def to_dict(self) -> dict[str, Any]:
        """The `{"rule", "reason", "value", "threshold"}` object of a fraud alert."""
        return {
            "rule": self.rule,
            "reason": self.reason,
            "value": self.value,
            "threshold": self.threshold,
        }


def seconds(ms: int) -> str:
    """A window as the contract words it: `60 s`, `600 s` (`1.5 s` where not whole)."""
    if ms % SECOND_MS == 0:
        return f"{ms // SECOND_MS} s"
    return f"{ms / SECOND_MS:g} s"


def long_span(ms: int) -> str:
    """A long window in the largest whole unit: `28 days`, `1 day`, `36 h`, else seconds."""
    if ms % DAY_MS == 0:
        days = ms // DAY_MS
        return f"{days} day" if days == 1 else f"{days} days"
    if ms % HOUR_MS == 0:
        return f"{ms // HOUR_MS} h"
    return seconds(ms)


def money(amount: float) -> str:
    """An amount with two decimals, as analysts read money."""
    return f"{amount:.2f}"


def number(value: float) -> str:
    """A config number without a needless `.0` (`4`, `2.5`)."""
    return f"{value:g}"


def place_name(place: str) -> str:
    """`t:pos-3` → `terminal pos-3`, `m:m-77` → `merchant m-77` (see
    `app.contract.events.place_key`)."""
    if place.startswith("t:"):
        return "terminal " + place[2:]
    if place.startswith("m:"):
        return "merchant " + place[2:]
    return place
