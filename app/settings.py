"""Every setting of Vigil, in one object.

Read from environment variables (prefix `VIGIL_`, e.g. `VIGIL_BROKER`) over an optional TOML
file named by `VIGIL_CONFIG`, over the defaults below, which are the contract's. A bad value
stops start-up with one line naming the setting (see `app.cli`), never a traceback.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from app import broker_security
from app.cart.config import CartConfig
from app.detect.config import FraudConfig
from app.exceptions import ConfigError
from app.score.config import ScoreConfig

ENV_PREFIX = "VIGIL_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Vigil's configuration; the README's settings table is generated from these fields."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, validate_default=True
    )

    # --- Kafka and the worker -------------------------------------------------------------
    app_id: str = Field("vigil", description="Faust app id: consumer group and state prefix.")
    broker: str = Field(
        "kafka://127.0.0.1:9092", description="Bootstrap servers, `kafka://host:port[;host:port]`."
    )
    broker_security_protocol: SecurityProtocol | None = Field(
        None,
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; unset: SASL_PLAINTEXT when a "
        "SASL user is set, else PLAINTEXT.",
    )
    broker_sasl_mechanism: SaslMechanism = Field(
        "PLAIN", description="SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    broker_sasl_username: str | None = Field(None, description="SASL user (optional).")
    broker_sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    broker_ssl_cafile: Path | None = Field(
        None,
        description="PEM file of the CAs that sign the broker's certificate (else the system's).",
    )
    broker_ssl_certfile: Path | None = Field(
        None, description="PEM client certificate (chain) for mTLS (optional)."
    )
    broker_ssl_keyfile: Path | None = Field(
        None, description="PEM private key of the client certificate (else in the certfile)."
    )
    broker_ssl_key_password: SecretStr | None = Field(
        None, description="Password of an encrypted client key (secret)."
    )
    processing_guarantee: Literal["exactly_once", "at_least_once"] = Field(
        "exactly_once", description="Kafka transactions (exactly_once) or plain commits."
    )
    partitions: int = Field(
        8, ge=1, le=1024, description="Partitions of every input, output and state topic."
    )
    replication_factor: int = Field(
        1, ge=1, le=16, description="Replication of topics Vigil creates (use 3 in production)."
    )
    create_topics: bool = Field(True, description="Create missing topics at start-up.")
    store_dir: Path = Field(
        Path("var/vigil-data"),
        description="Local state (RocksDB tables) goes in its subdirectory `vigil/`.",
    )
    web_port: int = Field(6066, ge=1, le=65535, description="HTTP port: /metrics, /healthz.")
    web_bind: str = Field("0.0.0.0", description="Address the HTTP server binds.")
    session_timeout_s: float = Field(
        60.0, gt=0, description="Consumer session timeout: lower = faster failover, more churn."
    )
    rebalance_timeout_s: float = Field(60.0, gt=0, description="Consumer rebalance timeout.")
    standby_replicas: int = Field(
        0,
        ge=0,
        description="Standby copies of each table partition kept warm on other workers "
        "(takeover without a changelog read; costs their disk, RAM and changelog reads).",
    )
    broker_connect_timeout_s: float = Field(
        60.0,
        ge=0,
        description="How long a starting worker retries an unreachable broker (0: fail at "
        "once); then exit code 4.",
    )
    commit_interval_s: float = Field(
        0.5,
        gt=0,
        description="How often offsets (and transactions) are committed: outputs become "
        "visible at the commit, and a shorter interval costs CPU per event (README, Benchmark).",
    )
    output_flush_s: float = Field(
        0.01,
        ge=0,
        description="at_least_once: how often outputs are sent ahead of the checkpoint "
        "(alerts within about this, not the commit interval); 0 sends them at the checkpoint "
        "only. exactly_once sends outputs in the checkpoint's transaction always.",
    )
    rocksdb_block_cache_mb: int = Field(
        16, ge=1, description="RocksDB block cache per table partition, MiB."
    )
    rocksdb_write_buffer_mb: int = Field(
        8, ge=1, description="RocksDB write buffer per table partition, MiB."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Worker log level."
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="Worker event loop: uvloop (faster) or the stdlib's asyncio."
    )

    # --- topics --------------------------------------------------------------------------
    topic_transactions: str = Field("transactions", description="Input: transactions.")
    topic_feedback: str = Field("fraud-feedback", description="Input: fraud labels.")
    topic_cart_events: str = Field("cart-events", description="Input: cart events.")
    topic_fraud_alerts: str = Field("fraud-alerts", description="Output: fraud alerts.")
    topic_cart_abandoned: str = Field("cart-abandoned", description="Output: abandoned carts.")
    topic_cart_recovered: str = Field("cart-recovered", description="Output: recovered carts.")
    topic_dead_letters: str = Field("vigil-dead-letters", description="Output: dead letters.")
    topic_txn_scores: str = Field("txn-scores", description="Output: every transaction's score.")

    # --- fraud rules (contract defaults) -----------------------------------------------------
    velocity_count: int = Field(6, ge=1, description="velocity: transactions in the window.")
    velocity_window_s: float = Field(60, gt=0, description="velocity: window length.")
    spike_min_prior: int = Field(5, ge=1, description="amount_spike: prior transactions needed.")
    spike_stddevs: float = Field(4.0, ge=0, description="amount_spike: stddevs above the mean.")
    spike_mean_multiple: float = Field(3.0, ge=0, description="amount_spike: times the mean.")
    travel_min_km: float = Field(100.0, ge=0, description="impossible_travel: minimum distance.")
    travel_max_kmh: float = Field(1000.0, gt=0, description="impossible_travel: speed limit.")
    card_testing_max_amount: float = Field(2.00, ge=0, description="card_testing: small amount.")
    card_testing_count: int = Field(5, ge=1, description="card_testing: small transactions.")
    card_testing_window_s: float = Field(600, gt=0, description="card_testing: window length.")
    large_amount: float = Field(10_000, ge=0, description="large_amount: threshold.")
    terminal_fraud_count: int = Field(2, ge=1, description="compromised_terminal: fraud labels.")
    terminal_window_days: float = Field(28, gt=0, description="compromised_terminal: window.")
    duplicate_window_h: float = Field(24, ge=0, description="Duplicate txn_id suppression.")
    max_disorder_s: float = Field(
        600, ge=0, description="How late a transaction may arrive and still be counted exactly."
    )

    # --- risk scoring (contract "Risk scoring") ------------------------------------------------
    label_delay_days: float = Field(
        7, gt=0, description="No fraud label this long after a transaction: learned as legit."
    )
    alert_threshold: float = Field(
        0.8, ge=0, le=1, description="A risk score at or above it raises an alert on its own."
    )
    min_fraud_labels: int = Field(
        50, ge=0, description="Frauds learned before the model's score replaces the rules' weight."
    )
    model_learning_rate: float = Field(0.05, gt=0, description="The online model's step size.")
    model_negative_sample: float = Field(
        0.25, gt=0, le=1, description="Fraction of negatives learned from (a hash of txn_id)."
    )
    model_late_label_days: float = Field(
        7, ge=0, description="How long after label_delay a late fraud label is still learned."
    )
    model_max_examples: int = Field(
        1_000_000, ge=1, description="Cap on scored transactions held for learning."
    )
    model_snapshot_s: float = Field(
        30, gt=0, description="How often a worker saves its model snapshot to the store dir."
    )

    # --- cart abandonment ---------------------------------------------------------------------
    cart_timeout_s: float = Field(1800, gt=0, description="Inactivity before abandonment.")
    cart_lateness_s: float = Field(10, ge=0, description="Allowed lateness of the cart clock.")
    cart_recovery_window_h: float = Field(24, ge=0, description="Purchase-after-abandon window.")
    cart_tick_interval_s: float = Field(
        1.0, gt=0, description="How often a live worker advances the cart clock by wall time."
    )

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        for server in value.removeprefix("kafka://").split(";"):
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected kafka://host:port[;host:port], got {value!r}")
        return value if value.startswith("kafka://") else "kafka://" + value

    @model_validator(mode="after")
    def _distinct_topics(self) -> Settings:
        names = [getattr(self, f) for f in type(self).model_fields if f.startswith("topic_")]
        if len(set(names)) != len(names):
            raise ValueError("topic names must be distinct")
        return self

    @model_validator(mode="after")
    def _broker_security(self) -> Settings:
        """The security settings fit together and their files load (`app.broker_security`)."""
        broker_security.check(self)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        import os

        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(ENV_PREFIX + "CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    def fraud_config(self) -> FraudConfig:
        """The detector's view of these settings: milliseconds of event time."""
        return FraudConfig(
            velocity_count=self.velocity_count,
            velocity_window_ms=_ms(self.velocity_window_s),
            spike_min_prior=self.spike_min_prior,
            spike_stddevs=self.spike_stddevs,
            spike_mean_multiple=self.spike_mean_multiple,
            travel_min_km=self.travel_min_km,
            travel_max_kmh=self.travel_max_kmh,
            card_testing_max_amount=self.card_testing_max_amount,
            card_testing_count=self.card_testing_count,
            card_testing_window_ms=_ms(self.card_testing_window_s),
            large_amount=self.large_amount,
            terminal_fraud_count=self.terminal_fraud_count,
            terminal_window_ms=_ms(self.terminal_window_days * 86_400),
            duplicate_window_ms=_ms(self.duplicate_window_h * 3600),
            max_disorder_ms=_ms(self.max_disorder_s),
        )

    def score_config(self) -> ScoreConfig:
        """The risk scorer's and the learner's view of these settings."""
        return ScoreConfig(
            label_delay_ms=_ms(self.label_delay_days * 86_400),
            late_label_ms=_ms(self.model_late_label_days * 86_400),
            alert_threshold=self.alert_threshold,
            min_fraud_labels=self.min_fraud_labels,
            learning_rate=self.model_learning_rate,
            negative_sample=self.model_negative_sample,
            max_examples=self.model_max_examples,
        )

    def cart_config(self) -> CartConfig:
        """The cart machine's view of these settings."""
        return CartConfig(
            timeout_ms=_ms(self.cart_timeout_s),
            lateness_ms=_ms(self.cart_lateness_s),
            recovery_window_ms=_ms(self.cart_recovery_window_h * 3600),
        )

    @property
    def bootstrap_servers(self) -> str:
        """The broker list as aiokafka wants it: `host:port,host:port`."""
        return self.broker.removeprefix("kafka://").replace(";", ",")

    @property
    def security_protocol(self) -> SecurityProtocol:
        """The protocol Vigil's clients use: as set, else SASL_PLAINTEXT with a SASL user."""
        if self.broker_security_protocol is not None:
            return self.broker_security_protocol
        return "SASL_PLAINTEXT" if self.broker_sasl_username else "PLAINTEXT"

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every Kafka client (None without TLS): `app.broker_security`."""
        return broker_security.ssl_context(self)

    def kafka_security_kwargs(self) -> dict[str, Any]:
        """aiokafka's security arguments (protocol, SASL, TLS context); empty for PLAINTEXT."""
        return broker_security.client_kwargs(self)

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Connection arguments for Vigil's own aiokafka clients (beside Faust's).

        The same broker, protocol, SASL credentials and TLS context Faust is given, so the
        labels follower, the bulk table restore, the transactional producers and the topic
        admin reach a secured cluster too. Holds the password: never log it.
        """
        return {"bootstrap_servers": self.bootstrap_servers, **self.kafka_security_kwargs()}


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning any validation failure into a one-line `ConfigError`."""
    import os

    config_file = os.environ.get(ENV_PREFIX + "CONFIG")
    if config_file and not Path(config_file).is_file():
        raise ConfigError(ENV_PREFIX + "CONFIG", f"no such file: {config_file}")
    try:
        return Settings(**overrides)
    except ConfigError:  # raised by a validator that names its setting
        raise
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "settings"
        name = ENV_PREFIX + field.upper() if field in Settings.model_fields else field
        shown = err.get("input")
        got = "" if isinstance(shown, dict) or shown is None else f" (got {shown!r})"
        raise ConfigError(name, err["msg"] + got) from None
    except Exception as exc:  # a malformed TOML file, for one
        raise ConfigError(ENV_PREFIX + "CONFIG", str(exc).splitlines()[0]) from None
