"""Typed access to configuration, which comes only from environment variables.

Every variable a service reads goes through these helpers so that a wrong value fails at
start-up with a message naming the variable, instead of deep inside a request.
"""

from __future__ import annotations

import dataclasses
import os
import re


class ConfigError(ValueError):
    """A configuration variable is set to a value the service cannot use."""


def env_str(name: str, default: str) -> str:
    """Return the variable's value, or ``default`` when it is unset or empty."""
    value = os.environ.get(name, "")
    return value if value != "" else default


def env_optional(name: str) -> str | None:
    """Return the variable's value, or None when it is unset or empty."""
    value = os.environ.get(name, "")
    return value or None


def env_int(name: str, default: int) -> int:
    """Return the variable as an integer; a non-integer value is a ConfigError."""
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    """Return the variable as a float; a non-number is a ConfigError."""
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def env_list(name: str) -> list[str]:
    """Return a comma-separated variable as a list of non-empty, stripped items."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:54329/billing"
DEFAULT_NATS_URL = "nats://127.0.0.1:4229"


def database_url() -> str:
    """The SQLAlchemy URL of the suite's PostgreSQL database (``DATABASE_URL``).

    A plain ``postgresql://`` URL is accepted and mapped to the psycopg 3 driver, so the same
    value works for ``psql`` and for the services.
    """
    return sqlalchemy_url(env_str("DATABASE_URL", DEFAULT_DATABASE_URL))


def sqlalchemy_url(url: str) -> str:
    """Map ``postgres://`` / ``postgresql://`` URLs to SQLAlchemy's psycopg 3 dialect."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def libpq_url(url: str) -> str:
    """The libpq form of a SQLAlchemy URL (for psycopg.connect and psql)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def nats_url() -> str:
    """The NATS server URL (``NATS_URL``)."""
    return env_str("NATS_URL", DEFAULT_NATS_URL)


REDACTED = "***"
_SECRET_NAME = re.compile(r"secret|token|password|api_key|private_key", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*(?P<tail>@)", re.I)


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo part (``user:password@``) replaced."""
    return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}\g<tail>", url)


def redacted_repr(settings: object) -> str:
    """A dataclass's repr with secrets hidden: fields named like a secret (secret, token,
    password, api_key, private_key) are shown as ``***``, and passwords inside URLs too.

    Settings classes use it as their ``__repr__`` so a logged or printed settings object (or
    a traceback showing one) never carries a credential.
    """
    assert dataclasses.is_dataclass(settings)
    parts = []
    for item in dataclasses.fields(settings):
        if not item.repr:
            continue
        value = getattr(settings, item.name)
        if _SECRET_NAME.search(item.name) and value:
            shown = REDACTED
        elif isinstance(value, str):
            shown = repr(redact_url(value))
        else:
            shown = repr(value)
        parts.append(f"{item.name}={shown}")
    return f"{type(settings).__name__}({', '.join(parts)})"
