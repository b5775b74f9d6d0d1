"""`vigil demo` end to end: against the session's broker it starts a worker, sends traffic and
prints fraud alerts as a read_committed reader sees them, then stops cleanly with exit code 0.

Run as a subprocess, exactly as a user runs it, with everything that could collide with another
test (app id, topics, store dir, web port) made unique.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.devtools.processes import free_port

if TYPE_CHECKING:  # imported for real only as a plugin, so pytest can rewrite its asserts
    from tests.fixtures.kafka import KafkaBroker

pytest_plugins = ["tests.fixtures.kafka"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
SECONDS = 25
RATE = 100


def test_demo_shows_fraud_alerts_and_exits_cleanly(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        VIGIL_BROKER=kafka_broker.url,
        VIGIL_APP_ID=f"demo-test-{run}",
        VIGIL_STORE_DIR=str(tmp_path / "store"),
        VIGIL_WEB_PORT=str(free_port()),
        VIGIL_WEB_BIND="127.0.0.1",
        VIGIL_PARTITIONS="2",
        VIGIL_KAFKA_HOME=str(tmp_path / "kafka-home"),  # never touch ./var/kafka
        PYTHONUNBUFFERED="1",
    )
    for name in (
        "transactions",
        "feedback",
        "cart_events",
        "fraud_alerts",
        "cart_abandoned",
        "cart_recovered",
        "dead_letters",
    ):
        env[f"VIGIL_TOPIC_{name.upper()}"] = f"demo-{run}-{name.replace('_', '-')}"

    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--seconds", str(SECONDS), "--rate", str(RATE)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    elapsed = time.monotonic() - started
    shown = f"exit {result.returncode} after {elapsed:.0f} s\n{result.stdout}\n{result.stderr}"

    assert result.returncode == 0, shown
    lines = result.stdout.splitlines()
    # It used the configured broker instead of starting its own.
    assert any(f"Kafka broker at {kafka_broker.bootstrap}" in ln for ln in lines), shown
    alerts = [ln for ln in lines if ln.startswith("FRAUD ALERT")]
    assert alerts, shown
    # A readable line: the card, the amount, the score and at least one rule's reason.
    assert " card tok_" in alerts[0] and " score " in alerts[0], alerts[0]
    assert "(alert at" in alerts[0], alerts[0]
    assert any(ln.startswith("-- 10 s: sent ") for ln in lines), shown  # periodic summary
    final = [ln for ln in lines if ln.startswith("-- demo finished: sent ")]
    assert final, shown
    sent = int(final[0].split("sent ")[1].split()[0])
    assert SECONDS * RATE * 0.8 <= sent <= SECONDS * RATE * 1.1, final[0]
    assert not (tmp_path / "kafka-home").exists()  # no local broker was started
