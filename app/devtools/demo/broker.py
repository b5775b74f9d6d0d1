"""Which broker the demo uses: the configured one if it answers, else the local one.

A local broker this demo had to start is returned to the caller, which stops it at the end; one
that was already running (`vigil kafka start`) is left alone.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from app.devtools.demo.console import DemoError, say
from app.settings import Settings

if TYPE_CHECKING:
    from app.devtools.kafka import LocalKafka


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
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
    from app.devtools.kafka import wait_for_broker

    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    reachable = False
    for server in servers:
        host, _, port = server.rpartition(":")
        if port.isdigit() and tcp_open(host or "127.0.0.1", int(port)):
            reachable = True
            break
    if not reachable:
        return False
    try:
        wait_for_broker(bootstrap, timeout=timeout)
    except Exception as exc:
        # Something listens there but did not answer as a plain Kafka broker (SASL, TLS, a
        # wrong port): starting a local broker instead would hide the misconfiguration.
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DemoError(
            f"a server listens at {bootstrap} (VIGIL_BROKER) but did not answer as Kafka "
            f"({first}); the demo talks to plain, unauthenticated brokers only"
        ) from None
    return True


def find_or_start_broker(settings: Settings) -> tuple[str, str, LocalKafka | None]:
    """Use the configured broker if it answers, else the local one (started if needed).

    Returns `(bootstrap, broker URL for Faust, the LocalKafka this call started or None)`; the
    caller stops a returned broker when the demo ends.
    """
    configured = settings.bootstrap_servers
    if settings.security_protocol != "PLAINTEXT":
        raise DemoError(
            "the demo talks to plain, unauthenticated brokers only "
            f"(VIGIL_BROKER_SECURITY_PROTOCOL is {settings.security_protocol}): unset "
            "VIGIL_BROKER_SECURITY_PROTOCOL and VIGIL_BROKER_SASL_*/VIGIL_BROKER_SSL_*, or run "
            "`vigil worker` against the secured cluster"
        )
    if broker_answers(configured):
        say(f"Kafka broker at {configured} (VIGIL_BROKER)")
        return configured, settings.broker, None

    from app.devtools.kafka import KafkaStartError, KafkaToolingError, LocalKafka

    kafka = LocalKafka(stop_at_exit=True)
    try:
        before = kafka.status()  # reads the POM: fails here without a source checkout
        if before.running:
            say(f"no broker at {configured}; using the local one at {before.bootstrap}")
        else:
            say(
                f"no broker at {configured}; starting a local Kafka {kafka.version} "
                f"in {kafka.home} (the first start downloads its jars)..."
            )
        status = kafka.start(timeout=90.0)
    except (KafkaToolingError, KafkaStartError, TimeoutError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DemoError(f"cannot start a local Kafka broker: {first}") from None
    if not status.bootstrap:
        raise DemoError("the local Kafka broker reported no address")
    ours = None
    if kafka.launched:
        ours = kafka
        say(f"local Kafka broker started at {status.bootstrap} (stopped at the end)")
    return status.bootstrap, "kafka://" + status.bootstrap, ours
