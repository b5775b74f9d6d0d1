"""`vigil demo`: a broker, a worker and realistic traffic in one command, alerts shown live.

Why one command: the first thing anyone wants to know is what Vigil does, and the honest answer
needs a real Kafka, a real worker and traffic with fraud in it. This wires the pieces that
already exist (`app.kafka_local`, `app.topics_admin`, the `vigil worker` command and
`app.generate`) and prints what comes out of the output topics, as a reader with
`isolation.level=read_committed` sees it.

Demo-only choices, each overridable by setting the variable yourself:
- the worker joins its group fast (`VIGIL_SESSION_TIMEOUT_S`/`VIGIL_REBALANCE_TIMEOUT_S` 10 s;
  production keeps 60 s for fewer rebalances);
- carts are abandoned after 15 s of inactivity (`VIGIL_CART_TIMEOUT_S`, lateness 2 s) instead
  of 30 min, so abandonment and recovery show up while you watch;
- RocksDB state lives in `var/demo/vigil-data` (`VIGIL_STORE_DIR`), apart from a real worker's;
- fraud patterns are 5 times more frequent than in `TrafficGenerator`'s defaults, so alerts
  show up within the first half minute, and 0.2 % of records are malformed (dead letters).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from app.exceptions import BrokerUnavailable, ConfigError
from app.generate import PatternRates, TrafficGenerator, to_bytes, topic_for
from app.settings import Settings

DEMO_DIR = Path("var/demo")
DEMO_ENV_DEFAULTS: dict[str, tuple[str, str]] = {
    # setting -> (environment variable, demo value); applied only where the user set nothing
    "session_timeout_s": ("VIGIL_SESSION_TIMEOUT_S", "10"),
    "rebalance_timeout_s": ("VIGIL_REBALANCE_TIMEOUT_S", "10"),
    "cart_timeout_s": ("VIGIL_CART_TIMEOUT_S", "15"),
    "cart_lateness_s": ("VIGIL_CART_LATENESS_S", "2"),
    "store_dir": ("VIGIL_STORE_DIR", str(DEMO_DIR / "vigil-data")),
}
FRAUD_BOOST = 5.0  # pattern rates x this: about 2 % of transactions start a fraud episode
BAD_RATE = 0.002
READY_TIMEOUT_S = 120.0  # a first start may also create changelog topics
SUMMARY_EVERY_S = 10.0
DRAIN_S = 3.0  # after the last event: time for its alerts to be committed and shown
WORKER_STOP_TIMEOUT_S = 30.0


class DemoError(Exception):
    """A reason the demo cannot go on, as the one line the user sees."""


def run_demo(settings: Settings, rate: float, seconds: float, *, seed: int | None = None) -> int:
    """Run the demo; 0 on success (stopped by Ctrl-C or after `seconds` > 0), else 1.

    `rate` is events per second sent to the input topics; `seed` (default: the clock) picks the
    traffic. A broker this call started is stopped at the end; one that was running is left.
    """
    if not rate > 0:
        return _fail("--rate must be > 0")
    if seconds < 0:
        return _fail("--seconds must be >= 0")
    demo = _Demo(settings, rate, seconds, seed if seed is not None else int(time.time()))
    restore = _sigterm_interrupts()
    try:
        demo.setup_broker()
        asyncio.run(demo.run())
    except DemoError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted before the demo started")
    except Exception as exc:  # the promise is one line, not a traceback
        return _fail(f"unexpected error: {type(exc).__name__}: {exc}")
    finally:
        try:
            demo.cleanup()
        finally:
            restore()
    return 0


def _sigterm_interrupts() -> Callable[[], None]:
    """Make SIGTERM act like Ctrl-C while the demo runs, so `cleanup` still stops what it
    started (the default action would kill us and leave a broker behind). Returns the undo."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        return lambda: None

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _fail(reason: str) -> int:
    print(f"vigil demo: {reason}", file=sys.stderr, flush=True)
    return 1


def _say(line: str) -> None:
    print(line, flush=True)


# --------------------------------------------------------------------------------------------
# Probing
# --------------------------------------------------------------------------------------------


