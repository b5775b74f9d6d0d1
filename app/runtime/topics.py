"""Create Vigil's topics up front, with the configured partitions; the one topic creator.

Faust creates changelog topics itself, but a table's changelog must have exactly as many
partitions as its source topic or the agent dies with `PartitionsMismatch`, and one Faust
creates while the group forms can be missing from every assignment (`TABLE_NAMES`); creating
the source, output, internal and changelog topics here (and refusing to run against a topic
with another partition count) turns both into a clear start-up error or nothing at all.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
    for_code,
)

from app.exceptions import BrokerUnavailable, ConfigError
from app.runtime.faust_app import (
    FRAUD_LABELS_TOPIC_SUFFIX,
    TABLE_NAMES,
    TICKS_TOPIC_SUFFIX,
    changelog_topic,
    internal_topic,
)
from app.score.follower import TRAINING_TOPIC_SUFFIX
from app.settings import Settings

#: Exit code of `vigil worker` when no bootstrap server answered for
#: VIGIL_BROKER_CONNECT_TIMEOUT_S (1: the broker refused the login or the certificates; 2: a bad
#: setting; 3: a refused checkpoint, see app.runtime.partitions).
EXIT_BROKER_UNREACHABLE = 4
#: Pause after the first failed connection attempt; it doubles after each one, up to the second.
CONNECT_BACKOFF_S = (0.5, 5.0)


class BrokerUnreachable(BrokerUnavailable):
    """No bootstrap server answered within VIGIL_BROKER_CONNECT_TIMEOUT_S.

    Distinct from a broker that answers and refuses (exit code 1): an orchestrator restarting
    the worker may well find the broker up, so it gets its own exit code.
    """

    exit_code = EXIT_BROKER_UNREACHABLE


def _say(text: str) -> None:
    """One line for the operator on stderr, like the CLI's own (logging is not set up yet)."""
    print(f"vigil: {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: Kafka's defaults are wrong for Vigil (1 partition, delete policy)."""

    name: str
    partitions: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    replication_factor: int = 1


@dataclass(frozen=True)
class VigilTopic:
    """A topic a worker needs: its name, the setting that names it, and its config."""

    name: str
    setting: str
    config: dict[str, str] = field(default_factory=dict)
    #: None: VIGIL_PARTITIONS (every topic but the model's single-partition training topic).
    partitions: int | None = None


async def create_topics(
    bootstrap: str | Mapping[str, Any],
    specs: Iterable[TopicSpec | str],
    *,
    timeout: float = 30.0,
) -> list[str]:
    """Create topics (a bare name: 1 partition, broker defaults), leaving existing ones alone.

    The one topic creator of the worker, the tests, the benchmark and the demo. `bootstrap` is
    a bootstrap string or a client's keyword arguments (`Settings.kafka_client_kwargs()`, with
    credentials). Returns the names newly created, once every partition of every requested
    topic has a leader, so a producer that starts right after does not see
    `UnknownTopicOrPartition`.
    """
    topics = [TopicSpec(s) if isinstance(s, str) else s for s in specs]
    if not topics:
        return []
    kwargs = {"bootstrap_servers": bootstrap} if isinstance(bootstrap, str) else dict(bootstrap)
    admin = AIOKafkaAdminClient(**kwargs, request_timeout_ms=int(timeout * 1000))
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


async def connect_failure(settings: Settings, timeout_s: float = 10.0) -> str | None:
    """Why a secured connection to the first bootstrap server fails, in one line; None if the
    cause is not a security one (or the connection works now).

    Names the settings to look at; never includes a secret.
    """
    from aiokafka.conn import create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    security = settings.kafka_security_kwargs()
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    server = settings.bootstrap_servers.split(",", 1)[0]
    host, _, port = server.rpartition(":")
    at = f"the Kafka broker at {server} ({protocol})"
    try:
        conn = await asyncio.wait_for(
            create_conn(host, int(port), request_timeout_ms=int(timeout_s * 1000), **security),
            timeout_s,
        )
        try:  # with TLS 1.3 a refused client certificate may show only at the first request
            await asyncio.wait_for(conn.send(MetadataRequest([])), timeout_s)
        finally:
            conn.close()
    except (SaslAuthenticationFailed, AuthenticationFailedError) as exc:
        return (
            f"authentication failed: {at} refused user {settings.broker_sasl_username!r} with "
            f"{settings.broker_sasl_mechanism} (check VIGIL_BROKER_SASL_USERNAME, "
            f"VIGIL_BROKER_SASL_PASSWORD and VIGIL_BROKER_SASL_MECHANISM): {_first_line(exc)}"
        )
    except UnsupportedSaslMechanismError:
        return (
            f"authentication failed: {at} does not accept SASL mechanism "
            f"{settings.broker_sasl_mechanism} (VIGIL_BROKER_SASL_MECHANISM)"
        )
    except (KafkaError, OSError, TimeoutError, ValueError) as exc:
        tls = _ssl_cause(exc)
        if isinstance(tls, ssl.SSLCertVerificationError):
            return (
                f"TLS failed: {at} presented a certificate that does not verify against "
                f"VIGIL_BROKER_SSL_CAFILE (or the system CAs) for host {host!r}: "
                f"{tls.verify_message or _first_line(tls)}"
            )
        if tls is not None:
            hint = (
                " (the broker may require a client certificate: VIGIL_BROKER_SSL_CERTFILE, "
                "VIGIL_BROKER_SSL_KEYFILE)"
                if settings.broker_ssl_certfile is None
                else " (is the client certificate, VIGIL_BROKER_SSL_CERTFILE, signed by a CA "
                "the broker trusts?)"
            )
            return f"TLS failed: the handshake with {at} failed{hint}: {_first_line(tls)}"
        return None
    return None


def _ssl_cause(exc: BaseException | None) -> ssl.SSLError | None:
    """The TLS error behind an exception (aiokafka wraps it in KafkaConnectionError)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ssl.SSLError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def topic_specs(settings: Settings) -> list[VigilTopic]:
    """Every topic a worker reads or writes, the tables' changelogs included."""
    specs = [
        VigilTopic(getattr(settings, name), "VIGIL_" + name.upper())
        for name in type(settings).model_fields
        if name.startswith("topic_")
    ]
    specs.append(
        VigilTopic(
            internal_topic(settings, TICKS_TOPIC_SUFFIX),
            "VIGIL_APP_ID",
            {"retention.ms": str(3_600_000), "cleanup.policy": "delete"},
        )
    )
    specs.append(
        VigilTopic(
            internal_topic(settings, FRAUD_LABELS_TOPIC_SUFFIX),
            "VIGIL_APP_ID",
            {"cleanup.policy": "compact"},
        )
    )
    # Risk scoring's training stream: one partition is one order for every worker's model
    # (app.score.follower); kept (no retention limit) so a worker without a snapshot can
    # rebuild the same model from the start.
    specs.append(
        VigilTopic(
            internal_topic(settings, TRAINING_TOPIC_SUFFIX),
            "VIGIL_APP_ID",
            {"cleanup.policy": "delete", "retention.ms": "-1"},
            partitions=1,
        )
    )
    # The tables' changelogs too (compacted, as Faust makes them): see TABLE_NAMES.
    specs += [
        VigilTopic(changelog_topic(settings, table), "VIGIL_APP_ID", {"cleanup.policy": "compact"})
        for table in TABLE_NAMES
    ]
    return specs


async def connect_admin(
    settings: Settings,
    timeout_s: float = 30.0,
    *,
    connect_timeout_s: float | None = None,
    say: Callable[[str], None] = _say,
) -> AIOKafkaAdminClient:
    """A started admin client, once a bootstrap server answers; the worker's first connection.

    A broker that does not answer yet (a cluster starting beside the worker, a network still
    coming up) is retried with a doubling backoff (`CONNECT_BACKOFF_S`) for up to
    `connect_timeout_s` (default `VIGIL_BROKER_CONNECT_TIMEOUT_S`; 0: one attempt), saying so
    once through `say`; then `BrokerUnreachable`. A broker that answers and refuses the login or
    the certificates raises `BrokerUnavailable` at once: retrying cannot fix a setting.
    """
    budget = settings.broker_connect_timeout_s if connect_timeout_s is None else connect_timeout_s
    kwargs = settings.kafka_client_kwargs()  # with the SASL credentials and TLS, if any
    where = f"the Kafka broker at {settings.bootstrap_servers} (VIGIL_BROKER)"
    started = time.monotonic()
    deadline = started + budget
    delay = CONNECT_BACKOFF_S[0]
    attempts = 0
    while True:
        attempts += 1
        admin = AIOKafkaAdminClient(**kwargs, request_timeout_ms=int(timeout_s * 1000))
        # Each attempt gets at least a few seconds (a slow TLS handshake), at most timeout_s.
        attempt_s = max(5.0, min(timeout_s, deadline - time.monotonic()))
        try:
            await asyncio.wait_for(admin.start(), attempt_s)
        except (KafkaConnectionError, TimeoutError, OSError) as exc:
            await admin.close()
            # aiokafka's bootstrap reports only "Unable to bootstrap": connect once more by
            # hand to say why (a refused login or certificate is not an unreachable broker).
            reason = await connect_failure(settings, min(timeout_s, 10.0))
            if reason:
                raise BrokerUnavailable(reason) from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tried = (
                    f" (gave up after {time.monotonic() - started:.0f} s, {attempts} attempts: "
                    f"VIGIL_BROKER_CONNECT_TIMEOUT_S={budget:g})"
                    if budget > 0
                    else ""
                )
                raise BrokerUnreachable(f"cannot reach {where}: {exc}{tried}") from None
            if attempts == 1:
                say(
                    f"cannot reach {where}: {exc}; retrying for up to {budget:g} s "
                    "(VIGIL_BROKER_CONNECT_TIMEOUT_S)"
                )
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, CONNECT_BACKOFF_S[1])
            continue
        if attempts > 1:
            say(f"reached {where} after {time.monotonic() - started:.1f} s")
        return admin


