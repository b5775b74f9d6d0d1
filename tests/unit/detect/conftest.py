"""Factory fixtures for the detector tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.contract.events import Transaction
from app.detect.config import FraudConfig
from app.detect.feedback import InMemoryPlaces
from app.detect.fraud import FraudDetector
from tests.unit.detect.helpers import txn_factory


@pytest.fixture
def config() -> FraudConfig:
    return FraudConfig()


@pytest.fixture
def make_txn() -> Callable[..., Transaction]:
    """`make_txn(**overrides)`: a valid transaction on card c-1 at T0, fresh txn id each call."""
    return txn_factory()


@pytest.fixture
def detector(config: FraudConfig) -> FraudDetector:
    return FraudDetector(config)


@pytest.fixture
def places(config: FraudConfig) -> InMemoryPlaces:
    return InMemoryPlaces(config)
