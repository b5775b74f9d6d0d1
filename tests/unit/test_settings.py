from __future__ import annotations

import subprocess
import sys

import pytest

from app.exceptions import ConfigError
from app.settings import Settings, load_settings


def test_defaults_are_the_contract(monkeypatch):
    s = load_settings()
    assert (s.velocity_count, s.velocity_window_s, s.card_testing_max_amount, s.large_amount) == (
        6,
        60,
        2.0,
        10000,
    )
    assert (s.cart_timeout_s, s.cart_lateness_s, s.processing_guarantee) == (
        1800,
        10,
        "exactly_once",
    )
    assert s.topic_dead_letters == "vigil-dead-letters"


def test_env_prefix(monkeypatch):
    monkeypatch.setenv("VIGIL_VELOCITY_COUNT", "9")
    monkeypatch.setenv("VIGIL_BROKER", "127.0.0.1:1234")
    s = load_settings()
    assert s.velocity_count == 9
    assert s.bootstrap_servers == "127.0.0.1:1234"


@pytest.mark.parametrize(
    "env, value, fragment",
    [
        ("VIGIL_VELOCITY_COUNT", "many", "valid integer"),
        ("VIGIL_PARTITIONS", "0", "greater than or equal to 1"),
        ("VIGIL_PROCESSING_GUARANTEE", "maybe", "exactly_once"),
        ("VIGIL_BROKER", "nohostport", "host:port"),
    ],
)
def test_bad_value_names_the_setting(monkeypatch, env, value, fragment):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == env
    assert fragment in str(info.value)


def test_config_file(monkeypatch, tmp_path):
    path = tmp_path / "vigil.toml"
    path.write_text('velocity_count = 8\ntopic_transactions = "txns"\n')
    monkeypatch.setenv("VIGIL_CONFIG", str(path))
    s = load_settings()
    assert (s.velocity_count, s.topic_transactions) == (8, "txns")
    monkeypatch.setenv("VIGIL_VELOCITY_COUNT", "3")  # environment beats the file
    assert load_settings().velocity_count == 3


def test_unknown_key_in_file_is_an_error(monkeypatch, tmp_path):
    path = tmp_path / "vigil.toml"
    path.write_text("velocity_cuont = 8\n")
    monkeypatch.setenv("VIGIL_CONFIG", str(path))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "velocity_cuont" in str(info.value)


def test_secret_is_not_printed():
    s = Settings(broker_sasl_username="u", broker_sasl_password="hunter2")
    assert "hunter2" not in repr(s)


def test_cli_bad_setting_exits_2_with_one_line(tmp_path):
    env = {"VIGIL_WEB_PORT": "http", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "check"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path.parent if False else None,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "VIGIL_WEB_PORT" in lines[0]


def test_kafka_client_kwargs_carry_the_broker_and_sasl_credentials():
    plain = Settings(broker="kafka://a:9092;b:9093")
    assert plain.kafka_client_kwargs() == {"bootstrap_servers": "a:9092,b:9093"}
    secured = Settings(
        broker="kafka://a:9092", broker_sasl_username="vigil", broker_sasl_password="s3cret"
    )
    assert secured.kafka_client_kwargs() == {
        "bootstrap_servers": "a:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "vigil",
        "sasl_plain_password": "s3cret",
    }


def test_event_loop_is_uvloop_unless_set(monkeypatch):
    assert Settings().event_loop == "uvloop"
    monkeypatch.setenv("VIGIL_EVENT_LOOP", "asyncio")
    assert Settings().event_loop == "asyncio"
    monkeypatch.setenv("VIGIL_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="event_loop"):
        Settings()


def test_standby_replicas_default_zero_and_passed_to_faust(monkeypatch):
    from app.runtime.faust_app import create_app

    assert Settings().standby_replicas == 0
    monkeypatch.setenv("VIGIL_STANDBY_REPLICAS", "1")
    settings = load_settings()
    assert settings.standby_replicas == 1
    assert create_app(settings).conf.table_standby_replicas == 1


@pytest.mark.parametrize(
    "env, value, fragment",
    [
        ("VIGIL_STANDBY_REPLICAS", "-1", "greater than or equal to 0"),
        ("VIGIL_STANDBY_REPLICAS", "one", "valid integer"),
        ("VIGIL_STANDBY_REPLICAS", "1.5", "valid integer"),
        ("VIGIL_BROKER_CONNECT_TIMEOUT_S", "-5", "greater than or equal to 0"),
        ("VIGIL_BROKER_CONNECT_TIMEOUT_S", "soon", "valid number"),
    ],
)
def test_bad_standby_or_connect_timeout_names_the_setting(monkeypatch, env, value, fragment):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == env
    assert fragment in str(info.value)


def test_cli_bad_standby_replicas_exits_2_with_one_line():
    env = {"VIGIL_STANDBY_REPLICAS": "-1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "VIGIL_STANDBY_REPLICAS" in lines[0], proc.stderr


def test_connect_timeout_defaults_to_a_minute_and_zero_means_fail_at_once(monkeypatch):
    assert Settings().broker_connect_timeout_s == 60.0
    monkeypatch.setenv("VIGIL_BROKER_CONNECT_TIMEOUT_S", "0")
    assert load_settings().broker_connect_timeout_s == 0.0