def _tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def broker_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """A TCP connect first (instant when nothing listens), then one metadata round trip.

    Why both: a closed port answers in microseconds, but an open one may be anything; only a
    metadata response proves a Kafka broker is there and serving.
    """
    from app.kafka_local import wait_for_broker

    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    reachable = False
    for server in servers:
        host, _, port = server.rpartition(":")
        if port.isdigit() and _tcp_open(host or "127.0.0.1", int(port)):
            reachable = True
            break
    if not reachable:
        return False
    try:
        wait_for_broker(bootstrap, timeout=timeout)
    except Exception:
        return False
    return True


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Linux: SIGTERM the worker if the demo dies, even by SIGKILL: no orphan holding the port."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# --------------------------------------------------------------------------------------------
# Output lines
# --------------------------------------------------------------------------------------------


def _money(value: Any) -> str:
    try:
        return f"{float(value):,.2f}"
    except (TypeError, ValueError):
        return str(value)


def format_output(kind: str, value: dict[str, Any]) -> str:
    """One readable line per output record (what an analyst would want to glance at)."""
    if kind == "fraud_alerts":
        reasons = "; ".join(
            f"{r.get('rule')}: {r.get('reason')}" for r in value.get("rules") or [] if r
        )
        return (
            f"FRAUD ALERT     card {value.get('card_id')}  {_money(value.get('amount'))} "
            f"{value.get('currency')} at {value.get('merchant_id')}  "
            f"score {float(value.get('score') or 0):.2f}  {reasons}"
        )
    if kind == "cart_abandoned":
        items = value.get("items") or []
        count = sum(int(i.get("quantity") or 0) for i in items if isinstance(i, dict))
        return (
            f"CART ABANDONED  user {value.get('user_id')}  {count} item(s) "
            f"{_money(value.get('cart_value'))} {value.get('currency')}  "
            f"quiet since {value.get('last_activity_ts')}"
        )
    if kind == "cart_recovered":
        return (
            f"CART RECOVERED  user {value.get('user_id')}  order "
            f"{_money(value.get('order_value'))} {value.get('currency')}  "
            f"(abandoned at {value.get('abandoned_at')}, bought {value.get('recovered_ts')})"
        )
    return (
        f"DEAD LETTER     {value.get('source_topic')}[{value.get('partition')}]"
        f"@{value.get('offset')}  {value.get('error')}"
    )


# --------------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------------


