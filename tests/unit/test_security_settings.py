"""Broker security settings: protocol, SASL mechanism, TLS files; Faust gets the same."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from app.exceptions import ConfigError
from app.runtime.faust_app import broker_credentials
from app.settings import Settings, load_settings
from tests.fixtures.kafka import TlsFiles, make_tls_files

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _error(**settings) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(**settings)
    return info.value


def _faust_view(settings: Settings) -> dict:
    """What Faust's aiokafka driver passes its clients for these settings."""
    return credentials_to_aiokafka_auth(broker_credentials(settings))


def test_protocol_derives_from_the_sasl_user_when_unset():
    assert Settings().security_protocol == "PLAINTEXT"
    assert Settings().kafka_security_kwargs() == {}
    assert broker_credentials(Settings()) is None
    sasl = Settings(broker_sasl_username="u", broker_sasl_password="p")
    assert sasl.security_protocol == "SASL_PLAINTEXT"
    assert sasl.kafka_security_kwargs()["sasl_mechanism"] == "PLAIN"


def test_sasl_ssl_with_scram_and_a_ca(tls):
    s = Settings(
        broker="kafka://k1:9093;k2:9093",
        broker_security_protocol="SASL_SSL",
        broker_sasl_mechanism="SCRAM-SHA-512",
        broker_sasl_username="vigil",
        broker_sasl_password="s3cret",
        broker_ssl_cafile=tls.ca,
    )
    kwargs = s.kafka_client_kwargs()
    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "bootstrap_servers": "k1:9093,k2:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "vigil",
        "sasl_plain_password": "s3cret",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert context.get_ca_certs()  # the test CA, not (only) the system's
    faust = _faust_view(s)
    assert isinstance(faust.pop("ssl_context"), ssl.SSLContext)
    assert faust == {k: v for k, v in kwargs.items() if k != "bootstrap_servers"}
    assert "s3cret" not in repr(broker_credentials(s)) + repr(s)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_plaintext_mechanisms_reach_faust(mechanism):
    s = Settings(
        broker_security_protocol="SASL_PLAINTEXT",
        broker_sasl_mechanism=mechanism,
        broker_sasl_username="u",
        broker_sasl_password="p",
    )
    assert _faust_view(s) == {**s.kafka_security_kwargs(), "ssl_context": None}


def test_mutual_tls_with_an_encrypted_key(tls):
    s = Settings(
        broker_security_protocol="SSL",
        broker_ssl_cafile=tls.ca,
        broker_ssl_certfile=tls.client_cert,
        broker_ssl_keyfile=tls.client_key,
        broker_ssl_key_password=tls.client_key_password,
    )
    kwargs = s.kafka_security_kwargs()
    assert kwargs["security_protocol"] == "SSL"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    faust = _faust_view(s)
    assert faust["security_protocol"] == "SSL"
    assert isinstance(faust["ssl_context"], ssl.SSLContext)
    assert tls.client_key_password not in repr(s)


def test_ssl_without_a_cafile_uses_the_system_cas():
    s = Settings(broker_security_protocol="SSL")
    assert s.kafka_ssl_context() is not None


@pytest.mark.parametrize(
    ("settings", "setting", "words"),
    [
        ({"broker_sasl_username": "u"}, "VIGIL_BROKER_SASL_PASSWORD", "required"),
        ({"broker_sasl_password": "p"}, "VIGIL_BROKER_SASL_USERNAME", "required"),
        ({"broker_security_protocol": "SASL_SSL"}, "VIGIL_BROKER_SASL_USERNAME", "required"),
        (
            {
                "broker_security_protocol": "SSL",
                "broker_sasl_username": "u",
                "broker_sasl_password": "p",
            },
            "VIGIL_BROKER_SASL_USERNAME",
            "does not use SASL",
        ),
        (
            {"broker_sasl_mechanism": "SCRAM-SHA-256"},
            "VIGIL_BROKER_SASL_MECHANISM",
            "does not use SASL",
        ),
        (
            {"broker_ssl_cafile": "/etc/hostname"},
            "VIGIL_BROKER_SSL_CAFILE",
            "does not use TLS",
        ),
        (
            {"broker_security_protocol": "SSL", "broker_ssl_cafile": "/no/such/ca.pem"},
            "VIGIL_BROKER_SSL_CAFILE",
            "no such file: /no/such/ca.pem",
        ),
        (
            {"broker_security_protocol": "SSL", "broker_ssl_key_password": "x"},
            "VIGIL_BROKER_SSL_CERTFILE",
            "required",
        ),
    ],
)
def test_inconsistent_security_settings_name_the_setting(settings, setting, words):
    error = _error(**settings)
    assert error.setting == setting
    assert words in error.message


