"""The two ways ``vigil kafka`` fails, as types the CLI, the demo and the test fixture catch."""

from __future__ import annotations


class KafkaToolingError(RuntimeError):
    """Java, Maven or the broker jars are missing: nothing can start until a person installs them.

    A distinct type so the test fixture and the CLI can say exactly what to install instead of
    showing a stack trace from deep inside ``subprocess``.
    """


class KafkaStartError(RuntimeError):
    """The broker was launched but did not come up; the message carries the tail of its log."""