async def wait_for_broker(settings: Settings, timeout_s: float = 30.0) -> None:
    """Return once the broker answers (see `connect_admin`): the worker's start when it does
    not create topics itself."""
    admin = await connect_admin(settings, timeout_s)
    await admin.close()


async def ensure_topics(
    settings: Settings, timeout_s: float = 30.0, *, connect_timeout_s: float | None = None
) -> list[str]:
    """Create missing topics; fail if an existing one has another partition count.

    Waits for the broker first (`connect_admin`, `VIGIL_BROKER_CONNECT_TIMEOUT_S` unless
    `connect_timeout_s`). Returns the names created.
    """
    kwargs = settings.kafka_client_kwargs()  # with the SASL credentials and TLS, if any
    admin = await connect_admin(settings, timeout_s, connect_timeout_s=connect_timeout_s)
    try:
        specs = topic_specs(settings)
        existing = set(await admin.list_topics())
        missing = [
            TopicSpec(
                s.name, s.partitions or settings.partitions, s.config, settings.replication_factor
            )
            for s in specs
            if s.name not in existing
        ]
        created = await create_topics(kwargs, missing, timeout=timeout_s) if missing else []
        present = [s for s in specs if s.name in existing]
        if present:
            described = await admin.describe_topics([s.name for s in present])
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            for spec in present:
                count = counts.get(spec.name)
                if count is not None and count != (spec.partitions or settings.partitions):
                    raise ConfigError(
                        "VIGIL_PARTITIONS",
                        f"topic {spec.name!r} ({spec.setting}) has {count} partitions but "
                        f"VIGIL_PARTITIONS is {settings.partitions}; they must be equal",
                    )
    finally:
        await admin.close()
    return created
