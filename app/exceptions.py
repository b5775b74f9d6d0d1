"""Vigil's error hierarchy.

One root (`VigilError`) so callers can catch everything Vigil raises, and every class says
whether retrying the same operation can succeed (`retriable`), as aiokafka's errors do: a
decode error never heals by retrying, a broker hiccup may.
"""

from __future__ import annotations


class VigilError(Exception):
    """Root of every error Vigil raises on purpose."""

    retriable: bool = False


class ConfigError(VigilError):
    """A setting has a value Vigil cannot run with; start-up stops with exit code 2."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        self.message = message
        super().__init__(f"{setting}: {message}")


class DecodeError(VigilError):
    """An input record is not a valid event of its topic; it goes to dead letters.

    `kind` is a short, bounded word (json, field, type, value) fit for a metric label; the
    message is a sentence for the people who own the producer.
    """

    def __init__(self, message: str, kind: str = "field") -> None:
        self.kind = kind
        self.message = message
        super().__init__(message)


class BrokerUnavailable(VigilError):
    """The Kafka broker could not be reached; trying again later may work."""

    retriable = True


class OutputError(VigilError):
    """A record could not be handed to its Kafka producer (e.g. the partition's transactional
    producer is gone after a rebalance); the worker's next generation processes it again."""

    retriable = True
