"""A real, single-node Apache Kafka broker started from Apache's own jars.

Why this exists: Vigil's demo and integration tests need a genuine Kafka (transactions, compaction,
consumer groups behave exactly as in production), but the machines we develop and test on have no
Docker engine. Java and Maven are there, and Maven Central carries every jar a broker needs, so we
fetch them once into a cache outside the work tree (``deploy/kafka/pom.xml`` names them) and run
``kafka.Kafka`` in KRaft combined mode (broker and controller in one JVM, no ZooKeeper).

Everything here is plain Python plus aiokafka; it must not import faust, so the CLI and the test
fixture can use it without loading the stream-processing app.

Modules: `jars` (the POM, the pinned version, Maven into the cache), `config` (server.properties,
ports, KRaft storage format), `process` (`LocalKafka`: start/stop/status of the JVM), `admin`
(readiness and topic creation, for any broker) and `cli` (`vigil kafka start|stop|status`).
"""

from app.devtools.kafka.admin import wait_for_broker
from app.devtools.kafka.cli import main_kafka
from app.devtools.kafka.config import ListenerSecurity
from app.devtools.kafka.errors import KafkaStartError, KafkaToolingError
from app.devtools.kafka.jars import POM_ENV, default_cache_dir, find_pom, kafka_version
from app.devtools.kafka.process import KafkaStatus, LocalKafka, default_home
from app.runtime.topics import TopicSpec, create_topics

__all__ = [
    "POM_ENV",
    "KafkaStartError",
    "KafkaStatus",
    "KafkaToolingError",
    "ListenerSecurity",
    "LocalKafka",
    "TopicSpec",
    "create_topics",
    "default_cache_dir",
    "default_home",
    "find_pom",
    "kafka_version",
    "main_kafka",
    "wait_for_broker",
]
