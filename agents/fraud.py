"""Transactions in, risk scores and fraud alerts out: decode, load the card's state, score,
stage, emit."""

from __future__ import annotations

import asyncio
from time import perf_counter

import orjson
from faust.types import Message, StreamT

from agents import loop
from app.contract.intake import TRANSACTIONS, Rejected
from app.contract.timeutil import now_ms
from app.detect.fraud import FraudDetector
from app.detect.state import CardState
from app.runtime.service import app, metrics, settings, topics, transactions
from app.runtime.transactions import PartitionTransaction
from app.score.follower import example_value
from app.score.scorer import RiskScorer
from tables.cards import cards
from tables.labels import labels
from tables.model import TRAINING_TOPIC, model

scorer = RiskScorer(FraudDetector(settings.fraud_config()), settings.score_config())
TOPIC = settings.topic_transactions
SCORES = settings.topic_txn_scores
CARDS = transactions.table(cards)


class _AllCaughtUp:
    """Set while the fraud labels and the risk model have both caught up (the loop's gate)."""

    def __init__(self, *events: asyncio.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return all(e.is_set() for e in self.events)

    async def wait(self) -> bool:
        while not self.is_set():
            for e in self.events:
                await e.wait()
        return True


@app.agent(topics.transactions, name="vigil-fraud")
async def detect_fraud(stream: StreamT) -> None:
    """One score per non-duplicate transaction, one alert at most; duplicates change nothing."""
    # A worker never judges a transaction without every committed label and without the
    # model it had learned (also while the label follower rebuilds its index after an error).
    ready = _AllCaughtUp(labels.caught_up, model.caught_up)
    await loop.run(stream, _handle, ready=ready)  # type: ignore[arg-type]


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
    result = scorer.process(decoded, state, labels, model.learner, detected)
    if result.outcome == "duplicate":
        metrics.event_in(TOPIC, "duplicate")
    else:
        assert result.score is not None and result.example is not None
        txn.put(CARDS, key, result.state.to_bytes())
        partition = message.partition
        if result.alert is not None:
            loop.send_json(txn, topics.fraud_alerts, key, result.alert, partition)
            rules = [hit["rule"] for hit in result.alert["rules"]]
            metrics.alert("fraud", rules, (detected - decoded.ts) / 1000)
        txn.send(SCORES, key, orjson.dumps(result.score), partition)
        # The features as scored, for every worker's model (one partition: one order).
        txn.send(TRAINING_TOPIC, decoded.txn_id.encode(), example_value(result.example), 0)
        metrics.risk.score(result.score["score"])
        metrics.event_in(TOPIC, "ok")
    metrics.observe_processing(TOPIC, perf_counter() - started)
