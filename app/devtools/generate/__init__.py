"""Seeded synthetic traffic for Vigil's three input topics: the demo, the tests and the benchmark.

Why a model and not random records: detectors are only worth showing (and only testable end to
end) against traffic that looks like the real thing. Random records would either never fire a
rule or fire all of them all the time. So most of what this module produces is *normal*: cards
that spend around their own mean (log-normal amounts) at merchants and terminals near a home
city, shoppers who browse, fill carts and buy. Into that background it injects, with small
configurable probabilities, scripted episodes of exactly the behaviour the six fraud rules and
the cart machine look for (see `PatternRates` and `CartMix`), plus, when asked, a few records
that must go to dead letters.

Everything is driven by one `random.Random(seed)`, and no iteration ever depends on hash order,
so a seed always gives the same records (`realtime=True` aside, whose timestamps are the wall
clock). No Kafka import: callers map `topic_kind` to a topic name (`topic_for`) and send.

Time model: a virtual event-time clock advances one *slot* per record (exponential gaps at
`events_per_second`, or the wall clock in realtime mode). Scripted episodes schedule their later
steps at absolute times; each slot emits the earliest due step if there is one, otherwise a new
action (a normal transaction, a new cart session, a label, ...). The rate is therefore exactly
the configured one whatever the mix, and an episode's steps keep their spacing (a step waits at
most a few slots behind its schedule).
"""

from app.devtools.generate.output import to_bytes, topic_for, write_jsonl
from app.devtools.generate.records import (
    DEFAULT_START_MS,
    TOPIC_KINDS,
    CartMix,
    GeneratedRecord,
    PatternRates,
    TopicKind,
)
from app.devtools.generate.traffic import TrafficGenerator

__all__ = [
    "DEFAULT_START_MS",
    "TOPIC_KINDS",
    "CartMix",
    "GeneratedRecord",
    "PatternRates",
    "TopicKind",
    "TrafficGenerator",
    "to_bytes",
    "topic_for",
    "write_jsonl",
]
