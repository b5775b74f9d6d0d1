"""`--peers`: parsing, the missing-library message, the Quix peer's per-record work (without
Quix: `CardRules` is plain Vigil code behind Quix's apply signature), and its summary line."""

from __future__ import annotations

import orjson
import pytest

from app.contract.intake import TRANSACTIONS, Rejected
from app.detect.feedback import InMemoryFeedback
from app.detect.fraud import FraudDetector
from app.detect.state import CardState
from app.settings import Settings
from bench import cli, data, peers
from bench.peers.quix import STATE_KEY, CardRules
from bench.peers.scenario import last_json_line


def test_parse_peers_takes_known_names_once_in_order():
    assert peers.parse_peers(None) == []
    assert peers.parse_peers(" ") == []
    assert peers.parse_peers("quix") == ["quix"]
    assert peers.parse_peers(" Quix, quix,") == ["quix"]
    with pytest.raises(ValueError, match="unknown peer 'faust'"):
        peers.parse_peers("quix,faust")


def test_missing_library_is_one_line_saying_how_to_install(monkeypatch):
    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: None)
    assert peers.missing(["quix"]) == [
        "bench: --peers quix needs quixstreams: .venv/bin/pip install -e '.[bench]'"
    ]
    assert peers.missing([]) == []


def test_cli_stops_before_any_broker_when_the_peer_is_not_installed(monkeypatch, capsys):
    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: None)

    def no_broker(*args, **kwargs):
        raise AssertionError("the broker must not start")

    monkeypatch.setattr(cli.Broker, "start", no_broker)
    assert cli.main(["--quick", "--only", "fraud", "--peers", "quix"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bench: --peers quix needs quixstreams: .venv/bin/pip install -e '.[bench]'"]
    assert cli.main(["--peers", "nope"]) == 2


class DictState:
    """Quix's per-key `State`, for one key: get/set."""

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}

    def get(self, key: bytes, default: object = None) -> object:
        return self.values.get(key, default)

    def set(self, key: bytes, value: bytes) -> None:
        self.values[key] = value


def test_card_rules_alert_exactly_where_vigils_detector_does():
    records, _ = data.fraud_traffic(3000, seed=7)
    rules = CardRules()
    states: dict[bytes, DictState] = {}
    peer_alerts = []
    for key, value in records:
        out = rules(value, key, 0, None, states.setdefault(key, DictState()))
        if out is not None:
            peer_alerts.append(orjson.loads(out))
    # The same transactions through FraudDetector directly, the card's state kept in a dict.
    settings = Settings()
    detector = FraudDetector(settings.fraud_config())
    places = InMemoryFeedback(detector.config).places
    cards: dict[str, CardState] = {}
    expected = []
    for key, value in records:
        txn = TRANSACTIONS(value, key)
        assert not isinstance(txn, Rejected)
        result = detector.process(txn, cards.get(txn.card_id), places, 0)
        cards[txn.card_id] = result.state
        if result.alert is not None:
            expected.append(result.alert)
    assert expected, "the data set should alert somewhere"
    strip = lambda a: {k: v for k, v in a.items() if k != "detected_ts"}  # noqa: E731
    assert [strip(a) for a in peer_alerts] == [strip(a) for a in expected]
    counts = rules.counts
    assert counts.processed == len(records) and counts.alerts == len(expected)
    assert counts.state_updates == len(records) - counts.duplicates - counts.rejected
    # The state Quix keeps is Vigil's own codec, byte for byte.
    some = next(iter(cards))
    assert states[some.encode()].values[STATE_KEY] == cards[some].to_bytes()


def test_card_rules_count_duplicates_and_rejects_without_touching_state():
    records, _ = data.fraud_traffic(50, seed=3)
    key, value = records[0]
    rules, state = CardRules(), DictState()
    rules(value, key, 0, None, state)
    before = dict(state.values)
    assert rules(value, key, 0, None, state) is None  # the same txn_id again
    assert rules(b"{not json", key, 0, None, state) is None
    assert state.values == before
    assert (rules.counts.duplicates, rules.counts.rejected, rules.counts.state_updates) == (1, 1, 1)


def test_summary_is_the_last_json_object_line():
    text = 'WARNING something\n{"peer": "quix", "alerts": 3}\n[1, 2]\nbye\n'
    assert last_json_line(text) == {"peer": "quix", "alerts": 3}
    assert last_json_line("no summary\n{broken") == {}


def test_progress_is_written_every_so_many_records_and_read_back(tmp_path):
    from bench.peers.quix import PROGRESS_EVERY, read_progress

    path = tmp_path / "progress"
    assert read_progress(path) is None
    records, _ = data.fraud_traffic(PROGRESS_EVERY + 10, seed=5)
    rules = CardRules(progress=path)
    states: dict[bytes, DictState] = {}
    for key, value in records:
        rules(value, key, 0, None, states.setdefault(key, DictState()))
    assert read_progress(path) == PROGRESS_EVERY
