"""What the user reads: one line per event, per output record, per failure."""

from __future__ import annotations

import sys
from typing import Any

import orjson


class DemoError(Exception):
    """A reason the demo cannot go on, as the one line the user sees."""


def fail(reason: str) -> int:
    """The one line on stderr a failed demo ends with; returns the exit code, 1."""
    print(f"vigil demo: {reason}", file=sys.stderr, flush=True)
    return 1


def say(line: str) -> None:
    """A progress or output line, flushed at once (the demo is watched live)."""
    print(line, flush=True)


def _money(value: Any) -> str:
    try:
        return f"{float(value):,.2f}"
    except (TypeError, ValueError):
        return str(value)


def format_output(kind: str, value: dict[str, Any]) -> str:
    """One readable line per output record (what an analyst would want to glance at)."""
    if kind == "fraud_alerts":
        reasons = "; ".join(
            f"{r.get('rule')}: {r.get('reason')}" for r in value.get("rules") or [] if r
        )
        return (
            f"FRAUD ALERT     card {value.get('card_id')}  {_money(value.get('amount'))} "
            f"{value.get('currency')} at {value.get('merchant_id')}  "
            f"score {float(value.get('score') or 0):.2f}  {reasons}"
        )
    if kind == "cart_abandoned":
        items = value.get("items") or []
        count = sum(int(i.get("quantity") or 0) for i in items if isinstance(i, dict))
        return (
            f"CART ABANDONED  user {value.get('user_id')}  {count} item(s) "
            f"{_money(value.get('cart_value'))} {value.get('currency')}  "
            f"quiet since {value.get('last_activity_ts')}"
        )
    if kind == "cart_recovered":
        return (
            f"CART RECOVERED  user {value.get('user_id')}  order "
            f"{_money(value.get('order_value'))} {value.get('currency')}  "
            f"(abandoned at {value.get('abandoned_at')}, bought {value.get('recovered_ts')})"
        )
    return (
        f"DEAD LETTER     {value.get('source_topic')}[{value.get('partition')}]"
        f"@{value.get('offset')}  {value.get('error')}"
    )


def output_line(kind: str, raw: bytes | None) -> str:
    """`format_output` of a raw record value; the raw text if it is not a JSON object."""
    try:
        value = orjson.loads(raw or b"")
        if not isinstance(value, dict):
            raise ValueError("not an object")
        return format_output(kind, value)
    except Exception:
        text = (raw or b"").decode("utf-8", "replace")
        return f"{kind.upper():15} {text[:200]}"
