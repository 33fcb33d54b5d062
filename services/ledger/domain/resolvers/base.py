"""API-version parsing, the resolver protocol, the registry and the unsupported-version result."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.ledger.domain.normalised import NormalisedEvent

__all__ = [
    "ApiVersion",
    "PayloadResolver",
    "ResolverRegistry",
    "UnsupportedApiVersion",
    "parse_api_version",
]

# "2020-08-27", "2025-03-31.basil", "2016-03-07; orders_beta=v3", "2024-09-30.acacia; x=y"
_VERSION_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:\.([a-z][a-z0-9_]*))?\s*(?:;.*)?$")


@dataclass(frozen=True, slots=True, order=True)
class ApiVersion:
    """A parsed Stripe API version: its date and its release name (``basil``, ...) if any."""

    date: dt.date
    release: str | None
    raw: str

    @property
    def is_dated_only(self) -> bool:
        return self.release is None


def parse_api_version(value: object) -> ApiVersion | None:
    """Parse ``value``; ``None`` when it is not a Stripe API version string.

    Beta suffixes after ``;`` are ignored (``"2016-03-07; orders_beta=v3"`` is 2016-03-07).
    """
    if not isinstance(value, str):
        return None
    match = _VERSION_RE.match(value.strip())
    if match is None:
        return None
    year, month, day, release = match.groups()
    try:
        date = dt.date(int(year), int(month), int(day))
    except ValueError:
        return None
    return ApiVersion(date=date, release=release, raw=value)


@dataclass(frozen=True, slots=True)
class UnsupportedApiVersion:
    """The result for an event no resolver accepts. The ledger archives the event, does not
    classify it, and reports ``UnsupportedStripeApiVersion`` drift."""

    event_id: str | None
    event_type: str | None
    api_version: str | None
    reason: str

    drift_kind: str = "UnsupportedStripeApiVersion"


class PayloadResolver(Protocol):
    """Turns a raw event of one API-version family into a ``NormalisedEvent``."""

    family: str

    def accepts(self, version: ApiVersion) -> bool: ...

    def resolve(self, event: Mapping[str, Any], version: ApiVersion) -> NormalisedEvent: ...


class ResolverRegistry:
    """Selects the resolver by the event's ``api_version``. First accepting resolver wins."""

    def __init__(self, resolvers: Iterable[PayloadResolver]) -> None:
        self._resolvers: tuple[PayloadResolver, ...] = tuple(resolvers)

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(r.family for r in self._resolvers)

    def resolver_for(self, api_version: object) -> PayloadResolver | None:
        version = parse_api_version(api_version)
        if version is None:
            return None
        for resolver in self._resolvers:
            if resolver.accepts(version):
                return resolver
        return None

    def resolve(self, event: object) -> NormalisedEvent | UnsupportedApiVersion:
        """Never raises: returns ``UnsupportedApiVersion`` for anything it cannot resolve."""
        if not isinstance(event, Mapping):
            return UnsupportedApiVersion(None, None, None, "event is not a JSON object")
        raw_version = event.get("api_version")
        event_id = event.get("id") if isinstance(event.get("id"), str) else None
        event_type = event.get("type") if isinstance(event.get("type"), str) else None
        shown_version = raw_version if isinstance(raw_version, str) else None
        version = parse_api_version(raw_version)
        if version is None:
            return UnsupportedApiVersion(
                event_id, event_type, shown_version, f"unparseable api_version {raw_version!r}"
            )
        for resolver in self._resolvers:
            if resolver.accepts(version):
                return resolver.resolve(event, version)
        return UnsupportedApiVersion(
            event_id, event_type, shown_version, f"no resolver accepts {version.raw!r}"
        )
