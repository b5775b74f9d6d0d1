"""Cart-abandonment settings, as plain numbers the pure code can take as an argument.

The machine, timers and engine never read settings or the environment themselves: the caller
(the live agent, `vigil replay`, a test) builds one `CartConfig` and passes it in, so a test can
shrink 30 minutes to 100 ms without patching anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.exceptions import ConfigError

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


@dataclass(frozen=True, slots=True)
class CartConfig:
    """The contract's defaults: 30 min of inactivity abandons, 10 s lateness, 24 h to recover."""

    timeout_ms: int = 30 * MINUTE_MS
    lateness_ms: int = 10_000
    recovery_window_ms: int = 24 * HOUR_MS

    def __post_init__(self) -> None:
        # A zero timeout would abandon every cart at the instant it is filled; negative lateness
        # would let the clock run ahead of the events it has seen.
        if self.timeout_ms <= 0:
            raise ConfigError("timeout_ms", f"must be > 0, got {self.timeout_ms}")
        if self.lateness_ms < 0:
            raise ConfigError("lateness_ms", f"must be >= 0, got {self.lateness_ms}")
        if self.recovery_window_ms < 0:
            raise ConfigError("recovery_window_ms", f"must be >= 0, got {self.recovery_window_ms}")
