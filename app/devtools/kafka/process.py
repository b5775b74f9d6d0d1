"""The broker process: start, find, and stop one ``kafka.Kafka`` JVM per home directory.

The jars come from `jars`, the configuration from `config`; this module owns the process:
its state file (so other processes find and reuse it), its log, the ports retry, and stopping
it cleanly (SIGTERM, then SIGKILL) without ever signalling a stranger that reused its pid.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.devtools.kafka import config
from app.devtools.kafka.admin import wait_for_broker
from app.devtools.kafka.errors import KafkaStartError, KafkaToolingError
from app.devtools.kafka.jars import (
    default_cache_dir,
    default_log4j,
    ensure_jars,
    find_java,
    find_pom,
    jars_dir,
    kafka_version,
)
from app.devtools.kafka.pids import is_our_broker, pid_alive, reap, tail
from app.devtools.processes import die_with_parent

_STATE_FILE = "state.json"
_LOG_FILE = "kafka.log"
_PROPS_FILE = "server.properties"
_DATA_DIR = "data"


@dataclass(frozen=True)
class KafkaStatus:
    """What ``vigil kafka status`` reports and ``start()`` returns: enough to connect and debug."""

    running: bool
    pid: int | None
    bootstrap: str | None
    version: str
    log_path: Path
    #: The secured listener's `host:port` (a `LocalKafka(security=...)` only).
    secure_bootstrap: str | None = None

    @property
    def url(self) -> str | None:
        """The broker as Faust wants it in ``VIGIL_BROKER`` (``kafka://host:port``)."""
        return f"kafka://{self.bootstrap}" if self.bootstrap else None


def default_home() -> Path:
    """Where broker data, config, log and state live: ``$VIGIL_KAFKA_HOME`` or ``./var/kafka``.

    Relative to the current directory on purpose: each checkout gets its own broker, and
    ``/var/`` is git-ignored.
    """
    return Path(os.environ.get("VIGIL_KAFKA_HOME") or "var/kafka").resolve()


def _sigterm_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """SIGTERM the broker if the process that started it dies (a killed pytest leaves no JVM)."""
    die_with_parent(signal.SIGTERM)


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
        security: config.ListenerSecurity | None = None,
        stop_at_exit: bool = False,
        die_with_parent: bool = False,
    ) -> None:
        """Configure, do not start. ``stop_at_exit``/``die_with_parent`` are for test brokers
        that must never outlive the test run; a CLI-started broker keeps running on purpose.
        ``security`` adds a secured client listener on a port of its own (`status().
        secure_bootstrap`), beside the PLAINTEXT one; without it the broker is unchanged.
        """
        self.home = Path(home).resolve() if home is not None else default_home()
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self._pom = Path(pom) if pom else None
        self._log4j = Path(log4j) if log4j else None
        self.heap = heap
        self.extra_config = dict(extra_config or {})
        self.security = security
        self.stop_at_exit = stop_at_exit
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False

    # ---- paths -------------------------------------------------------------------------------

    @property
    def pom(self) -> Path:
        """The POM naming the jars: as given, else `find_pom()` (the source checkout's).

        Resolved on first use, not in ``__init__``: without a checkout the error then comes from
        ``start()``/``status()``, which callers already guard for `KafkaToolingError`.
        """
        if self._pom is None:
            self._pom = find_pom()
        return self._pom

    @property
    def log4j(self) -> Path:
        """The broker's log4j config: as given, else ``log4j.properties`` beside the POM."""
        return self._log4j if self._log4j is not None else default_log4j(self.pom)

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
        return jars_dir(self.cache_dir, self.version)

    # ---- jars --------------------------------------------------------------------------------

    def ensure_jars(self) -> Path:
        """Download the broker jars with Maven once (see `jars.ensure_jars`); returns their dir."""
        return ensure_jars(self.pom, self.cache_dir)

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
        return pid if is_our_broker(pid, self.props_path) else None

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
            secure_bootstrap=(
                str(state["secure_bootstrap"])
                if running and state and state.get("secure_bootstrap")
                else None
            ),
        )

    # ---- start -------------------------------------------------------------------------------

    def _launch(
        self,
        java: str,
        jars: Path,
        broker_port: int,
        controller_port: int,
        secure_port: int | None = None,
    ) -> int:
        """Write config, format if needed, and spawn the JVM detached from our terminal."""
        data_dir = self.home / _DATA_DIR
        self.props_path.write_text(
            config.server_properties(
                data_dir,
                broker_port,
                controller_port,
                self.extra_config,
                self.security,
                secure_port,
            )
        )
        format_args = self.security.format_args() if self.security is not None else []
        config.format_storage(java, jars, self.log4j, data_dir, self.props_path, format_args)
        xms, xmx = self.heap
        cmd = config.java_cmd(java, jars, self.log4j, "kafka.Kafka", str(self.props_path))
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
                preexec_fn=_sigterm_with_parent if use_pdeathsig else None,
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
        java = find_java()
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

        ports = config.previous_ports(self.props_path)
        for attempt in range(3):
            broker_port, controller_port = ports or (config.free_port(), config.free_port())
            ports = None
            if broker_port == controller_port:
                continue
            secure_port = None
            if self.security is not None:
                secure_port = config.free_port()
                if secure_port in (broker_port, controller_port):
                    continue
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            started = time.monotonic()
            pid = self._launch(java, jars, broker_port, controller_port, secure_port)
            bootstrap = f"127.0.0.1:{broker_port}"
            secure = f"127.0.0.1:{secure_port}" if secure_port is not None else None
            self._write_state(
                {
                    "pid": pid,
                    "bootstrap": bootstrap,
                    "secure_bootstrap": secure,
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
                log_tail = tail(self.log_path)
                self.stop()
                new_output = self._log_since(log_offset)
                if "Address already in use" in new_output and attempt < 2:
                    continue  # lost the race for a port: pick new ones
                raise KafkaStartError(
                    f"Kafka {self.version} did not start at {bootstrap}: {exc}\n"
                    f"--- last lines of {self.log_path} ---\n{log_tail}"
                ) from exc
            return KafkaStatus(True, pid, bootstrap, self.version, self.log_path, secure)
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
                reap(pid)
                if not pid_alive(pid):
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
