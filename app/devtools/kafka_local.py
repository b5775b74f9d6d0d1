"""A real, single-node Apache Kafka broker started from Apache's own jars.

Why this exists: Vigil's demo and integration tests need a genuine Kafka (transactions, compaction,
consumer groups behave exactly as in production), but the machines we develop and test on have no
Docker engine. Java and Maven are there, and Maven Central carries every jar a broker needs, so we
fetch them once into a cache outside the work tree (``deploy/kafka/pom.xml`` names them) and run
``kafka.Kafka`` in KRaft combined mode (broker and controller in one JVM, no ZooKeeper).

Everything here is plain Python plus aiokafka; it must not import faust, so the CLI and the test
fixture can use it without loading the stream-processing app.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import ctypes
import fcntl
import functools
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

__all__ = [
    "DEFAULT_LOG4J",
    "DEFAULT_POM",
    "KafkaStartError",
    "KafkaStatus",
    "KafkaToolingError",
    "LocalKafka",
    "TopicSpec",
    "create_topics",
    "default_cache_dir",
    "default_home",
    "kafka_version",
    "main_kafka",
    "wait_for_broker",
]

_REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POM = _REPO_ROOT / "deploy" / "kafka" / "pom.xml"
DEFAULT_LOG4J = _REPO_ROOT / "deploy" / "kafka" / "log4j.properties"

_MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_KAFKA_ARTIFACT = "kafka_2.13"
_MARKER = ".complete"
_STATE_FILE = "state.json"
_LOG_FILE = "kafka.log"
_PROPS_FILE = "server.properties"
_DATA_DIR = "data"
_NODE_ID = 1

T = TypeVar("T")


class KafkaToolingError(RuntimeError):
    """Java, Maven or the broker jars are missing: nothing can start until a person installs them.

    A distinct type so the test fixture and the CLI can say exactly what to install instead of
    showing a stack trace from deep inside ``subprocess``.
    """


class KafkaStartError(RuntimeError):
    """The broker was launched but did not come up; the message carries the tail of its log."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: Kafka's defaults are wrong for Vigil (1 partition, delete policy)."""

    name: str
    partitions: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    replication_factor: int = 1


@dataclass(frozen=True)
class KafkaStatus:
    """What ``vigil kafka status`` reports and ``start()`` returns: enough to connect and debug."""

    running: bool
    pid: int | None
    bootstrap: str | None
    version: str
    log_path: Path

    @property
    def url(self) -> str | None:
        """The broker as Faust wants it in ``VIGIL_BROKER`` (``kafka://host:port``)."""
        return f"kafka://{self.bootstrap}" if self.bootstrap else None


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def default_home() -> Path:
    """Where broker data, config, log and state live: ``$VIGIL_KAFKA_HOME`` or ``./var/kafka``.

    Relative to the current directory on purpose: each checkout gets its own broker, and
    ``/var/`` is git-ignored.
    """
    return Path(os.environ.get("VIGIL_KAFKA_HOME") or "var/kafka").resolve()


