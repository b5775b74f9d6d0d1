"""Create Vigil's topics up front, with the configured partitions.

Faust creates changelog topics itself, but a table's changelog must have exactly as many
partitions as its source topic or the agent dies with `PartitionsMismatch`; creating the
source, output and internal topics here (and refusing to run against a topic with another
partition count) turns that late crash into a clear start-up error.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from app.exceptions import BrokerUnavailable, ConfigError
from app.runtime.faust_app import FRAUD_LABELS_TOPIC_SUFFIX, TICKS_TOPIC_SUFFIX, internal_topic
from app.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    """A topic Vigil needs: its name, the setting that names it, and its config."""

    name: str
    setting: str
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic a worker reads or writes, except the changelogs Faust creates."""
    specs = [
        TopicSpec(getattr(settings, name), "VIGIL_" + name.upper())
        for name in type(settings).model_fields
        if name.startswith("topic_")
    ]
    specs.append(
        TopicSpec(
            internal_topic(settings, TICKS_TOPIC_SUFFIX),
            "VIGIL_APP_ID",
            {"retention.ms": str(3_600_000), "cleanup.policy": "delete"},
        )
    )
    specs.append(
        TopicSpec(
            internal_topic(settings, FRAUD_LABELS_TOPIC_SUFFIX),
            "VIGIL_APP_ID",
            {"cleanup.policy": "compact"},
        )
    )
    return specs


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create missing topics; fail if an existing one has another partition count.

    Returns the names created.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (KafkaConnectionError, TimeoutError, OSError) as exc:
        await admin.close()
        raise BrokerUnavailable(
            f"cannot reach the Kafka broker at {settings.bootstrap_servers} (VIGIL_BROKER): {exc}"
        ) from None
    created: list[str] = []
    try:
        specs = topic_specs(settings)
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        for spec in missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            spec.name,
                            num_partitions=settings.partitions,
                            replication_factor=settings.replication_factor,
                            topic_configs=spec.config,
                        )
                    ]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        present = [s for s in specs if s.name in existing]
        if present:
            described = await admin.describe_topics([s.name for s in present])
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            for spec in present:
                count = counts.get(spec.name)
                if count is not None and count != settings.partitions:
                    raise ConfigError(
                        "VIGIL_PARTITIONS",
                        f"topic {spec.name!r} ({spec.setting}) has {count} partitions but "
                        f"VIGIL_PARTITIONS is {settings.partitions}; they must be equal",
                    )
    finally:
        await admin.close()
    return created
