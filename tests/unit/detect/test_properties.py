"""Trimmed state against brute force: for arrivals within `max_disorder_ms` of the newest ts, the
detector must decide exactly as a recount over the card's whole history would."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.contract.events import Feedback, Transaction
from app.detect.config import RULES, FraudConfig
from app.detect.feedback import InMemoryFeedback
from app.detect.fraud import FraudDetector
from app.detect.state import CardState
from app.detect.terminal import check_compromised_terminal
from app.detect.travel import haversine_km, travel_fires
from tests.unit.detect.helpers import T0

# Windows a few grid ticks wide, so that random arrivals often land on their edges. The
# duplicate window is more than twice the disorder bound, as in the defaults (24 h vs 10 min).
SMALL = FraudConfig(
    velocity_count=3,
    velocity_window_ms=1_000,
    spike_min_prior=2,
    card_testing_count=3,
    card_testing_window_ms=2_000,
    duplicate_window_ms=5_000,
    max_disorder_ms=1_000,
    terminal_window_ms=10_000,
)
DEFAULT = FraudConfig()
AMOUNTS = [0.0, 1.0, 2.0, 2.0, 2.01, 10.0, 10.0, 30.0, 99.99, 10_000.0]
SPOTS = [None, (0.0, 0.0), (0.0, 0.5), (0.0, 2.0), (10.0, 10.0)]

# No example database: the tests stay deterministic in cost and write nothing to the tree.
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Step:
    gap: int  # ticks the cursor advances (a tick is a quarter of the velocity window)
    back: int | None  # ticks this arrival lags the cursor; None: the most max_disorder_ms allows
    jitter: int  # ms off the grid, to land 1 ms either side of an edge
    amount: float
    reuse: int | None  # reuse the txn id of the arrival this many before (modulo)
    spot: tuple[float, float] | None


steps = st.lists(
    st.builds(
        Step,
        gap=st.sampled_from([0, 0, 1, 1, 2, 3, 4, 5, 8, 20, 21]),
        back=st.one_of(st.just(0), st.none(), st.integers(0, 12)),
        jitter=st.sampled_from([0, 0, 0, 1, -1]),
        amount=st.one_of(st.sampled_from(AMOUNTS), st.floats(0.0, 5_000.0)),
        reuse=st.one_of(st.none(), st.integers(0, 3), st.integers(0, 60)),
        spot=st.sampled_from(SPOTS),
    ),
    max_size=60,
)


def arrivals(config: FraudConfig, plan: list[Step]) -> list[Transaction]:
    """Transactions on a grid of ticks, never more than max_disorder_ms behind the newest ts.

    The grid makes arrivals land exactly on window edges and on the trimming horizon.
    """
    tick = config.velocity_window_ms // 4
    cursor = newest = T0
    out: list[Transaction] = []
    for i, step in enumerate(plan):
        cursor += step.gap * tick
        lag = config.max_disorder_ms if step.back is None else step.back * tick
        ts = max(cursor - lag + step.jitter, newest - config.max_disorder_ms)
        newest = max(newest, ts)
        reused = step.reuse is not None and out
        txn_id = out[-1 - step.reuse % len(out)].txn_id if reused else f"t{i}"  # type: ignore[operator]
        lat, lon = step.spot if step.spot is not None else (None, None)
        out.append(Transaction(txn_id, "c", step.amount, "EUR", "m", ts, lat=lat, lon=lon))
    return out


def spike_expected(amount: float, prior: list[float], config: FraudConfig) -> bool | None:
    """Exact rational verdict; None when within float rounding of a bar (either is right)."""
    n = len(prior)
    if n < config.spike_min_prior:
        return False
    x = Fraction(amount)
    mean: Fraction = sum(map(Fraction, prior), Fraction(0)) / n
    var = sum(((Fraction(a) - mean) * (Fraction(a) - mean) for a in prior), Fraction(0)) / n
    k = Fraction(config.spike_stddevs)
    diff = x - mean
    spread = diff * diff - k * k * var  # sign of (x - mean)^2 - (k sigma)^2 when x > mean
    multiple = x - Fraction(config.spike_mean_multiple) * mean
    scale: Fraction = max(abs(x), abs(mean), Fraction(1))
    if abs(multiple) <= scale * Fraction(1, 10**9) or (
        diff > 0 and abs(spread) <= scale * scale * Fraction(1, 10**9)
    ):
        return None
    return diff > 0 and spread > 0 and multiple >= 0


@PROPERTY
@given(config=st.sampled_from([SMALL, DEFAULT]), plan=steps, roundtrip=st.booleans())
def test_trimmed_state_decides_like_a_full_recount(
    config: FraudConfig, plan: list[Step], roundtrip: bool
) -> None:
    detector = FraudDetector(config)
    places = InMemoryFeedback(config).places
    state: CardState | None = None
    counted: list[Transaction] = []
    for txn in arrivals(config, plan):
        if roundtrip and state is not None:
            state = CardState.from_bytes(state.to_bytes())
        ts = txn.ts
        small = config.card_testing_max_amount
        if state is not None:  # the trimmed state counts exactly what a recount finds
            vw, cw = config.velocity_window_ms, config.card_testing_window_ms
            assert state.count_in(ts - vw, ts) == sum(ts - vw < c.ts <= ts for c in counted)
            assert state.count_small_in(ts - cw, ts, small) == sum(
                c.amount <= small and ts - cw < c.ts <= ts for c in counted
            )
        det = detector.process(txn, state, places, txn.ts)
        state = det.state
        dup = any(
            c.txn_id == txn.txn_id and abs(c.ts - txn.ts) < config.duplicate_window_ms
            for c in counted
        )
        assert det.outcome == ("duplicate" if dup else "ok")
        if dup:
            assert det.alert is None
            continue

        expected: dict[str, int | None] = {}
        in_velocity = [c for c in counted if ts - config.velocity_window_ms < c.ts <= ts]
        if len(in_velocity) + 1 >= config.velocity_count:
            expected["velocity"] = len(in_velocity) + 1
        spike = spike_expected(txn.amount, [c.amount for c in counted], config)
        if spike:
            expected["amount_spike"] = None
        if counted:
            prev = counted[-1]
            if None not in (prev.lat, prev.lon, txn.lat, txn.lon):
                km = haversine_km(prev.lat, prev.lon, txn.lat, txn.lon)  # type: ignore[arg-type]
                if travel_fires(km, abs(ts - prev.ts), config):
                    expected["impossible_travel"] = None
        if txn.amount <= small:
            n = 1 + sum(
                1
                for c in counted
                if c.amount <= small and ts - config.card_testing_window_ms < c.ts <= ts
            )
            if n >= config.card_testing_count:
                expected["card_testing"] = n
        if txn.amount >= config.large_amount:
            expected["large_amount"] = None

        got = {r["rule"]: r["value"] for r in det.alert["rules"]} if det.alert else {}
        if spike is None:
            got.pop("amount_spike", None)
        assert list(got) == [r for r in RULES if r in got]  # the fixed rule order
        assert set(got) == set(expected)
        for rule in ("velocity", "card_testing"):
            if rule in expected:
                assert got[rule] == expected[rule]
        if det.alert:
            assert 0.0 < det.alert["score"] <= 1.0
        counted.append(txn)

    if state is not None:
        assert state.count == len(counted)
        if counted:
            mean = math.fsum(c.amount for c in counted) / len(counted)
            assert math.isclose(state.mean, mean, rel_tol=1e-9, abs_tol=1e-9)


PLACES = [("t1", "m1"), ("t1", None), (None, "m1"), ("t2", None), (None, None)]


@dataclass(frozen=True)
class Event:
    query: bool
    txn: str
    fraud: bool
    place: int
    advance: int
    offset: int


events = st.lists(
    st.builds(
        Event,
        query=st.booleans(),
        txn=st.sampled_from("abcde"),
        fraud=st.sampled_from([True, True, True, False]),
        place=st.integers(0, len(PLACES) - 1),
        advance=st.integers(0, 6),
        offset=st.integers(-30, 10),
    ),
    max_size=60,
)


@settings(PROPERTY, max_examples=300)
@given(plan=events)
def test_terminal_rule_matches_last_label_per_txn(plan: list[Event]) -> None:
    """Queries run at most one window behind the newest label (the feedback side's bound)."""
    config = SMALL
    window = config.terminal_window_ms
    store = InMemoryFeedback(config)
    last: dict[str, tuple[bool, int, str | None]] = {}
    tick = 1_000  # a tenth of the window: labels and queries land on its edges
    cursor = T0
    newest = T0
    for ev in plan:
        cursor += ev.advance * tick
        terminal, merchant = PLACES[ev.place]
        if not ev.query:
            ts = cursor + ev.offset * tick
            newest = max(newest, ts)
            fb = Feedback(ev.txn, "fraud" if ev.fraud else "legit", ts, None, merchant, terminal)
            store.process(fb)
            last[ev.txn] = (ev.fraud, ts, fb.place)
            continue
        if merchant is None:
            merchant = "m1"
        ts = max(cursor, newest) + max(ev.offset * tick, -window)
        txn = Transaction("q", "c", 1.0, "EUR", merchant, ts, terminal_id=terminal)
        place = "t:" + terminal if terminal else "m:" + merchant
        count = sum(
            1 for fraud, t, p in last.values() if fraud and p == place and ts - window < t <= ts
        )
        times = store.places.fraud_label_times(place)
        assert sum(ts - window < t <= ts for t in times) == count  # pruning lost nothing needed
        hit = check_compromised_terminal(txn, CardState(), config, store.places)
        if count >= config.terminal_fraud_count:
            assert hit is not None and hit.value == count
        else:
            assert hit is None
