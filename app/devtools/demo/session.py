"""`run_demo`: the demo's steps in order, the traffic and the live output, and the cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.devtools.demo.broker import find_or_start_broker
from app.devtools.demo.choices import (
    BAD_RATE,
    DRAIN_S,
    FRAUD_BOOST,
    SUMMARY_EVERY_S,
    with_demo_defaults,
)
from app.devtools.demo.console import DemoError, fail, output_line, say
from app.devtools.demo.worker import Worker
from app.devtools.generate import PatternRates, TrafficGenerator, to_bytes, topic_for
from app.exceptions import BrokerUnavailable, ConfigError
from app.settings import Settings

if TYPE_CHECKING:
    from app.devtools.kafka import LocalKafka


def run_demo(settings: Settings, rate: float, seconds: float, *, seed: int | None = None) -> int:
    """Run the demo; 0 on success (stopped by Ctrl-C or after `seconds` > 0), else 1.

    `rate` is events per second sent to the input topics; `seed` (default: the clock) picks the
    traffic. A broker this call started is stopped at the end; one that was running is left.
    """
    if not rate > 0:
        return fail("--rate must be > 0")
    if seconds < 0:
        return fail("--seconds must be >= 0")
    demo = _Demo(settings, rate, seconds, seed if seed is not None else int(time.time()))
    restore = _sigterm_interrupts()
    try:
        demo.setup_broker()
        asyncio.run(demo.run())
    except DemoError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted before the demo started")
    except Exception as exc:  # the promise is one line, not a traceback
        return fail(f"unexpected error: {type(exc).__name__}: {exc}")
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


class _Demo:
    """State shared by the steps, so `cleanup` can undo exactly what was done."""

    def __init__(self, settings: Settings, rate: float, seconds: float, seed: int) -> None:
        self.settings = settings
        self.rate = rate
        self.seconds = seconds
        self.seed = seed
        self.kafka: LocalKafka | None = None  # the broker we started, to stop at the end
        self.worker: Worker | None = None
        self.sent: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        self.started = time.monotonic()
        self.stopped_sending: float | None = None
        self.effective = settings
        self.bootstrap = settings.bootstrap_servers

    def setup_broker(self) -> None:
        """Pick or start the broker, then the settings the worker and this process run with."""
        bootstrap, broker, self.kafka = find_or_start_broker(self.settings)
        self.effective = with_demo_defaults(self.settings, broker)
        self.bootstrap = bootstrap

    # ---- the live part -----------------------------------------------------------------------

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        from app.runtime.topics import ensure_topics

        s = self.effective
        try:
            created = await ensure_topics(s)
        except (BrokerUnavailable, ConfigError) as exc:
            raise DemoError(str(exc)) from None
        if created:
            say(f"created topics: {', '.join(created)}")
        self.worker = Worker(self.settings, s)
        self.worker.start()
        await self.worker.wait_ready()

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
        say(
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
                gone = self.worker.gone() if self.worker is not None else None
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
                    say(output_line(kind, message.value))

    def _summary(self, final: bool = False) -> None:
        elapsed = max((self.stopped_sending or time.monotonic()) - self.started, 1e-9)
        total = sum(self.sent.values())
        head = "demo finished" if final else f"{elapsed:.0f} s"
        say(
            f"-- {head}: sent {total} events ({total / elapsed:.0f}/s: "
            f"{self.sent['transactions']} transactions, {self.sent['feedback']} labels, "
            f"{self.sent['cart_events']} cart events) | fraud alerts {self.seen['fraud_alerts']}, "
            f"carts abandoned {self.seen['cart_abandoned']}, recovered "
            f"{self.seen['cart_recovered']}, dead letters {self.seen['dead_letters']}"
        )

    # ---- teardown ----------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Worker first (a worker whose broker vanished can hang on SIGTERM), then our broker."""
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.stop()
        if self.kafka is not None:
            kafka, self.kafka = self.kafka, None
            say("stopping the local Kafka broker this demo started")
            with contextlib.suppress(Exception):
                kafka.stop()


def _check_delivered(futures: list[asyncio.Future[Any]]) -> None:
    for future in futures:
        if future.done() and not future.cancelled() and future.exception() is not None:
            raise DemoError(f"sending to Kafka failed: {future.exception()}")
