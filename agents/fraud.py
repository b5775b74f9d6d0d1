"""Transactions in, fraud alerts out: decode, load the card's state, detect, save, emit."""

from __future__ import annotations

from time import perf_counter

from faust.types import EventT, StreamT

from agents.outputs import Outputs, internal_error
from app.detect.fraud import FraudDetector
from app.detect.state import CardState
from app.intake import TRANSACTIONS, Rejected
from app.main import app, metrics, settings, topics
from app.outbox import read
from app.timeutil import now_ms
from tables.cards import cards
from tables.labels import labels

detector = FraudDetector(settings.fraud_config())
TOPIC = settings.topic_transactions
outputs = Outputs(TOPIC)


@app.agent(topics.transactions, name="vigil-fraud")
async def detect_fraud(stream: StreamT) -> None:
    """One alert at most per transaction; duplicates change nothing."""
    # A restarted worker must not judge transactions before it holds every committed label.
    await labels.caught_up.wait()
    await outputs.run(stream, _handle)


def _handle(event: EventT) -> None:
    started = perf_counter()
    message = event.message
    txn = TRANSACTIONS(message.value, message.key)
    if isinstance(txn, Rejected):
        outputs.reject(message, txn)
        return
    partition = message.partition
    try:
        key = txn.card_id.encode()
        raw = read(cards, key, partition)
        state = CardState.from_bytes(raw) if raw is not None else None
        detected = now_ms()
        result = detector.process(txn, state, labels, detected)
    except Exception as exc:
        outputs.reject(message, internal_error(exc))
        return
    if result.outcome == "duplicate":
        metrics.event_in(TOPIC, "duplicate")
    else:
        outputs.put(cards, key, result.state.to_bytes(), partition)
        if result.alert is not None:
            outputs.json(topics.fraud_alerts, key, result.alert, partition)
            rules = [hit["rule"] for hit in result.alert["rules"]]
            metrics.alert("fraud", rules, (detected - txn.ts) / 1000)
        metrics.event_in(TOPIC, "ok")
    metrics.observe_processing(TOPIC, perf_counter() - started)
