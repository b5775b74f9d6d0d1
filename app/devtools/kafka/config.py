"""The broker's configuration: a single-node KRaft ``server.properties``, its ports and storage.

KRaft combined mode (broker and controller in one JVM, no ZooKeeper) needs two loopback ports
and a metadata log formatted once with a cluster id; both are done here, apart from the process
handling, so what the broker is told is readable in one place.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from app.devtools import processes
from app.devtools.kafka.errors import KafkaStartError

NODE_ID = 1


# An unused loopback port (tiny race until Kafka binds it: the start retries).
free_port = processes.free_port


def port_free(port: int) -> bool:
    """Whether a port can be bound right now, to reuse last run's ports when possible."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the JVM binds (SO_REUSEADDR): the connections of the broker's last run that wait
        # in TIME_WAIT must not make a restart move to new ports.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def previous_ports(props_path: Path) -> tuple[int, int] | None:
    """Ports of the last run, reused when free so ``VIGIL_BROKER`` stays valid."""
    try:
        lines = props_path.read_text().splitlines()
    except OSError:
        return None
    props = dict(line.split("=", 1) for line in lines if "=" in line and line[:1] != "#")
    try:
        plain = next(
            a for a in props["advertised.listeners"].split(",") if a.startswith("PLAINTEXT://")
        )
        broker = int(plain.rsplit(":", 1)[1])
        controller = int(props["controller.quorum.voters"].rsplit(":", 1)[1])
    except (KeyError, IndexError, ValueError, StopIteration):
        return None
    if broker != controller and port_free(broker) and port_free(controller):
        return broker, controller
    return None


@dataclass(frozen=True)
class ListenerSecurity:
    """A secured client listener (SSL, SASL_SSL or SASL_PLAINTEXT) beside the PLAINTEXT one.

    For tests of Vigil's security settings: the PLAINTEXT client, inter-broker and controller
    listeners stay as they are on loopback; this one gets its own port. Kafka reads PEM files
    directly (KIP-651): `keystore` holds the broker's private key (PKCS#8) and certificate
    chain, `truststore` the CAs of client certificates (for `client_auth`). SCRAM users are
    created when the storage is formatted (KIP-900), so they exist from the first start.
    """

    protocol: Literal["SSL", "SASL_SSL", "SASL_PLAINTEXT"]
    keystore: Path | None = None
    truststore: Path | None = None
    client_auth: Literal["none", "requested", "required"] = "none"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    #: user -> password: SCRAM credentials (`sasl_mechanism` SCRAM-*) or PLAIN users.
    users: Mapping[str, str] = field(default_factory=dict)
    name: str = "SECURE"

    def listener_config(self) -> dict[str, str]:
        """The listener's `listener.name.<name>.*` settings."""
        prefix = f"listener.name.{self.name.lower()}."
        props: dict[str, str] = {}
        if self.protocol in ("SSL", "SASL_SSL"):
            if self.keystore is None:
                raise ValueError(f"a {self.protocol} listener needs a keystore")
            props[prefix + "ssl.keystore.type"] = "PEM"
            props[prefix + "ssl.keystore.location"] = str(self.keystore)
            if self.truststore is not None:
                props[prefix + "ssl.truststore.type"] = "PEM"
                props[prefix + "ssl.truststore.location"] = str(self.truststore)
            props[prefix + "ssl.client.auth"] = self.client_auth
        if self.protocol.startswith("SASL_"):
            mech = self.sasl_mechanism
            props[prefix + "sasl.enabled.mechanisms"] = mech
            if mech == "PLAIN":
                users = "".join(f' user_{u}="{p}"' for u, p in self.users.items())
                module = "org.apache.kafka.common.security.plain.PlainLoginModule"
                props[prefix + "plain.sasl.jaas.config"] = f"{module} required{users};"
            else:
                module = "org.apache.kafka.common.security.scram.ScramLoginModule"
                props[prefix + f"{mech.lower()}.sasl.jaas.config"] = f"{module} required;"
        return props

    def format_args(self) -> list[str]:
        """`kafka-storage format` arguments creating the SCRAM users."""
        if not self.protocol.startswith("SASL_") or self.sasl_mechanism == "PLAIN":
            return []
        args: list[str] = []
        for user, password in self.users.items():
            args += ["--add-scram", f"{self.sasl_mechanism}=[name={user},password={password}]"]
        return args


def server_properties(
    data_dir: Path,
    broker_port: int,
    controller_port: int,
    extra: Mapping[str, str],
    security: ListenerSecurity | None = None,
    secure_port: int | None = None,
) -> str:
    """A single-node KRaft config sized for a laptop or CI box, not for production.

    With `security`, a second client listener on `secure_port` (see `ListenerSecurity`).
    """
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{controller_port}",
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        # One node: every internal topic must live with a single replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "min.insync.replicas": "1",
        # Fewer internal partitions: the first group join / transaction starts faster.
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.num.partitions": "4",
        "group.initial.rebalance.delay.ms": "0",
        # The cleaner's dedupe buffer defaults to 128 MiB of heap; 2 MiB suits a test broker.
        "log.cleaner.dedupe.buffer.size": "2097152",
        # Check for compactable logs every second (default 15 s) so compaction is observable.
        "log.cleaner.backoff.ms": "1000",
        # A crashed worker's open transaction holds back every read_committed reader of its
        # partitions (labels, outputs) until its successor fences it or the broker aborts it at
        # the transaction timeout; the broker looks for such transactions every 10 s by
        # default, which adds up to 10 s to that stall. Every second here (see the README's
        # Operations: Recovery for production brokers).
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
        # Vigil creates its topics explicitly; a typo must not silently create one.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
    }
    if security is not None:
        if secure_port is None:
            raise ValueError("a secured listener needs its port")
        name = security.name
        props["listeners"] += f",{name}://127.0.0.1:{secure_port}"
        props["advertised.listeners"] += f",{name}://127.0.0.1:{secure_port}"
        props["listener.security.protocol.map"] += f",{name}:{security.protocol}"
        props.update(security.listener_config())
    props.update(extra)
    header = "# Generated by app/devtools/kafka/config.py; rewritten on every start.\n"
    return header + "".join(f"{k}={v}\n" for k, v in props.items())


def java_cmd(java: str, jars: Path, log4j: Path, *args: str) -> list[str]:
    """A JVM command line over the cached jars, logging as ``log4j`` says."""
    return [
        java,
        "-cp",
        str(jars / "*"),
        f"-Dlog4j.configuration=file:{log4j.resolve()}",
        *args,
    ]


def format_storage(
    java: str,
    jars: Path,
    log4j: Path,
    data_dir: Path,
    props_path: Path,
    extra_args: Sequence[str] = (),
) -> None:
    """Format the KRaft metadata log once; an already formatted dir keeps its topics.

    `extra_args` go to `format` (e.g. `--add-scram ...`: `ListenerSecurity.format_args`).
    """
    if (data_dir / "meta.properties").exists():
        return

    def run(*args: str) -> str:
        cmd = java_cmd(java, jars, log4j, "kafka.tools.StorageTool", *args)
        res = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if res.returncode != 0:
            raise KafkaStartError(
                f"`{' '.join(cmd)}` failed (exit {res.returncode}):\n{res.stdout}{res.stderr}"
            )
        return res.stdout

    lines = [ln.strip() for ln in run("random-uuid").splitlines() if ln.strip()]
    if not lines:
        raise KafkaStartError("kafka.tools.StorageTool random-uuid printed no cluster id")
    run("format", "-t", lines[-1], "-c", str(props_path), *extra_args)
