"""The Faust app: broker, store, topics and web views, built from `Settings`.

This module never imports `agents/` or `tables/`: the worker discovers them from the explicit
`autodiscover` list, so the app can be built (and its settings checked) without any agent code.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import monotonic
from typing import Any

import faust
from faust.sensors import Monitor
from faust.types import TP, EventT, Message, StreamT, TopicT

from app.runtime.store import vigil_dir
from app.settings import Settings

MIB = 1024 * 1024
DISCOVER = ("tables", "agents")  # the packages the worker scans for tables and agents
TICKS_TOPIC_SUFFIX = "cart-ticks"
FRAUD_LABELS_TOPIC_SUFFIX = "fraud-labels"
#: Every table `tables/` defines. Their changelogs are created up front with the other topics
#: (`app.runtime.topics`): a changelog Faust creates itself may be missing from the group
#: leader's metadata at the first rebalance, and Faust's assignor then leaves it out of every
#: assignment of that group (seen in a chaos run: no worker ever recovered `cards`).
TABLE_NAMES = ("cards", "carts", "cart-clocks")


@dataclass(frozen=True)
class Topics:
    """Every topic the agents read or write, declared once with the configured partitions.

    Values and keys travel as raw bytes: Vigil's own decoder (app.contract.decode) turns them into
    events, so a malformed record becomes a dead letter instead of a Faust codec crash.
    """

    transactions: TopicT
    feedback: TopicT
    cart_events: TopicT
    cart_ticks: TopicT
    cart_input: TopicT  # cart events and ticks, one co-partitioned stream
    fraud_labels: TopicT
    fraud_alerts: TopicT
    cart_abandoned: TopicT
    cart_recovered: TopicT
    dead_letters: TopicT

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> Topics:
        def topic(name: str, **kw: Any) -> TopicT:
            return app.topic(
                name,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=settings.partitions,
                **kw,
            )

        ticks = internal_topic(settings, TICKS_TOPIC_SUFFIX)
        return cls(
            transactions=topic(settings.topic_transactions),
            feedback=topic(settings.topic_feedback),
            cart_events=topic(settings.topic_cart_events),
            cart_ticks=topic(ticks),
            cart_input=app.topic(
                settings.topic_cart_events,
                ticks,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=settings.partitions,
            ),
            fraud_labels=topic(internal_topic(settings, FRAUD_LABELS_TOPIC_SUFFIX)),
            fraud_alerts=topic(settings.topic_fraud_alerts),
            cart_abandoned=topic(settings.topic_cart_abandoned),
            cart_recovered=topic(settings.topic_cart_recovered),
            dead_letters=topic(settings.topic_dead_letters),
        )


def changelog_topic(settings: Settings, table: str) -> str:
    """The changelog topic Faust uses for `table` (its own naming)."""
    return f"{settings.app_id}-{table}-changelog"


def internal_topic(settings: Settings, suffix: str) -> str:
    """Name of a topic only Vigil reads and writes (prefixed by the app id, like changelogs)."""
    return f"{settings.app_id}-{suffix}"


def rocksdb_options(settings: Settings) -> dict[str, Any]:
    """Bounded RocksDB options for each table partition.

    Faust's defaults give every partition's RocksDB a 2 GiB block cache and 3 x 64 MiB write
    buffers; with dozens of partitions per worker that is a memory bomb. These bounds are
    per table partition and configurable.
    """
    return {
        "driver": "rocksdict",
        "block_cache_size": settings.rocksdb_block_cache_mb * MIB,
        "block_cache_compressed_size": 0,
        "write_buffer_size": settings.rocksdb_write_buffer_mb * MIB,
        "max_write_buffer_number": 2,
        "target_file_size_base": 16 * MIB,
    }


class LeanMonitor(Monitor):
    """Faust's Monitor minus its per-event bookkeeping.

    Faust calls the monitor four times per event (message in/out, stream event in/out) to keep
    statistics nothing in Vigil reads (`vigil_*` metrics are Vigil's own). Only the stream
    inbound time is kept: Faust's stalled-partition detector reads it.
    """

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        """Nothing: Vigil counts its own input (`vigil_events_in_total`)."""

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT, event: EventT
    ) -> dict[str, Any] | None:
        """Only what the stalled-partition detector needs."""
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(
        self,
        tp: TP,
        offset: int,
        stream: StreamT,
        event: EventT,
        state: dict[str, Any] | None = None,
    ) -> None:
        """Nothing: Vigil times its own processing (`vigil_processing_seconds`)."""

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        """Nothing."""


def broker_credentials(settings: Settings) -> Any:
    """Faust's equivalent of `Settings.kafka_security_kwargs()`: the same protocol, mechanism,
    user and TLS context, as `faust.SASLCredentials` / `faust.SSLCredentials` (None: PLAINTEXT).

    Faust (faust/transport/drivers/aiokafka.py `credentials_to_aiokafka_auth`) turns these into
    aiokafka's security_protocol, sasl_mechanism, sasl_plain_* and ssl_context for its consumer,
    producers and admin calls; SASLCredentials means SASL_SSL exactly when it has a context.
    """
    security = settings.kafka_security_kwargs()
    protocol = security.get("security_protocol", "PLAINTEXT")
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(security["ssl_context"])
    return faust.SASLCredentials(
        username=security["sasl_plain_username"],
        password=security["sasl_plain_password"],
        ssl_context=security.get("ssl_context"),
        mechanism=security["sasl_mechanism"],
    )


def create_app(settings: Settings) -> faust.App:
    """Build the Faust app for these settings (no agents yet: the worker discovers them)."""
    session = settings.session_timeout_s
    return faust.App(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=broker_credentials(settings),
        store="rocksdb://",
        # Vigil's own subdirectory of the store dir (app.runtime.store); Faust formats the path
        # with its settings (`{conf.name}`), so braces in a real path are escaped.
        datadir=str(vigil_dir(settings.store_dir)).replace("{", "{{").replace("}", "}}"),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=settings.create_topics,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        broker_session_timeout=session,
        broker_heartbeat_interval=max(0.5, min(3.0, session / 5)),
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_commit_interval=settings.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        autodiscover=DISCOVER,
        origin="app",
        # Each table partition also kept on this many other workers, fed from its changelog
        # by Faust's standby recovery (app.faust_patches.recovery keeps it consistent with the
        # changelog offset it records), so a failover reads only the changelog's tail.
        table_standby_replicas=settings.standby_replicas,
        producer_linger=0.005,
        web_enabled=True,
        Monitor=LeanMonitor,
    )


#: Changelog records a standby partition applies at once (Faust: its recovery buffer size).
STANDBY_BUFFER_SIZE = 1000


def bytes_table(
    app: faust.App, settings: Settings, name: str, *, help: str, recovery_buffer_size: int = 1000
) -> Any:
    """A RocksDB-backed, changelogged table of raw bytes keyed by the record's id.

    Values are the pure code's own serialisation (`CardState.to_bytes()`...), so Faust's
    codecs never see them; partitions match the source topics (or Faust raises
    PartitionsMismatch); RocksDB memory is bounded by `rocksdb_options`.

    Standby partitions apply their changelog only in full buffers, and Faust's standby buffer
    defaults to the recovery buffer (10 000 for cards): that much could sit in memory only,
    the store (and `vigil_table_keys`) behind. `STANDBY_BUFFER_SIZE` keeps it close; what is
    still buffered at a rebalance is applied first (app.faust_patches.recovery).
    """
    if name not in TABLE_NAMES:
        raise ValueError(
            f"table {name!r} is not in TABLE_NAMES: its changelog would not be created"
        )
    return app.Table(
        name,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        options=rocksdb_options(settings),
        recovery_buffer_size=recovery_buffer_size,
        standby_buffer_size=min(recovery_buffer_size, STANDBY_BUFFER_SIZE),
        help=help,
    )
