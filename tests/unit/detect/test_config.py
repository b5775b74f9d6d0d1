from __future__ import annotations

import pytest

from app.detect.config import RULES, FraudConfig
from app.exceptions import ConfigError
from tests.unit.detect.helpers import DAY, HOUR


def test_defaults_are_the_contract_numbers() -> None:
    c = FraudConfig()
    assert (c.velocity_count, c.velocity_window_ms) == (6, 60_000)
    assert (c.spike_min_prior, c.spike_stddevs, c.spike_mean_multiple) == (5, 4.0, 3.0)
    assert (c.travel_min_km, c.travel_max_kmh) == (100.0, 1000.0)
    assert (c.card_testing_max_amount, c.card_testing_count) == (2.0, 5)
    assert c.card_testing_window_ms == 600_000
    assert c.large_amount == 10_000.0
    assert (c.terminal_fraud_count, c.terminal_window_ms) == (2, 28 * DAY)
    assert c.duplicate_window_ms == 24 * HOUR
    assert c.max_disorder_ms == 600_000
    assert c.max_ids_per_card == 10_000


def test_weights_cover_every_rule() -> None:
    c = FraudConfig()
    assert [c.weight(r) for r in RULES] == [0.6, 0.5, 0.7, 0.6, 0.4, 0.5]


def test_retention_is_widest_window_plus_disorder() -> None:
    c = FraudConfig()
    assert c.entry_retention_ms == 600_000 + 600_000
    assert c.id_retention_ms == 24 * HOUR + 600_000
    assert FraudConfig(velocity_window_ms=900_000).entry_retention_ms == 1_500_000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("velocity_count", 0),
        ("velocity_window_ms", -1),
        ("velocity_window_ms", 1.5),
        ("spike_stddevs", float("nan")),
        ("travel_min_km", 0.0),
        ("max_disorder_ms", -1),
        ("velocity_weight", 1.5),
        ("large_amount", True),
    ],
)
def test_invalid_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        FraudConfig(**{field: value})  # type: ignore[arg-type]
    assert err.value.setting == field


def test_zero_disorder_and_zero_weight_are_allowed() -> None:
    c = FraudConfig(max_disorder_ms=0, velocity_weight=0.0)
    assert c.weight("velocity") == 0.0
