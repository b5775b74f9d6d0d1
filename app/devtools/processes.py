"""The one harness for `vigil worker` processes, and the one free-port finder.

The tests, the benchmark and the demo all start real workers as child processes and watch
them through their web port; this is that code, once. A worker logs to its own file, runs in
its own session (so a kill reaches its whole process group), and by default dies with its
parent (Linux), so no worker outlives the test run or the benchmark that started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path


class WorkerError(RuntimeError):
    """A worker exited, or did not become ready in time (the message ends with its log)."""


def free_port() -> int:
    """An unused loopback port, as the kernel hands it out (tiny race until it is bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent(sig: int) -> None:  # pragma: no cover - runs in the forked child
    """Linux: deliver `sig` to the worker when its parent dies (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, sig)


class WorkerProcess:
    """`python -m app.cli worker` as a child process, logging to `log_path`.

    The child's environment is this process's, without its `VIGIL_*` variables unless
    `inherit_settings`, plus `env`; `port` is its `VIGIL_WEB_PORT`.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        port: int,
        *,
        cwd: Path | None = None,
        inherit_settings: bool = False,
        death_signal: int | None = signal.SIGKILL,
        host: str = "127.0.0.1",
    ) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.port = port
        self.cwd = cwd
        self.inherit_settings = inherit_settings
        self.death_signal = death_signal
        self.host = host
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.last_stop_s = 0.0

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise WorkerError("the worker was never started")
        return self.proc.pid

    def start(self) -> WorkerProcess:
        env = {
            k: v
            for k, v in os.environ.items()
            if self.inherit_settings or not k.startswith("VIGIL_")
        }
        env.update(self.env)
        env["VIGIL_WEB_PORT"] = str(self.port)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        sig = self.death_signal
        linux = sys.platform.startswith("linux")
        with open(self.log_path, "ab") as log:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"],
                env=env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(lambda: die_with_parent(sig)) if sig is not None and linux else None,
            )
        return self

    def http(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET `path` on the worker's web port: (status, body); (0, b"") when nothing answers."""
        try:
            url = f"http://{self.host}:{self.port}{path}"
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (OSError, ValueError):
            return 0, b""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def wait_ready(self, timeout: float = 120.0, interval: float = 0.2) -> float:
        """Block until /readyz answers 200; return the seconds since `start()`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise WorkerError(f"worker exited {self.returncode()}:\n{self.tail()}")
            status, _ = self.http("/readyz", timeout=2.0)
            if status == 200:
                return time.monotonic() - self.started_at
            time.sleep(interval)
        raise WorkerError(f"worker not ready after {timeout:.0f} s:\n{self.tail()}")

    def metrics(self) -> str:
        """The worker's /metrics text ("" when it does not answer)."""
        status, body = self.http("/metrics")
        return body.decode() if status == 200 else ""

    def metric(self, name: str, label: str = "") -> float | None:
        """The value of the first sample of `name` whose labels contain `label`."""
        for line in self.metrics().splitlines():
            if line.startswith(name) and label in line:
                head, _, value = line.rpartition(" ")
                if head.split("{", 1)[0] == name:
                    try:
                        return float(value)
                    except ValueError:
                        return None
        return None

    def metric_sum(self, name: str, label: str = "") -> float | None:
        """Sum of every sample of `name` whose labels contain `label` (None: no /metrics)."""
        text = self.metrics()
        if not text:
            return None
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and label in line:
                with contextlib.suppress(ValueError):
                    total += float(line.rpartition(" ")[2])
        return total

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait (SIGKILL after `timeout`): a clean stop commits what was processed.

        Returns the exit code (None when it had to be killed); `last_stop_s` says how long it
        took.
        """
        started = time.monotonic()
        self.last_stop_s = 0.0
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = None
        self.last_stop_s = time.monotonic() - started
        return code

    def kill(self) -> None:
        """SIGKILL the worker's process group: no shutdown, no commit."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def tail(self, lines: int = 60) -> str:
        """The last `lines` of the worker's log."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])