class _Demo:
    """State shared by the steps, so `cleanup` can undo exactly what was done."""

    def __init__(self, settings: Settings, rate: float, seconds: float, seed: int) -> None:
        self.settings = settings
        self.rate = rate
        self.seconds = seconds
        self.seed = seed
        self.kafka: Any = None  # app.kafka_local.LocalKafka we started, to stop at the end
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_log: Path | None = None
        self.sent: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        self.started = time.monotonic()
        self.stopped_sending: float | None = None
        self.effective = settings
        self.bootstrap = settings.bootstrap_servers

    # ---- broker ------------------------------------------------------------------------------

    def setup_broker(self) -> None:
        """Use the configured broker if it answers, else the local one (started if needed)."""
        configured = self.settings.bootstrap_servers
        if broker_answers(configured):
            _say(f"Kafka broker at {configured} (VIGIL_BROKER)")
            bootstrap = configured
            broker = self.settings.broker
        else:
            from app.kafka_local import KafkaStartError, KafkaToolingError, LocalKafka

            kafka = LocalKafka(stop_at_exit=True)
            before = kafka.status()
            if before.running:
                _say(f"no broker at {configured}; using the local one at {before.bootstrap}")
            else:
                _say(
                    f"no broker at {configured}; starting a local Kafka {kafka.version} "
                    f"in {kafka.home} (the first start downloads its jars)..."
                )
            try:
                status = kafka.start(timeout=90.0)
            except (KafkaToolingError, KafkaStartError, TimeoutError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise DemoError(f"cannot start a local Kafka broker: {first}") from None
            if not status.bootstrap:
                raise DemoError("the local Kafka broker reported no address")
            if kafka.launched:
                self.kafka = kafka  # ours: stop it when the demo ends
                _say(f"local Kafka broker started at {status.bootstrap} (stopped at the end)")
            bootstrap = status.bootstrap
            broker = "kafka://" + bootstrap
        updates: dict[str, Any] = {"broker": broker}
        for field, (_, value) in DEMO_ENV_DEFAULTS.items():
            if field not in self.settings.model_fields_set:
                updates[field] = Path(value) if field == "store_dir" else float(value)
        self.effective = self.settings.model_copy(update=updates)
        self.bootstrap = bootstrap

    # ---- worker ------------------------------------------------------------------------------

    def _worker_env(self) -> dict[str, str]:
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

    def start_worker(self) -> None:
        """`python -m app.cli worker` in its own session (Ctrl-C is ours), logging to a file."""
        port = self.effective.web_port
        if _tcp_open(self._web_host(), port, timeout=0.5):
            raise DemoError(
                f"port {port} is already in use (VIGIL_WEB_PORT): another worker? "
                "stop it or pick another port"
            )
        store = Path(self.effective.store_dir)
        store.mkdir(parents=True, exist_ok=True)
        self.worker_log = store / "demo-worker.log"
        log = self.worker_log.open("ab")
        try:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"],
                env=self._worker_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        finally:
            log.close()
        _say(f"worker started (pid {self.worker.pid}, log {self.worker_log})")

    def _log_tail(self) -> str:
        if self.worker_log is None:
            return ""
        with contextlib.suppress(OSError):
            lines = [
                ln.strip()
                for ln in self.worker_log.read_text("utf-8", "replace").splitlines()
                if ln.strip()
            ]
            if lines:
                return f"; last log line: {lines[-1][:300]}"
        return ""

    def _worker_gone(self) -> str | None:
        if self.worker is not None and self.worker.poll() is not None:
            return (
                f"the worker exited with code {self.worker.returncode} "
                f"(log {self.worker_log}){self._log_tail()}"
            )
        return None

    async def wait_ready(self) -> None:
        url = f"http://{self._web_host()}:{self.effective.web_port}/readyz"

        def probe() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2.0) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError, ValueError):
                return False

        _say(f"waiting for the worker to be ready ({url})...")
        t0 = time.monotonic()
        while True:
            gone = self._worker_gone()
            if gone:
                raise DemoError(gone)
            if await asyncio.to_thread(probe):
                _say(f"worker ready in {time.monotonic() - t0:.1f} s")
                return
            if time.monotonic() - t0 > READY_TIMEOUT_S:
                raise DemoError(
                    f"the worker was not ready after {READY_TIMEOUT_S:.0f} s "
                    f"(log {self.worker_log}){self._log_tail()}"
                )
            await asyncio.sleep(0.5)

    def stop_worker(self) -> None:
        """SIGTERM (Faust commits and closes cleanly), SIGKILL if it hangs."""
        proc, self.worker = self.worker, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=WORKER_STOP_TIMEOUT_S)
        except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
            if isinstance(exc, subprocess.TimeoutExpired):
                _say(f"worker did not stop in {WORKER_STOP_TIMEOUT_S:.0f} s; killing it")
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    # ---- the live part -----------------------------------------------------------------------

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        from app.topics_admin import ensure_topics

        s = self.effective
        try:
            created = await ensure_topics(s)
        except (BrokerUnavailable, ConfigError) as exc:
            raise DemoError(str(exc)) from None
        if created:
            _say(f"created topics: {', '.join(created)}")
        self.start_worker()
        await self.wait_ready()

        outputs = {
            s.topic_fraud_alerts: "fraud_alerts",
            s.topic_cart_abandoned: "cart_abandoned",
            s.topic_cart_recovered: "cart_recovered",
            s.topic_dead_letters: "dead_letters",
        }
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            group_id=None,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, enable_idempotence=True
        )
        await consumer.start()
        try:
            await producer.start()
            try:
                tps = [TopicPartition(t, p) for t in outputs for p in range(s.partitions)]
                consumer.assign(tps)
                await consumer.seek_to_end(*tps)
                for tp in tps:  # resolve positions now: show only what this run causes
                    await consumer.position(tp)
                await self._live(producer, consumer, outputs)
            finally:
                await producer.stop()
        finally:
            await consumer.stop()

    async def _live(self, producer: Any, consumer: Any, outputs: dict[str, str]) -> None:
        s = self.effective
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        until = f"for {self.seconds:g} s" if self.seconds > 0 else "until Ctrl-C"
        _say(
            f"sending {self.rate:g} events/s {until} (seed {self.seed}); carts are abandoned "
            f"after {s.cart_timeout_s:g} s of inactivity in this demo"
        )
        self.started = time.monotonic()
        problem: list[str] = []
        producing = asyncio.create_task(self._produce(producer, stop, problem))
        showing = asyncio.create_task(self._show(consumer, outputs))
        try:
            next_summary = self.started + SUMMARY_EVERY_S
            while not stop.is_set():
                now = time.monotonic()
                if self.seconds > 0 and now - self.started >= self.seconds:
                    break
                gone = self._worker_gone()
                if gone:
                    problem.append(gone)
                    break
                if producing.done():
                    break
                if now >= next_summary:
                    self._summary()
                    next_summary += SUMMARY_EVERY_S
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.2)
            stop.set()
            with contextlib.suppress(Exception):
                await producing
            self.stopped_sending = time.monotonic()
            if not problem:
                await asyncio.sleep(DRAIN_S)  # alerts for the last events, once committed
        finally:
            stop.set()
            showing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await showing
            for sig, handler in previous.items():
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, TypeError):
                    loop.remove_signal_handler(sig)
                    signal.signal(sig, handler)
        self._summary(final=True)
        if problem:
            raise DemoError(problem[0])

    async def _produce(self, producer: Any, stop: asyncio.Event, problem: list[str]) -> None:
        """Send generated records at `rate` per second, each stamped with the wall clock."""
        s = self.effective
        generator = TrafficGenerator(
            seed=self.seed,
            cards=max(1000, int(self.rate * 120)),  # ~1 transaction per card per 3 min
            users=max(500, int(self.rate * 30)),
            realtime=True,
            events_per_second=self.rate,
            patterns=PatternRates().scaled(FRAUD_BOOST),
            bad_rate=BAD_RATE,
            cart_timeout_s=s.cart_timeout_s,
        )
        stream = generator.stream()
        pending: list[asyncio.Future[Any]] = []
        start = time.monotonic()
        sent = 0
        try:
            while not stop.is_set():
                due = int((time.monotonic() - start) * self.rate) + 1
                due = min(due, sent + max(1, int(self.rate)))  # never burst over a second's worth
                while sent < due:
                    kind, key, value = next(stream)
                    future = await producer.send(
                        topic_for(kind, s), key=key.encode(), value=to_bytes(value)
                    )
                    pending.append(future)
                    sent += 1
                    self.sent[kind] += 1
                if len(pending) > 1000 or any(f.done() for f in pending[:1]):
                    _check_delivered(pending)
                    pending = [f for f in pending if not f.done()]
                delay = max(0.0, start + sent / self.rate - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=min(delay, 0.1) or 0.001)
            await producer.flush()
            _check_delivered(pending)
        except DemoError as exc:
            problem.append(str(exc))
            stop.set()
        except Exception as exc:
            problem.append(f"producing failed: {type(exc).__name__}: {exc}")
            stop.set()

    async def _show(self, consumer: Any, outputs: dict[str, str]) -> None:
        """Print one line per output record as soon as it is committed."""
        while True:
            batches = await consumer.getmany(timeout_ms=250)
            for tp, messages in batches.items():
                kind = outputs.get(tp.topic, "dead_letters")
                for message in messages:
                    self.seen[kind] += 1
                    _say(_line(kind, message.value))

    def _summary(self, final: bool = False) -> None:
        elapsed = max((self.stopped_sending or time.monotonic()) - self.started, 1e-9)
        total = sum(self.sent.values())
        head = "demo finished" if final else f"{elapsed:.0f} s"
        _say(
            f"-- {head}: sent {total} events ({total / elapsed:.0f}/s: "
            f"{self.sent['transactions']} transactions, {self.sent['feedback']} labels, "
            f"{self.sent['cart_events']} cart events) | fraud alerts {self.seen['fraud_alerts']}, "
            f"carts abandoned {self.seen['cart_abandoned']}, recovered "
            f"{self.seen['cart_recovered']}, dead letters {self.seen['dead_letters']}"
        )

    # ---- teardown ----------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Worker first (a worker whose broker vanished can hang on SIGTERM), then our broker."""
        self.stop_worker()
        if self.kafka is not None:
            kafka, self.kafka = self.kafka, None
            _say("stopping the local Kafka broker this demo started")
            with contextlib.suppress(Exception):
                kafka.stop()


def _check_delivered(futures: list[asyncio.Future[Any]]) -> None:
    for future in futures:
        if future.done() and not future.cancelled() and future.exception() is not None:
            raise DemoError(f"sending to Kafka failed: {future.exception()}")


def _line(kind: str, raw: bytes | None) -> str:
    try:
        value = orjson.loads(raw or b"")
        if not isinstance(value, dict):
            raise ValueError("not an object")
        return format_output(kind, value)
    except Exception:
        text = (raw or b"").decode("utf-8", "replace")
        return f"{kind.upper():15} {text[:200]}"