def test_unreadable_tls_files_are_bad_settings(tls, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    error = _error(broker_security_protocol="SSL", broker_ssl_cafile=junk)
    assert error.setting == "VIGIL_BROKER_SSL_CAFILE"
    error = _error(
        broker_security_protocol="SSL",
        broker_ssl_certfile=tls.client_cert,
        broker_ssl_keyfile=tls.client_key,
        broker_ssl_key_password="wrong-key-pw",
    )
    assert error.setting == "VIGIL_BROKER_SSL_CERTFILE"
    assert "wrong-key-pw" not in str(error)
    error = _error(broker_security_protocol="SSL", broker_ssl_keyfile=tls.client_key)
    assert error.setting == "VIGIL_BROKER_SSL_CERTFILE"


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_hides_the_secrets_and_shows_the_derived_protocol(tls):
    proc = _cli(
        "check",
        VIGIL_BROKER_SASL_USERNAME="vigil",
        VIGIL_BROKER_SASL_PASSWORD="sasl-hunter2",
    )
    assert proc.returncode == 0, proc.stderr
    assert "sasl-hunter2" not in proc.stdout + proc.stderr
    assert "broker_sasl_password = '**********'" in proc.stdout
    assert "broker_security_protocol = None  # unset: SASL_PLAINTEXT" in proc.stdout
    proc = _cli(
        "check",
        VIGIL_BROKER_SECURITY_PROTOCOL="SSL",
        VIGIL_BROKER_SSL_CAFILE=str(tls.ca),
        VIGIL_BROKER_SSL_CERTFILE=str(tls.client_cert),
        VIGIL_BROKER_SSL_KEYFILE=str(tls.client_key),
        VIGIL_BROKER_SSL_KEY_PASSWORD=tls.client_key_password,
    )
    assert proc.returncode == 0, proc.stderr
    assert tls.client_key_password not in proc.stdout + proc.stderr


def test_a_missing_tls_file_stops_the_worker_with_one_line(tmp_path):
    proc = _cli(
        "worker",
        VIGIL_BROKER_SECURITY_PROTOCOL="SASL_SSL",
        VIGIL_BROKER_SASL_USERNAME="vigil",
        VIGIL_BROKER_SASL_PASSWORD="sasl-hunter2",
        VIGIL_BROKER_SSL_CAFILE=str(tmp_path / "ca.pem"),
        VIGIL_STORE_DIR=str(tmp_path / "store"),
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"vigil: bad setting VIGIL_BROKER_SSL_CAFILE: no such file: {tmp_path}/ca.pem"]


def test_the_demo_refuses_a_secured_broker(tls):
    from app.devtools.demo.broker import find_or_start_broker
    from app.devtools.demo.console import DemoError

    for settings in (
        Settings(broker_security_protocol="SSL", broker_ssl_cafile=tls.ca),
        Settings(broker_sasl_username="u", broker_sasl_password="p"),
    ):
        with pytest.raises(DemoError, match="plain, unauthenticated brokers only"):
            find_or_start_broker(settings)


def test_broker_security_names_settings_with_the_settings_prefix():
    from app import broker_security, settings

    assert broker_security.ENV_PREFIX == settings.ENV_PREFIX
