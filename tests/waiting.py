"""One way for tests to wait: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, interval: float = 0.2) -> tuple[bool, T]:
    """Call `check` until it returns something truthy or `timeout` seconds pass.

    Returns (whether it held, its last value): the caller says what failing means.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return bool(value), value
        time.sleep(interval)
