"""Transactions in, fraud alerts out: decode, load the card's state, detect, stage, emit."""

from __future__ import annotations

from time import perf_counter

from faust.types import Message, StreamT

from agents import loop
from app.contract.intake import TRANSACTIONS, Rejected
from app.contract.timeutil import now_ms
from app.detect.fraud import FraudDetector
from app.detect.state import CardState
from app.runtime.service import app, metrics, settings, topics, transactions
from app.runtime.transactions import PartitionTransaction
from tables.cards import cards
from tables.labels import labels

detector = FraudDetector(settings.fraud_config())
TOPIC = settings.topic_transactions
CARDS = transactions.table(cards)


@app.agent(topics.transactions, name="vigil-fraud")
async def detect_fraud(stream: StreamT) -> None:
    """One alert at most per transaction; duplicates change nothing."""
    # A worker never judges a transaction without every committed label (also while the
    # label follower rebuilds its index after an error).
    await loop.run(stream, _handle, ready=labels.caught_up)


def _handle(txn: PartitionTransaction, message: Message) -> None:
    started = perf_counter()
    decoded = TRANSACTIONS(message.value, message.key)
    if isinstance(decoded, Rejected):
        loop.reject(txn, message, decoded)
        return
    key = decoded.card_id.encode()
    raw = txn.get(CARDS, key)
    state = CardState.from_bytes(raw) if raw is not None else None
    detected = now_ms()
    result = detector.process(decoded, state, labels, detected)
    if result.outcome == "duplicate":
        metrics.event_in(TOPIC, "duplicate")
    else:
        txn.put(CARDS, key, result.state.to_bytes())
        if result.alert is not None:
            loop.send_json(txn, topics.fraud_alerts, key, result.alert, message.partition)
            rules = [hit["rule"] for hit in result.alert["rules"]]
            metrics.alert("fraud", rules, (detected - decoded.ts) / 1000)
        metrics.event_in(TOPIC, "ok")
    metrics.observe_processing(TOPIC, perf_counter() - started)
