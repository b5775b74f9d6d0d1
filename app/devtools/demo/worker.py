"""The demo's worker: `python -m app.cli worker` as a subprocess, ready-checked and stopped."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from app.devtools.demo.broker import tcp_open
from app.devtools.demo.choices import DEMO_ENV_DEFAULTS, READY_TIMEOUT_S, WORKER_STOP_TIMEOUT_S
from app.devtools.demo.console import DemoError, say
from app.settings import Settings


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Linux: SIGTERM the worker if the demo dies, even by SIGKILL: no orphan holding the port."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Worker:
    """One worker process with the demo's settings, its log in the store dir."""

    def __init__(self, settings: Settings, effective: Settings) -> None:
        """`settings` as the user gave them (to know what they set), `effective` as run."""
        self.settings = settings
        self.effective = effective
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["VIGIL_BROKER"] = self.effective.broker
        for field, (name, value) in DEMO_ENV_DEFAULTS.items():
            if field not in self.settings.model_fields_set:
                env[name] = value
        env["VIGIL_WEB_PORT"] = str(self.effective.web_port)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _web_host(self) -> str:
        bind = self.effective.web_bind
        return "127.0.0.1" if bind in ("0.0.0.0", "::", "", "localhost") else bind

    def start(self) -> None:
        """`python -m app.cli worker` in its own session (Ctrl-C is ours), logging to a file."""
        port = self.effective.web_port
        if tcp_open(self._web_host(), port, timeout=0.5):
            raise DemoError(
                f"port {port} is already in use (VIGIL_WEB_PORT): another worker? "
                "stop it or pick another port"
            )
        store = Path(self.effective.store_dir)
        store.mkdir(parents=True, exist_ok=True)
        self.log = store / "demo-worker.log"
        log = self.log.open("ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"],
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        finally:
            log.close()
        say(f"worker started (pid {self.proc.pid}, log {self.log})")

    def _log_tail(self) -> str:
        if self.log is None:
            return ""
        with contextlib.suppress(OSError):
            lines = [
                ln.strip()
                for ln in self.log.read_text("utf-8", "replace").splitlines()
                if ln.strip()
            ]
            if lines:
                return f"; last log line: {lines[-1][:300]}"
        return ""

    def gone(self) -> str | None:
        """Why the worker is no longer running, if it is not."""
        if self.proc is not None and self.proc.poll() is not None:
            return (
                f"the worker exited with code {self.proc.returncode} "
                f"(log {self.log}){self._log_tail()}"
            )
        return None

    async def wait_ready(self) -> None:
        """Poll `/readyz` until the worker is ready; a DemoError if it exits or takes too long."""
        url = f"http://{self._web_host()}:{self.effective.web_port}/readyz"

        def probe() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2.0) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError, ValueError):
                return False

        say(f"waiting for the worker to be ready ({url})...")
        t0 = time.monotonic()
        while True:
            gone = self.gone()
            if gone:
                raise DemoError(gone)
            if await asyncio.to_thread(probe):
                say(f"worker ready in {time.monotonic() - t0:.1f} s")
                return
            if time.monotonic() - t0 > READY_TIMEOUT_S:
                raise DemoError(
                    f"the worker was not ready after {READY_TIMEOUT_S:.0f} s "
                    f"(log {self.log}){self._log_tail()}"
                )
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM (Faust commits and closes cleanly), SIGKILL if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=WORKER_STOP_TIMEOUT_S)
        except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
            if isinstance(exc, subprocess.TimeoutExpired):
                say(f"worker did not stop in {WORKER_STOP_TIMEOUT_S:.0f} s; killing it")
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
