"""A worker that cannot reach the broker at start-up: one line naming VIGIL_BROKER and the
address, retries with backoff for VIGIL_BROKER_CONNECT_TIMEOUT_S, then exit code 4; a broker
that comes up meanwhile is used.

The late broker is a real one of its own (`LocalKafka`), started on a port chosen before the
worker starts: `LocalKafka` reuses the ports of its last `server.properties` when they are free.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from app.devtools.kafka import LocalKafka
from app.devtools.processes import free_port
from app.runtime.topics import EXIT_BROKER_UNREACHABLE
from tests.fixtures.worker import new_deployment
from tests.scenarios import T0, txn
from tests.waiting import wait_until

RETRYING = "retrying for up to"


def _worker_cli(env: dict[str, str], timeout: float) -> tuple[int, list[str], float]:
    """`vigil worker` to its end: (exit code, stderr lines, seconds)."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stderr.strip().splitlines(), time.monotonic() - started


def test_no_retry_when_the_timeout_is_zero_one_line_and_exit_4(tmp_path):
    port = free_port()  # nothing listens there
    code, lines, took = _worker_cli(
        {
            "VIGIL_BROKER": f"kafka://127.0.0.1:{port}",
            "VIGIL_BROKER_CONNECT_TIMEOUT_S": "0",
            "VIGIL_STORE_DIR": str(tmp_path / "store"),
        },
        timeout=60,
    )
    assert code == EXIT_BROKER_UNREACHABLE == 4, lines
    assert len(lines) == 1, lines
    assert "VIGIL_BROKER" in lines[0] and f"127.0.0.1:{port}" in lines[0], lines
    assert RETRYING not in lines[0]
    assert took < 30


@pytest.mark.parametrize("create_topics", ["true", "false"])
def test_a_broker_that_never_comes_retries_for_the_timeout_then_exit_4(tmp_path, create_topics):
    port = free_port()
    code, lines, took = _worker_cli(
        {
            "VIGIL_BROKER": f"kafka://127.0.0.1:{port}",
            "VIGIL_BROKER_CONNECT_TIMEOUT_S": "4",
            "VIGIL_CREATE_TOPICS": create_topics,  # false: Faust itself used to crash, traceback
            "VIGIL_STORE_DIR": str(tmp_path / "store"),
        },
        timeout=90,
    )
    assert code == EXIT_BROKER_UNREACHABLE, lines
    # One line when it starts retrying, one when it gives up; no traceback, no aiokafka noise.
    assert len(lines) == 2, lines
    assert f"127.0.0.1:{port} (VIGIL_BROKER)" in lines[0] and f"{RETRYING} 4 s" in lines[0]
    assert "gave up after" in lines[1] and "VIGIL_BROKER_CONNECT_TIMEOUT_S=4" in lines[1], lines
    assert 4 <= took < 40, took


def test_a_broker_that_comes_up_during_the_retries_is_used(tmp_path):
    kafka = LocalKafka(tmp_path / "late-kafka", stop_at_exit=True, die_with_parent=True)
    broker_port, controller_port = free_port(), free_port()
    kafka.home.mkdir(parents=True)
    kafka.props_path.write_text(  # the ports `start()` reuses (see app.devtools.kafka.config)
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{broker_port}\n"
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}\n"
    )
    dep = new_deployment(f"127.0.0.1:{broker_port}", tmp_path)
    worker = dep.worker(broker_connect_timeout_s="180").start()
    try:
        retrying, _ = wait_until(lambda: RETRYING in worker.tail(5), 60)
        assert retrying, worker.tail()
        assert worker.alive(), worker.tail()
        status = kafka.start(timeout=120.0, fresh=True)
        assert status.bootstrap == f"127.0.0.1:{broker_port}", status  # the port it waits on
        worker.wait_ready(timeout=180)
        log = worker.log_path.read_text()
        assert f"reached the Kafka broker at 127.0.0.1:{broker_port} (VIGIL_BROKER)" in log
        assert "created topics" in log  # the topics were created on the late broker
        # ... and it works: a large amount is an alert.
        dep.produce([txn("t-late", "card-late", 15000, T0)])
        alerts = dep.consume("fraud_alerts", min_count=1, timeout=60, settle=0.5)
        assert [v["txn_id"] for _, v in alerts] == ["t-late"], alerts
    finally:
        worker.kill()
        kafka.stop()
