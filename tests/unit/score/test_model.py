"""The online logistic regression: it learns, it explains, its snapshot is exact."""

from __future__ import annotations

import math
import random

import orjson

from app.score.model import OnlineLogistic


def stream(n: int, seed: int) -> list[tuple[list[float], int]]:
    """Two informative features (one continuous, one binary), one noise feature."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        y = 1 if rng.random() < 0.1 else 0
        x = [
            rng.gauss(2.0 if y else 0.0, 1.0),
            float(rng.random() < (0.7 if y else 0.05)),
            rng.random(),
        ]
        out.append((x, y))
    return out


def test_it_learns_to_rank() -> None:
    model = OnlineLogistic(3, lr=0.1)
    for x, y in stream(4000, 1):
        model.learn(x, y)
    test = stream(2000, 2)
    pos = [model.predict(x) for x, y in test if y]
    neg = [model.predict(x) for x, y in test if not y]
    wins = sum(1 for p in pos for q in neg[:300] if p > q) / (len(pos) * 300)
    assert wins > 0.9  # AUC on fresh data
    assert model.weights[0] > 0 and model.weights[1] > 0
    assert abs(model.weights[2]) < model.weights[0] / 3


def test_contributions_sum_to_the_logit() -> None:
    model = OnlineLogistic(3, lr=0.1, offset=math.log(0.25))
    for x, y in stream(500, 3):
        model.learn(x, y)
    x = [2.5, 1.0, 0.3]
    p, contributions = model.explain(x)
    logit = model.bias + sum(contributions) + model.offset
    assert p == model.predict(x)
    assert math.isclose(p, 1 / (1 + math.exp(-logit)), rel_tol=1e-12)


def test_prior_correction_lowers_the_probability_by_the_sampling_odds() -> None:
    a = OnlineLogistic(3, lr=0.1)
    b = OnlineLogistic(3, lr=0.1, offset=math.log(0.25))
    for x, y in stream(300, 4):
        a.learn(x, y)
        b.learn(x, y)
    x = [1.0, 0.0, 0.5]
    odds_a = a.predict(x) / (1 - a.predict(x))
    odds_b = b.predict(x) / (1 - b.predict(x))
    assert math.isclose(odds_b, odds_a * 0.25, rel_tol=1e-9)


def test_snapshot_round_trip_is_exact() -> None:
    model = OnlineLogistic(3, lr=0.1)
    data = stream(700, 5)
    for x, y in data[:400]:
        model.learn(x, y)
    copy = OnlineLogistic(3, lr=0.1)
    copy.load(orjson.loads(orjson.dumps(model.to_dict())))
    for x, y in data[400:]:
        model.learn(x, y)
        copy.learn(x, y)
    assert copy.to_dict() == model.to_dict()
    assert copy.predict([1.0, 1.0, 1.0]) == model.predict([1.0, 1.0, 1.0])


def test_the_amount_curve_places_a_jump_finer_than_one_band() -> None:
    # Everything above 220 is fraud: the band of one grid that straddles 220 (5 % wide) is
    # half legit, half fraud, but the shifted grids together place the jump to ~1.25 %.
    model = OnlineLogistic(1, lr=0.05, band_feature=0)
    rng = random.Random(3)
    for _ in range(20_000):
        amount = rng.uniform(150, 300)
        model.learn([math.log(amount + 1)], 1 if amount > 220 else 0)
    assert model.predict([math.log(225 + 1)]) > 0.9
    assert model.predict([math.log(216 + 1)]) < 0.1
    above, below = (model.band_weight([math.log(a + 1)]) for a in (225, 216))
    assert above > below + 3.0
