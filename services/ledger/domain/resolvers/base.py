"""API-version parsing, the resolver protocol, the registry and the unsupported-version result."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from services.ledger.domain.normalised import NormalisedEvent

__all__ = [
    "API_VERSION_NEWER_THAN_KNOWN",
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
    return _parse_version_text(value)


@functools.lru_cache(maxsize=1024)
def _parse_version_text(value: str) -> ApiVersion | None:
    # Every event names its version, and an archive holds a few dozen distinct ones: parsed
    # once each (ApiVersion is frozen, so the shared result cannot be changed by a caller).
    match = _VERSION_RE.match(value.strip())
    if match is None:
        return None
    year, month, day, release = match.groups()
    try:
        date = dt.date(int(year), int(month), int(day))
    except ValueError:
        return None
    return ApiVersion(date=date, release=release, raw=value)


#: Flag on every row classified from a version newer than every known family (see
#: :meth:`ResolverRegistry.resolve`).
API_VERSION_NEWER_THAN_KNOWN = "api_version_newer_than_known"


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

    family: ClassVar[str]
    #: The first API version date whose payloads have this family's shapes.
    introduced: ClassVar[dt.date]

    def accepts(self, version: ApiVersion) -> bool: ...

    def resolve(self, event: Mapping[str, Any], version: ApiVersion) -> NormalisedEvent: ...


class ResolverRegistry:
    """Selects the resolver by the event's ``api_version``. First accepting resolver wins.

    A version no resolver accepts is *newer than known* when it names a release (``.fig``,
    ...) dated after the newest family was introduced: Stripe ships a new family as a new
    release name on a later date, and shapes change additively more often than not, so the
    newest resolver classifies it and the result carries
    :data:`API_VERSION_NEWER_THAN_KNOWN` in ``resolution_flags`` (the ledger flags the row and
    records a ``Warning`` for drift). Anything else no resolver accepts (unparseable, no
    release name, an unknown release dated before the newest family) is unsupported.
    """

    def __init__(self, resolvers: Iterable[PayloadResolver]) -> None:
        self._resolvers: tuple[PayloadResolver, ...] = tuple(resolvers)
        if not self._resolvers:
            raise ValueError("a registry needs at least one resolver")
        self._newest: PayloadResolver = max(self._resolvers, key=lambda r: r.introduced)

    @property
    def newest(self) -> PayloadResolver:
        """The resolver of the most recently introduced family."""
        return self._newest

    def is_newer_than_known(self, version: ApiVersion) -> bool:
        """Whether ``version`` (accepted by no resolver) belongs to a family after the newest."""
        return version.release is not None and version.date > self._newest.introduced

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
        if self.is_newer_than_known(version):
            resolved = self._newest.resolve(event, version)
            return resolved._replace(
                resolution_flags=(*resolved.resolution_flags, API_VERSION_NEWER_THAN_KNOWN),
            )
        return UnsupportedApiVersion(
            event_id, event_type, shown_version, f"no resolver accepts {version.raw!r}"
        )