def default_cache_dir() -> Path:
    """Where jars are cached: outside the work tree so a fresh clone does not download again."""
    env = os.environ.get("VIGIL_KAFKA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vigil"


def kafka_version(pom: Path | None = None) -> str:
    """The Kafka version pinned in the POM: one source of truth for the jars and for reports."""
    pom = pom or DEFAULT_POM
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise KafkaToolingError(f"cannot read the Kafka POM {pom}: {exc}") from exc
    props: dict[str, str] = {}
    props_el = root.find("m:properties", _POM_NS)
    if props_el is not None:
        for child in props_el:
            tag = child.tag.split("}", 1)[-1]
            props[tag] = (child.text or "").strip()
    for dep in root.iterfind("m:dependencies/m:dependency", _POM_NS):
        if dep.findtext("m:artifactId", "", _POM_NS).strip() != _KAFKA_ARTIFACT:
            continue
        version = dep.findtext("m:version", "", _POM_NS).strip()
        if version.startswith("${") and version.endswith("}"):
            version = props.get(version[2:-1], "")
        if version:
            return version
    raise KafkaToolingError(f"{pom} names no pinned version of org.apache.kafka:{_KAFKA_ARTIFACT}")


def _find_java() -> str:
    """``$JAVA_HOME/bin/java`` if set (what the Kafka scripts honour), else ``java`` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise KafkaToolingError(
            "java not found (neither $JAVA_HOME/bin/java nor java on PATH): install a JDK/JRE "
            "(Java 17 recommended; e.g. `apt-get install openjdk-17-jre-headless`)"
        )
    return java


def _free_port() -> int:
    """Ask the kernel for an unused loopback port (tiny race until Kafka binds it: see retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    """Whether a port can be bound right now, to reuse last run's ports when possible."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _tcp_open(host: str, port: int) -> bool:
    """Cheap first readiness check, so aiokafka is not asked (and does not log) too early."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _split_bootstrap(bootstrap: str) -> tuple[str, int]:
    """``host:port`` (optionally ``kafka://``-prefixed, first of a comma list) → (host, port)."""
    first = bootstrap.removeprefix("kafka://").split(",", 1)[0].strip()
    host, _, port = first.rpartition(":")
    return host or "127.0.0.1", int(port)


def _tail(path: Path, lines: int = 40) -> str:
    """The end of the broker log, for error messages that explain themselves."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code, even when called inside a running event loop.

    ``start()`` is sync (CLI, session fixtures) but its readiness probe uses aiokafka; inside an
    already running loop ``asyncio.run`` is refused, so the probe then runs in its own thread.
    """

    async def _main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_main())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _main()).result()


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (a killed child we have not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _is_our_broker(pid: int, props: Path) -> bool:
    """Guard against pid reuse: only signal a process that runs kafka.Kafka with our config."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (not Linux): trust the state file
    return b"kafka.Kafka" in cmdline and str(props).encode() in cmdline


def _reap(pid: int) -> None:
    """Collect the exit status if the broker is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Linux only: SIGTERM the broker if the process that started it dies (even by SIGKILL).

    Used for test brokers, so a killed pytest does not leave a JVM holding 512 MiB behind.
    """
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# --------------------------------------------------------------------------------------------
# Admin helpers (async)
# --------------------------------------------------------------------------------------------


async def _cluster_ready(bootstrap: str, timeout: float) -> bool:
    """One metadata round trip: the broker is ready when it lists itself as a live node."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(timeout * 1000))
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
        return bool(cluster.get("brokers"))
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def wait_for_broker(
    bootstrap: str,
    timeout: float = 60.0,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Block until a broker answers a metadata request; used for ours and for external ones.

    ``alive`` lets the caller stop waiting as soon as its process has died (no point in waiting
    60 s for a JVM that exited after one).
    """
    host, port = _split_bootstrap(bootstrap)
    deadline = time.monotonic() + timeout
    last_error = "the port never opened"
    while True:
        if alive is not None and not alive():
            raise KafkaStartError(f"the broker process exited before answering at {bootstrap}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"no Kafka broker answered at {bootstrap} in {timeout:.0f} s ({last_error})"
            )
        if _tcp_open(host, port):
            probe_timeout = min(5.0, max(remaining, 0.5))
            try:
                if _run_sync(functools.partial(_cluster_ready, bootstrap, probe_timeout)):
                    return
                last_error = "metadata listed no broker yet"
            except Exception as exc:
                last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.2)


async def create_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec | str],
    *,
    timeout: float = 30.0,
) -> list[str]:
    """Create topics (a bare name means 1 partition, broker defaults), ignoring existing ones.

    Why: the broker runs with ``auto.create.topics.enable=false`` so a typo never silently makes
    a topic; Vigil creates its topics explicitly, with the partition count its tables need and
    e.g. ``cleanup.policy=compact`` for changelogs. Returns the names that were newly created,
    after waiting until every partition of every requested topic has a leader, so a producer
    that starts right after does not see ``UnknownTopicOrPartition``.
    """
    topics = [TopicSpec(s) if isinstance(s, str) else s for s in specs]
    if not topics:
        return []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    created: list[str] = []
    try:
        await admin.start()
        response = await admin.create_topics(
            [
                NewTopic(
                    name=t.name,
                    num_partitions=t.partitions,
                    replication_factor=t.replication_factor,
                    topic_configs={k: str(v) for k, v in t.config.items()},
                )
                for t in topics
            ],
            timeout_ms=int(timeout * 1000),
        )
        errors: list[str] = []
        for entry in response.topic_errors:
            name, code = entry[0], entry[1]
            message = entry[2] if len(entry) > 2 else None
            if code == 0:
                created.append(name)
            elif for_code(code) is not TopicAlreadyExistsError:
                errors.append(f"{name}: {for_code(code).__name__} {message or ''}".strip())
        if errors:
            raise RuntimeError("could not create Kafka topics: " + "; ".join(errors))
        await _wait_for_leaders(admin, [t.name for t in topics], timeout)
    finally:
        await admin.close()
    return created


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout: float) -> None:
    """Creation is acknowledged before metadata shows leaders; wait for them, briefly."""
    deadline = time.monotonic() + timeout
    while True:
        described: list[dict[str, Any]] = await admin.describe_topics(names)
        ready = {
            t["topic"]
            for t in described
            if t["error_code"] == 0
            and t["partitions"]
            and all(p["leader"] >= 0 for p in t["partitions"])
        }
        if ready >= set(names):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without leaders after {timeout} s: {set(names) - ready}")
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------------------------
# The broker
# --------------------------------------------------------------------------------------------


class LocalKafka:
    """Start, find, and stop one local broker whose data, config, log and state live in ``home``.

    The state file (``home/state.json``) makes ``start()`` idempotent across processes: ``vigil
    kafka start`` twice, or ``vigil demo`` after it, finds and reuses the live broker.
    """

    def __init__(
        self,
        home: Path | str | None = None,
        *,
        cache_dir: Path | str | None = None,
        pom: Path | str | None = None,
        log4j: Path | str | None = None,
        heap: tuple[str, str] = ("256m", "512m"),
        extra_config: Mapping[str, str] | None = None,
        stop_at_exit: bool = False,
        die_with_parent: bool = False,
    ) -> None:
        """Configure, do not start. ``stop_at_exit``/``die_with_parent`` are for test brokers
        that must never outlive the test run; a CLI-started broker keeps running on purpose.
        """
        self.home = Path(home).resolve() if home is not None else default_home()
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.pom = Path(pom) if pom else DEFAULT_POM
        self.log4j = Path(log4j) if log4j else DEFAULT_LOG4J
        self.heap = heap
        self.extra_config = dict(extra_config or {})
        self.stop_at_exit = stop_at_exit
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False

    # ---- paths -------------------------------------------------------------------------------

    @property
    def version(self) -> str:
        """The pinned Kafka version (read from the POM each time: cheap, never stale)."""
        return kafka_version(self.pom)

    @property
    def log_path(self) -> Path:
        """The broker's stdout/stderr: the first place to look when it misbehaves."""
        return self.home / _LOG_FILE

    @property
    def state_path(self) -> Path:
        """Records pid and address of the running broker, for other processes."""
        return self.home / _STATE_FILE

    @property
    def props_path(self) -> Path:
        """The generated ``server.properties``."""
        return self.home / _PROPS_FILE

    @property
    def launched(self) -> bool:
        """Whether this object launched the running JVM (``start()`` may have reused one)."""
        return self._launched_alive()

    def jars_dir(self) -> Path:
        """Where this version's jars live in the cache (not necessarily downloaded yet)."""
        return self.cache_dir / f"kafka-{self.version}" / "jars"

    # ---- jars --------------------------------------------------------------------------------

    def ensure_jars(self) -> Path:
        """Download the broker jars with Maven once; later calls return the cached directory.

        A marker holding the POM's hash says the download completed (so an interrupted one is
        redone, and editing the POM refetches). Jars land in a temp dir that is renamed into
        place, under a file lock, so two concurrent test runs never see half a classpath.
        """
        jars = self.jars_dir()
        marker = jars.parent / _MARKER
        try:
            pom_text = self.pom.read_bytes()
        except OSError as exc:
            raise KafkaToolingError(f"cannot read the Kafka POM {self.pom}: {exc}") from exc
        digest = hashlib.sha256(pom_text).hexdigest()

        def complete() -> bool:
            with contextlib.suppress(OSError):
                return marker.read_text().strip() == digest and any(jars.glob("kafka_2.13-*.jar"))
            return False

        if complete():
            return jars
        mvn = shutil.which("mvn")
        if not mvn:
            raise KafkaToolingError(
                "mvn (Apache Maven) not found on PATH: it downloads the Kafka broker jars from "
                "Maven Central. Install it (e.g. `apt-get install maven`)"
            )
        _find_java()  # Maven needs Java too; fail with the clearer message
        jars.parent.mkdir(parents=True, exist_ok=True)
        with (jars.parent / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if complete():  # another process finished while we waited
                return jars
            tmp = jars.parent / f"jars.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            cmd = [
                mvn,
                "-B",
                "-q",
                "-f",
                str(self.pom),
                f"{_MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
            ]
            try:
                result = subprocess.run(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=1800,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise KafkaToolingError(
                    f"Maven took over 30 min fetching Kafka jars: {exc}"
                ) from exc
            if result.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
                shutil.rmtree(tmp, ignore_errors=True)
                output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
                raise KafkaToolingError(
                    f"downloading Kafka {self.version} jars failed (exit {result.returncode}) "
                    f"running: {' '.join(cmd)}\n{output}"
                )
            shutil.rmtree(jars, ignore_errors=True)
            tmp.rename(jars)
            marker.write_text(digest + "\n")
        return jars

    # ---- state -------------------------------------------------------------------------------

    def _read_state(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _write_state(self, data: Mapping[str, Any]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_path)

    def _live_pid(self, state: Mapping[str, Any] | None) -> int | None:
        """The recorded pid if it is still our broker (not a dead or reused pid)."""
        if not state or not isinstance(state.get("pid"), int):
            return None
        pid = int(state["pid"])
        return pid if _is_our_broker(pid, self.props_path) else None

    def status(self) -> KafkaStatus:
        """Report the broker recorded in the state file, checking that its process still lives."""
        state = self._read_state()
        pid = self._live_pid(state)
        running = pid is not None and state is not None
        return KafkaStatus(
            running=running,
            pid=pid,
            bootstrap=str(state["bootstrap"]) if running and state else None,
            version=str(state.get("version")) if running and state else self.version,
            log_path=self.log_path,
        )

    # ---- start -------------------------------------------------------------------------------

    def _previous_ports(self) -> tuple[int, int] | None:
        """Ports of the last run, reused when free so ``VIGIL_BROKER`` stays valid."""
        try:
            lines = self.props_path.read_text().splitlines()
        except OSError:
            return None
        props = dict(line.split("=", 1) for line in lines if "=" in line and line[:1] != "#")
        try:
            broker = int(props["advertised.listeners"].rsplit(":", 1)[1])
            controller = int(props["controller.quorum.voters"].rsplit(":", 1)[1])
        except (KeyError, IndexError, ValueError):
            return None
        if broker != controller and _port_free(broker) and _port_free(controller):
            return broker, controller
        return None

    def _server_properties(self, broker_port: int, controller_port: int) -> str:
        """A single-node KRaft config sized for a laptop or CI box, not for production."""
        props: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": str(_NODE_ID),
            "controller.quorum.voters": f"{_NODE_ID}@127.0.0.1:{controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.home / _DATA_DIR),
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
            # Vigil creates its topics explicitly; a typo must not silently create one.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
        }
        props.update(self.extra_config)
        header = "# Generated by app/kafka_local.py; rewritten on every start.\n"
        return header + "".join(f"{k}={v}\n" for k, v in props.items())

    def _java_cmd(self, java: str, jars: Path, *args: str) -> list[str]:
        return [
            java,
            "-cp",
            str(jars / "*"),
            f"-Dlog4j.configuration=file:{self.log4j.resolve()}",
            *args,
        ]

    def _format_storage(self, java: str, jars: Path) -> None:
        """Format the KRaft metadata log once; an already formatted dir keeps its topics."""
        if (self.home / _DATA_DIR / "meta.properties").exists():
            return

        def run(*args: str) -> str:
            cmd = self._java_cmd(java, jars, "kafka.tools.StorageTool", *args)
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
        run("format", "-t", lines[-1], "-c", str(self.props_path))

    def _launch(self, java: str, jars: Path, broker_port: int, controller_port: int) -> int:
        """Write config, format if needed, and spawn the JVM detached from our terminal."""
        self.props_path.write_text(self._server_properties(broker_port, controller_port))
        self._format_storage(java, jars)
        xms, xmx = self.heap
        cmd = self._java_cmd(java, jars, "kafka.Kafka", str(self.props_path))
        cmd[1:1] = [f"-Xms{xms}", f"-Xmx{xmx}", "-Djava.awt.headless=true"]
        with self.log_path.open("ab") as log:
            log.write(f"\n==== {time.strftime('%F %T')} starting: {' '.join(cmd)}\n".encode())
            log.flush()
            use_pdeathsig = self.die_with_parent and sys.platform.startswith("linux")
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                # Own session: Ctrl-C in the shell that ran `vigil kafka start` must not kill it.
                start_new_session=True,
                preexec_fn=_die_with_parent if use_pdeathsig else None,
            )
        return self._proc.pid

    def start(self, timeout: float = 60.0, *, fresh: bool = False) -> KafkaStatus:
        """Start the broker (or return the live one recorded in the state file) and wait for it.

        ``fresh`` wipes the data dir first (topics and offsets gone; ignored if a broker is
        already running); otherwise a restart keeps them and reuses the previous ports when free.
        A lock file serialises concurrent starts on one home: the second caller gets the first
        caller's broker instead of a second JVM fighting over the same data dir.
        """
        current = self.status()
        if current.running:
            return current
        java = _find_java()
        jars = self.ensure_jars()
        if not self.log4j.is_file():
            raise KafkaToolingError(f"log4j config not found: {self.log4j}")
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / ".start.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._start_locked(java, jars, timeout, fresh)

    def _start_locked(self, java: str, jars: Path, timeout: float, fresh: bool) -> KafkaStatus:
        current = self.status()
        if current.running:  # started by another process while we waited for the lock
            return current
        self.state_path.unlink(missing_ok=True)  # stale: the recorded process is gone
        if fresh:
            shutil.rmtree(self.home / _DATA_DIR, ignore_errors=True)

        ports = self._previous_ports()
        for attempt in range(3):
            broker_port, controller_port = ports or (_free_port(), _free_port())
            ports = None
            if broker_port == controller_port:
                continue
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            started = time.monotonic()
            pid = self._launch(java, jars, broker_port, controller_port)
            bootstrap = f"127.0.0.1:{broker_port}"
            self._write_state(
                {
                    "pid": pid,
                    "bootstrap": bootstrap,
                    "version": self.version,
                    "log": str(self.log_path),
                    "broker_port": broker_port,
                    "controller_port": controller_port,
                    "started_at": time.time(),
                }
            )
            if self.stop_at_exit and not self._atexit_registered:
                atexit.register(self._stop_quietly)
                self._atexit_registered = True
            try:
                wait_for_broker(
                    bootstrap,
                    timeout=max(1.0, timeout - (time.monotonic() - started)),
                    alive=self._launched_alive,
                )
            except (KafkaStartError, TimeoutError) as exc:
                log_tail = _tail(self.log_path)
                self.stop()
                new_output = self._log_since(log_offset)
                if "Address already in use" in new_output and attempt < 2:
                    continue  # lost the race for a port: pick new ones
                raise KafkaStartError(
                    f"Kafka {self.version} did not start at {bootstrap}: {exc}\n"
                    f"--- last lines of {self.log_path} ---\n{log_tail}"
                ) from exc
            return KafkaStatus(True, pid, bootstrap, self.version, self.log_path)
        raise KafkaStartError("could not find two free loopback ports for Kafka")

    def _launched_alive(self) -> bool:
        """Whether the JVM this object launched still runs (readiness waits stop if not)."""
        return self._proc is not None and self._proc.poll() is None

    def _log_since(self, offset: int) -> str:
        with contextlib.suppress(OSError), self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
        return ""

    # ---- stop --------------------------------------------------------------------------------

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        proc = self._proc if self._proc is not None and self._proc.pid == pid else None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    return True
            else:
                _reap(pid)
                if not _pid_alive(pid):
                    return True
            time.sleep(0.1)
        return False

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM (Kafka then flushes and closes its logs cleanly), SIGKILL after ``timeout``.

        Returns whether a live broker was stopped. Always removes the state file.
        """
        state = self._read_state()
        pid = self._live_pid(state)
        if pid is None and self._proc is not None and self._proc.poll() is None:
            pid = self._proc.pid
        stopped = False
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._wait_gone(pid, 5.0)
            stopped = True
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1)
            self._proc = None
        self.state_path.unlink(missing_ok=True)
        if self._atexit_registered:
            atexit.unregister(self._stop_quietly)
            self._atexit_registered = False
        return stopped

    def _stop_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# CLI: `vigil kafka start|stop|status`
# --------------------------------------------------------------------------------------------


def main_kafka(argv: list[str]) -> int:
    """``vigil kafka start|stop|status``. ``start`` prints ``export VIGIL_BROKER=...`` on stdout
    (everything else on stderr) so ``eval "$(vigil kafka start)"`` configures a shell.

    Exit codes: 0 ok; 1 failed to start or missing tooling; 3 for ``status`` when not running.
    """
    parser = argparse.ArgumentParser(
        prog="vigil kafka", description="Run a local single-node Apache Kafka broker (KRaft)."
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="data/config/log dir (default: $VIGIL_KAFKA_HOME or ./var/kafka)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="jar cache (default: $VIGIL_KAFKA_CACHE or ~/.cache/vigil)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start the broker (no-op if it already runs)")
    p_start.add_argument("--fresh", action="store_true", help="wipe topics and offsets first")
    p_start.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (60)")
    p_stop = sub.add_parser("stop", help="stop the broker")
    p_stop.add_argument("--timeout", type=float, default=20.0, help="seconds before SIGKILL")
    p_status = sub.add_parser("status", help="show whether the broker runs, and where")
    p_status.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)

    kafka = LocalKafka(args.home, cache_dir=args.cache)
    try:
        if args.command == "start":
            t0 = time.monotonic()
            st = kafka.start(timeout=args.timeout, fresh=args.fresh)
            how = (
                f"started in {time.monotonic() - t0:.1f} s" if kafka.launched else "already running"
            )
            print(
                f"Kafka {st.version} broker at {st.bootstrap} ({how}; pid {st.pid}; "
                f"log {st.log_path})",
                file=sys.stderr,
            )
            print(f"export VIGIL_BROKER={st.url}")
            return 0
        if args.command == "stop":
            stopped = kafka.stop(timeout=args.timeout)
            print(
                "Kafka broker stopped" if stopped else "no Kafka broker was running",
                file=sys.stderr,
            )
            return 0
        st = kafka.status()
        if args.json:
            data = asdict(st)
            data["log_path"] = str(st.log_path)
            print(json.dumps(data))
        elif st.running:
            print(
                f"running: Kafka {st.version} at {st.bootstrap} (pid {st.pid}; log {st.log_path})"
            )
            print(f"export VIGIL_BROKER={st.url}")
        else:
            print(f"not running (Kafka {st.version}; home {kafka.home})")
        return 0 if st.running else 3
    except (KafkaToolingError, KafkaStartError) as exc:
        print(f"vigil kafka {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_kafka(sys.argv[1:]))
