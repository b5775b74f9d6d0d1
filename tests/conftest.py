"""Plugins shared by every test folder: the real Kafka broker, Prometheus and worker processes.

Each fixture starts its service only when a test asks for it, so `pytest tests/unit` needs
neither Java nor Prometheus.
"""

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.prometheus", "tests.fixtures.worker"]
