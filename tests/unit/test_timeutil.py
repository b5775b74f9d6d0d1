from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.contract.timeutil import format_ts, parse_ts


def test_format_is_rfc3339_utc_millis():
    assert format_ts(1795341600250) == "2026-11-22T10:00:00.250Z"
    assert format_ts(0) == "1970-01-01T00:00:00.000Z"


@given(st.integers(min_value=0, max_value=7_258_118_399_999))
def test_round_trip(ms):
    assert parse_ts(format_ts(ms)) == ms
