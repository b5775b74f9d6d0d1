"""A worker on a secured broker: SASL_SSL with SCRAM-SHA-512, and mutual TLS.

Each class starts its own small broker (`tests.fixtures.kafka.secured_kafka`, free ports, a home
under tmp) whose client listener is secured; the inter-broker and controller listeners stay
PLAINTEXT on loopback, and the worker is only told the secured port. The CA and certificates
are made for the test (`trustme`); the SCRAM user is created when the storage is formatted.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context

from app.devtools.kafka import KafkaStatus
from tests.fixtures.kafka import ListenerSecurity, TlsFiles, secured_kafka
from tests.fixtures.worker import REPO, TOPIC_SETTINGS, Deployment
from tests.scenarios import T0, txn

pytestmark = pytest.mark.integration

USER = "vigil-worker"
PASSWORD = "scram-pw-7f3a9c"  # must never show up in a log


def _deployment(bootstrap: str, workdir: Path, security_env: Mapping[str, str]) -> Deployment:
    """Like the `deployment` fixture, on the secured listener (its produce/consume are not
    used: they speak PLAINTEXT; the tests below use `_produce`/`_consume`)."""
    suffix = uuid.uuid4().hex[:8]
    topics = {kind: f"{kind.replace('_', '-')}-{suffix}" for kind in TOPIC_SETTINGS}
    env = {
        "VIGIL_BROKER": f"kafka://{bootstrap}",
        "VIGIL_APP_ID": f"vigil-sec-{suffix}",
        "VIGIL_PARTITIONS": "2",
        "VIGIL_SESSION_TIMEOUT_S": "10",
        "VIGIL_REBALANCE_TIMEOUT_S": "10",
        "VIGIL_COMMIT_INTERVAL_S": "0.2",
        "VIGIL_LOG_LEVEL": "info",
        **{f"VIGIL_{TOPIC_SETTINGS[k]}": v for k, v in topics.items()},
        **security_env,
    }
    return Deployment(bootstrap, workdir, env, topics)


async def _produce(client: dict[str, Any], topic: str, records: list[tuple[str, Any]]) -> None:
    producer = AIOKafkaProducer(**client, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, key=key.encode(), value=orjson.dumps(value))
    finally:
        await producer.stop()


async def _consume(client: dict[str, Any], topic: str, count: int, timeout: float) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        **client,
        group_id=None,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(orjson.loads(r.value) for r in records)
    finally:
        await consumer.stop()
    return out


def _large_amount_alert(dep: Deployment, client: dict[str, Any]) -> dict[str, Any]:
    """Produce one large transaction through `client`; return the alert read through it."""
    _, card, value = txn("sec-1", "card-S", 25_000, T0)
    asyncio.run(_produce(client, dep.topics["transactions"], [(card, value)]))
    alerts = asyncio.run(_consume(client, dep.topics["fraud_alerts"], 1, timeout=60))
    assert len(alerts) == 1, alerts
    return alerts[0]


def _worker_cli(env: Mapping[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`vigil worker` in the foreground (it is expected to stop at start-up)."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- SASL_SSL + SCRAM-SHA-512 -------------------------------------------------------------------


@pytest.fixture(scope="class")
def sasl_broker(
    tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaStatus]:
    security = ListenerSecurity(
        "SASL_SSL",
        keystore=tls_files.broker_keystore,
        sasl_mechanism="SCRAM-SHA-512",
        users={USER: PASSWORD},
    )
    with secured_kafka(tmp_path_factory.mktemp("kafka-sasl-ssl"), security) as status:
        yield status


class TestSaslSslScram:
    @staticmethod
    def env(tls_files: TlsFiles, password: str = PASSWORD) -> dict[str, str]:
        return {
            "VIGIL_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
            "VIGIL_BROKER_SASL_MECHANISM": "SCRAM-SHA-512",
            "VIGIL_BROKER_SASL_USERNAME": USER,
            "VIGIL_BROKER_SASL_PASSWORD": password,
            "VIGIL_BROKER_SSL_CAFILE": str(tls_files.ca),
        }

    @staticmethod
    def client(broker: KafkaStatus, tls_files: TlsFiles) -> dict[str, Any]:
        return {
            "bootstrap_servers": broker.secure_bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": USER,
            "sasl_plain_password": PASSWORD,
            "ssl_context": create_ssl_context(cafile=str(tls_files.ca)),
        }

    def test_a_worker_runs_end_to_end(self, sasl_broker, tls_files, tmp_path):
        assert sasl_broker.secure_bootstrap is not None
        dep = _deployment(sasl_broker.secure_bootstrap, tmp_path, self.env(tls_files))
        try:
            # Ready: Faust's consumer and producers, the label follower (caught up) and the
            # transactional producers all connected over SASL_SSL.
            worker = dep.worker().start().wait_ready()
            alert = _large_amount_alert(dep, self.client(sasl_broker, tls_files))
            assert alert["txn_id"] == "sec-1"
            assert "large_amount" in {hit["rule"] for hit in alert["rules"]}
            assert worker.stop() == 0, worker.tail()
            # A second worker with an empty store reads the cards changelog in bulk: the bulk
            # restore's consumer connected over SASL_SSL too.
            w2 = dep.worker("w2").start().wait_ready()
            log = w2.log_path.read_text()
            restored = [ln for ln in log.splitlines() if "bulk restore:" in ln]
            assert restored and " 0 changelog records" not in restored[0], w2.tail()
            assert w2.stop() == 0, w2.tail()
            for w in (worker, w2):
                assert PASSWORD not in w.log_path.read_text()
        finally:
            for w in dep.workers:
                w.kill()

    def test_a_wrong_password_stops_start_up_with_one_line(self, sasl_broker, tls_files, tmp_path):
        assert sasl_broker.secure_bootstrap is not None
        env = {**_deployment(sasl_broker.secure_bootstrap, tmp_path, {}).env}
        env.update(self.env(tls_files, password="not-the-password"))
        env["VIGIL_STORE_DIR"] = str(tmp_path / "store")
        started = time.monotonic()
        proc = _worker_cli(env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1, proc.stderr
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("vigil: authentication failed"), lines[0]
        assert USER in lines[0] and "SCRAM-SHA-512" in lines[0]
        assert "VIGIL_BROKER_SASL_PASSWORD" in lines[0]
        assert "not-the-password" not in proc.stderr + proc.stdout
        assert time.monotonic() - started < 30

    def test_a_wrong_ca_stops_start_up_with_one_line(self, sasl_broker, tls_files, tmp_path):
        from tests.fixtures.kafka import make_tls_files

        other = make_tls_files(tmp_path / "other-ca")
        assert sasl_broker.secure_bootstrap is not None
        env = {**_deployment(sasl_broker.secure_bootstrap, tmp_path, self.env(tls_files)).env}
        env["VIGIL_BROKER_SSL_CAFILE"] = str(other.ca)
        env["VIGIL_STORE_DIR"] = str(tmp_path / "store")
        proc = _worker_cli(env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("vigil: TLS failed"), lines[0]
        assert "VIGIL_BROKER_SSL_CAFILE" in lines[0]


# --- mutual TLS ------------------------------------------------------------------------------


@pytest.fixture(scope="class")
def mtls_broker(
    tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaStatus]:
    security = ListenerSecurity(
        "SSL",
        keystore=tls_files.broker_keystore,
        truststore=tls_files.ca,
        client_auth="required",
    )
    with secured_kafka(tmp_path_factory.mktemp("kafka-mtls"), security) as status:
        yield status


class TestMutualTls:
    @staticmethod
    def env(tls_files: TlsFiles) -> dict[str, str]:
        return {
            "VIGIL_BROKER_SECURITY_PROTOCOL": "SSL",
            "VIGIL_BROKER_SSL_CAFILE": str(tls_files.ca),
            "VIGIL_BROKER_SSL_CERTFILE": str(tls_files.client_cert),
            "VIGIL_BROKER_SSL_KEYFILE": str(tls_files.client_key),
            "VIGIL_BROKER_SSL_KEY_PASSWORD": tls_files.client_key_password,
        }

    def test_a_worker_with_a_client_certificate_runs_end_to_end(
        self, mtls_broker, tls_files, tmp_path
    ):
        assert mtls_broker.secure_bootstrap is not None
        dep = _deployment(mtls_broker.secure_bootstrap, tmp_path, self.env(tls_files))
        context = create_ssl_context(
            cafile=str(tls_files.ca),
            certfile=str(tls_files.client_cert),
            keyfile=str(tls_files.client_key),
            password=tls_files.client_key_password,
        )
        client = {
            "bootstrap_servers": mtls_broker.secure_bootstrap,
            "security_protocol": "SSL",
            "ssl_context": context,
        }
        try:
            worker = dep.worker().start().wait_ready()
            alert = _large_amount_alert(dep, client)
            assert "large_amount" in {hit["rule"] for hit in alert["rules"]}
            assert worker.stop() == 0, worker.tail()
            assert tls_files.client_key_password not in worker.log_path.read_text()
        finally:
            for w in dep.workers:
                w.kill()

    def test_no_client_certificate_stops_start_up_with_one_line(
        self, mtls_broker, tls_files, tmp_path
    ):
        assert mtls_broker.secure_bootstrap is not None
        env = {
            **_deployment(mtls_broker.secure_bootstrap, tmp_path, {}).env,
            "VIGIL_BROKER_SECURITY_PROTOCOL": "SSL",
            "VIGIL_BROKER_SSL_CAFILE": str(tls_files.ca),
            "VIGIL_STORE_DIR": str(tmp_path / "store"),
        }
        proc = _worker_cli(env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, proc.stderr
        assert "TLS failed" in lines[0] and "VIGIL_BROKER_SSL_CERTFILE" in lines[0], lines[0]
