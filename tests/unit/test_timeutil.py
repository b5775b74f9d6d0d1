from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.contract.timeutil import format_ts, parse_ts
from app.exceptions import DecodeError


def test_format_is_rfc3339_utc_millis():
    assert format_ts(1795341600250) == "2026-11-22T10:00:00.250Z"
    assert format_ts(0) == "1970-01-01T00:00:00.000Z"


@given(st.integers(min_value=0, max_value=7_258_118_399_999))
def test_round_trip(ms):
    assert parse_ts(format_ts(ms)) == ms


def test_format_ts_agrees_with_datetime_across_minutes_and_cache_resets():
    from datetime import UTC, datetime

    from app.contract import timeutil

    rng = random.Random(5)
    values = [rng.randrange(0, 7_258_118_400_000) for _ in range(timeutil._MINUTES_MAX + 500)]
    for ms in values + values[:100] + [0, 59_999, 60_000, 7_258_118_400_000]:
        dt = datetime.fromtimestamp(ms / 1000, UTC)
        assert format_ts(ms) == dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    assert len(timeutil._MINUTES) <= timeutil._MINUTES_MAX


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22T10:00:60.000Z",  # second 60: refused by the full parse, also once cached
        "2026-11-22T10:00:5\u0663.000Z",  # an Arabic-Indic digit
        "2026-11-22T10:00:0\u00b2.000Z",  # a superscript two (isdigit() is true for it)
        "2026-11-22T10:00:00.0a0Z",
        "2200-01-01T00:00:00.001Z",  # past the range, in the range's last minute
    ],
)
def test_parse_ts_fast_path_refuses_what_the_full_parse_refuses(text):
    parse_ts("2026-11-22T10:00:00.000Z")  # the minute is now cached
    parse_ts("2200-01-01T00:00:00.000Z")
    with pytest.raises(DecodeError):
        parse_ts(text)


def test_parse_ts_fast_path_equals_full_parse():
    from app.contract.timeutil import _parse_ts

    rng = random.Random(6)
    for _ in range(5000):
        text = format_ts(rng.randrange(0, 7_258_118_400_000))
        assert parse_ts(text) == _parse_ts(text, "ts") == parse_ts(text)
