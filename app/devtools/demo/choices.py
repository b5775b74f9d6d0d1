"""The demo's own values: where it keeps state, how much fraud, how long it waits.

Each demo default in `DEMO_ENV_DEFAULTS` applies only where the user set nothing (see the
package docstring for why each differs from production).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.settings import Settings

DEMO_DIR = Path("var/demo")
DEMO_ENV_DEFAULTS: dict[str, tuple[str, str]] = {
    # setting -> (environment variable, demo value); applied only where the user set nothing
    "session_timeout_s": ("VIGIL_SESSION_TIMEOUT_S", "10"),
    "rebalance_timeout_s": ("VIGIL_REBALANCE_TIMEOUT_S", "10"),
    "cart_timeout_s": ("VIGIL_CART_TIMEOUT_S", "15"),
    "cart_lateness_s": ("VIGIL_CART_LATENESS_S", "2"),
    "store_dir": ("VIGIL_STORE_DIR", str(DEMO_DIR / "vigil-data")),
}
FRAUD_BOOST = 5.0  # pattern rates x this: about 2 % of transactions start a fraud episode
BAD_RATE = 0.002
READY_TIMEOUT_S = 120.0  # a first start may also create changelog topics
SUMMARY_EVERY_S = 10.0
DRAIN_S = 3.0  # after the last event: time for its alerts to be committed and shown
WORKER_STOP_TIMEOUT_S = 30.0


def with_demo_defaults(settings: Settings, broker: str) -> Settings:
    """`settings` pointed at `broker`, with the demo defaults the user did not override."""
    updates: dict[str, Any] = {"broker": broker}
    for field, (_, value) in DEMO_ENV_DEFAULTS.items():
        if field not in settings.model_fields_set:
            updates[field] = Path(value) if field == "store_dir" else float(value)
    return settings.model_copy(update=updates)
