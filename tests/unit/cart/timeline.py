"""Time constants for the cart tests: offsets from T0 read as a timeline."""

from __future__ import annotations

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00.000Z
SEC = 1_000
MIN = 60 * SEC
HOUR = 60 * MIN
