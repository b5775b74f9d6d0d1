"""The model follower's snapshot: binary, written section by section off the event loop's
critical path, read back exactly; older or foreign snapshots are ignored and say so."""

from __future__ import annotations

import asyncio
import logging
from array import array
from pathlib import Path

import pytest

from app.contract.events import Feedback
from app.score.config import ScoreConfig
from app.score.features import N_FEATURES
from app.score.follower import (
    OLD_SNAPSHOT_NAME,
    SNAPSHOT_NAME,
    ModelFollower,
    config_fingerprint,
)
from app.score.learner import DelayedLearner, Example
from app.score.snapshot import SNAPSHOT_CHUNK
from tests.unit.detect.helpers import HOUR, T0

CONFIG = ScoreConfig(negative_sample=1.0, min_fraud_labels=1)


def follower(tmp_path: Path, config: ScoreConfig = CONFIG) -> ModelFollower:
    return ModelFollower("localhost:1", "t", config, tmp_path)  # no broker is contacted


def teach(learner: DelayedLearner, n: int) -> None:
    for i in range(n):
        x = array("d", [float(i % 7)] * N_FEATURES)
        learner.add_example(Example(f"t-{i}", f"c-{i % 50}", f"t:p-{i % 30}", T0 + i * 1000, x))
        if i % 40 == 0:
            learner.add_label(Feedback(f"t-{i}", "fraud", T0 + i * 1000 + HOUR))
        learner.offset += 1


async def test_the_sectioned_snapshot_is_the_learner_and_a_restart_reads_it(tmp_path) -> None:
    first = follower(tmp_path)
    teach(first.learner, 2 * SNAPSHOT_CHUNK + 10)
    await first.save_async()
    raw = (tmp_path / SNAPSHOT_NAME).read_bytes()
    assert raw == first.learner.to_bytes(config=config_fingerprint(CONFIG))
    again = follower(tmp_path)
    assert again.learner.offset == first.learner.offset
    assert again.learner.summary() == first.learner.summary()
    assert again.learner.to_bytes() == first.learner.to_bytes()
    x = [1.0] * N_FEATURES
    assert again.learner.model.predict(x) == first.learner.model.predict(x)


async def test_the_event_loop_runs_between_the_snapshot_sections(tmp_path) -> None:
    f = follower(tmp_path)
    teach(f.learner, 3 * SNAPSHOT_CHUNK)
    sections = len(list(f.learner.snapshot_parts()))
    ticks = 0
    done = False

    async def other_task() -> None:  # the fraud agent, say
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    start = ticks
    await f.save_async()
    done = True
    await task
    assert ticks - start >= sections  # it ran after every section, not once at the end


def test_an_older_json_snapshot_is_ignored_logged_and_removed(tmp_path, caplog) -> None:
    old = tmp_path / OLD_SNAPSHOT_NAME
    old.write_bytes(b'{"version": 3, "offset": 9}')
    with caplog.at_level(logging.WARNING):
        f = follower(tmp_path)
    assert f.learner.offset == 0 and not old.exists()
    assert "older version" in caplog.text


@pytest.mark.parametrize("damage", ["settings", "truncated", "json"])
def test_a_snapshot_that_cannot_be_used_is_ignored_and_logged(tmp_path, caplog, damage) -> None:
    f = follower(tmp_path)
    teach(f.learner, 100)
    f.save()
    path = tmp_path / SNAPSHOT_NAME
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-20])
    elif damage == "json":
        path.write_bytes(b'{"version": 4}')
    config = ScoreConfig(negative_sample=0.5) if damage == "settings" else CONFIG
    with caplog.at_level(logging.WARNING):
        again = follower(tmp_path, config)
    assert again.learner.offset == 0
    assert "not used" in caplog.text
