"""`CartConfig`: the contract's defaults, and settings it cannot run with."""

from __future__ import annotations

import pytest

from app.cart.config import CartConfig
from app.exceptions import ConfigError


def test_defaults_are_the_contracts() -> None:
    cfg = CartConfig()
    assert cfg.timeout_ms == 30 * 60_000
    assert cfg.lateness_ms == 10_000
    assert cfg.recovery_window_ms == 24 * 3_600_000


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout_ms", 0), ("lateness_ms", -1), ("recovery_window_ms", -1)],
)
def test_unusable_values_are_config_errors(field: str, value: int) -> None:
    with pytest.raises(ConfigError) as info:
        CartConfig(**{field: value})
    assert info.value.setting == field
