"""How Vigil's Kafka clients authenticate and encrypt: the security settings' checks, the TLS
context and aiokafka's security arguments.

Kept apart from `app.settings` (which declares the settings and calls these): every rule
here names the setting at fault in a `ConfigError`, and no message ever holds a secret.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from app.exceptions import ConfigError

if TYPE_CHECKING:
    from app.settings import Settings

#: The settings' environment prefix (`app.settings.ENV_PREFIX`: that module imports this one).
ENV_PREFIX = "VIGIL_"
SSL_FILES = ("broker_ssl_cafile", "broker_ssl_certfile", "broker_ssl_keyfile")


def check(settings: Settings) -> None:
    """The security settings fit together and their files load; else one `ConfigError`.

    Raised as `ConfigError` (not `ValueError`) so the message names the setting at fault.
    """
    protocol = settings.security_protocol
    user, password = settings.broker_sasl_username, settings.broker_sasl_password
    if user and password is None:
        raise ConfigError(
            ENV_PREFIX + "BROKER_SASL_PASSWORD", "required with VIGIL_BROKER_SASL_USERNAME"
        )
    if password is not None and not user:
        raise ConfigError(
            ENV_PREFIX + "BROKER_SASL_USERNAME", "required with VIGIL_BROKER_SASL_PASSWORD"
        )
    if protocol.startswith("SASL_"):
        if not user:
            raise ConfigError(
                ENV_PREFIX + "BROKER_SASL_USERNAME",
                f"required with VIGIL_BROKER_SECURITY_PROTOCOL={protocol}",
            )
    else:
        if user:
            raise ConfigError(
                ENV_PREFIX + "BROKER_SASL_USERNAME",
                f"set, but VIGIL_BROKER_SECURITY_PROTOCOL={protocol} does not use SASL "
                f"(use SASL_{'SSL' if protocol == 'SSL' else 'PLAINTEXT'})",
            )
        if settings.broker_sasl_mechanism != "PLAIN":
            raise ConfigError(
                ENV_PREFIX + "BROKER_SASL_MECHANISM",
                f"set, but VIGIL_BROKER_SECURITY_PROTOCOL={protocol} does not use SASL",
            )
    tls = protocol in ("SSL", "SASL_SSL")
    for name in (*SSL_FILES, "broker_ssl_key_password"):
        if getattr(settings, name) is not None and not tls:
            raise ConfigError(
                ENV_PREFIX + name.upper(),
                f"set, but VIGIL_BROKER_SECURITY_PROTOCOL={protocol} does not use TLS "
                "(use SSL or SASL_SSL)",
            )
    for name in SSL_FILES:
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            raise ConfigError(ENV_PREFIX + name.upper(), f"no such file: {path}")
    if settings.broker_ssl_keyfile is not None and settings.broker_ssl_certfile is None:
        raise ConfigError(
            ENV_PREFIX + "BROKER_SSL_CERTFILE", "required with VIGIL_BROKER_SSL_KEYFILE"
        )
    if settings.broker_ssl_key_password is not None and settings.broker_ssl_certfile is None:
        raise ConfigError(
            ENV_PREFIX + "BROKER_SSL_CERTFILE", "required with VIGIL_BROKER_SSL_KEY_PASSWORD"
        )
    if tls:
        settings.kafka_ssl_context()  # unreadable PEM files or a wrong key password stop here


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of every Kafka client (None without TLS); host names are checked.

    `aiokafka.helpers.create_ssl_context`: verifies the broker's certificate against
    `broker_ssl_cafile` (else the system's CAs) and its host name, always; presents the
    client certificate when one is configured (mTLS). A file that does not load raises
    `ConfigError` naming its setting.
    """
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    cafile, certfile = settings.broker_ssl_cafile, settings.broker_ssl_certfile
    try:
        context = create_ssl_context(cafile=str(cafile) if cafile else None)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(
            ENV_PREFIX + "BROKER_SSL_CAFILE", f"cannot load CA certificates: {_reason(exc)}"
        ) from None
    if certfile is not None:
        keyfile, key_password = settings.broker_ssl_keyfile, settings.broker_ssl_key_password
        try:
            context.load_cert_chain(
                str(certfile),
                str(keyfile) if keyfile else None,
                key_password.get_secret_value() if key_password is not None else None,
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(
                ENV_PREFIX + "BROKER_SSL_CERTFILE",
                "cannot load the client certificate and key (VIGIL_BROKER_SSL_CERTFILE, "
                "VIGIL_BROKER_SSL_KEYFILE, VIGIL_BROKER_SSL_KEY_PASSWORD): " + _reason(exc),
            ) from None
    context.check_hostname = True  # create_ssl_context's default; never turned off
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka's security arguments (protocol, SASL, TLS context); empty for PLAINTEXT.

    The one place they are built: Vigil's own clients get them through
    `kafka_client_kwargs()`, Faust the equivalent credentials (`broker_credentials` in
    `app.runtime.faust_app`), so every connection to the broker is secured alike.
    """
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return {}
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        assert settings.broker_sasl_password is not None  # checked by _broker_security
        kwargs.update(
            sasl_mechanism=settings.broker_sasl_mechanism,
            sasl_plain_username=settings.broker_sasl_username,
            sasl_plain_password=settings.broker_sasl_password.get_secret_value(),
        )
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    return kwargs


def _reason(exc: BaseException) -> str:
    """An SSL/OS error in a few words (no secret is ever part of one)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
