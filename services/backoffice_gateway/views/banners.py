"""The banners shown on every page: drift detected, accounts never synced, MRR mismatch.

They come from drift's ``GetDataQualitySummary``; while the drift service is not reachable
(not deployed yet, restarting) the ledger answers the same three questions from its own
read models, so the banners never disappear because one service is away. The answer is
cached for a few seconds per process: every page shows banners, and they need not be fresher
than the page that polls them.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.drift.v1 import drift_pb2 as dr
from billing.ledger.v1 import queries_pb2 as q

from services.backoffice_gateway.backends import Backends
from services.backoffice_gateway.cache import TtlCache
from services.backoffice_gateway.errors import ApiError
from services.backoffice_gateway.views.common import Money, field_money, page_request

# Drift failures that mean "ask the ledger instead" (not a bad request of ours).
FALLBACK_STATUSES = frozenset({501, 502, 503, 504})


@dataclass(frozen=True)
class Banner:
    kind: str  # drift_detected | never_synced | mrr_mismatch
    severity: str  # warning | critical
    message: str
    count: int
    link: str


@dataclass(frozen=True)
class BannersView:
    banners: list[Banner]
    source: str  # drift | ledger
    kpi_mrr: Money | None
    trend_mrr: Money | None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _build(
    drift_accounts: int, unsynced: int, consistent: bool, kpi: Money | None,
    trend: Money | None, source: str, critical: int = 0,
) -> BannersView:
    banners = []
    if drift_accounts:
        banners.append(Banner(
            "drift_detected", "critical" if critical else "warning",
            f"Drift detected on {_plural(drift_accounts, 'account')}.",
            drift_accounts, "/accounts?drift=1",
        ))
    if unsynced:
        banners.append(Banner(
            "never_synced", "warning",
            f"{_plural(unsynced, 'account')} never synced with Stripe: the MRR trend is "
            "incomplete.",
            unsynced, "/accounts?never_synced=1",
        ))
    if not consistent:
        banners.append(Banner(
            "mrr_mismatch", "critical",
            "The MRR KPI and the MRR trend disagree.", 1, "/drift",
        ))
    return BannersView(banners, source, kpi, trend)


def _from_drift(backends: Backends) -> BannersView:
    s = backends.call(
        "drift", backends.drift.GetDataQualitySummary, dr.GetDataQualitySummaryRequest()
    )
    return _build(
        s.accounts_with_drift, s.accounts_never_synced, s.mrr_consistent,
        field_money(s, "kpi_mrr"), field_money(s, "trend_mrr"), "drift",
        critical=s.critical_discrepancies,
    )


def _from_ledger(backends: Backends) -> BannersView:
    def count(**flags: bool) -> int:
        answer = backends.call(
            "ledger", backends.ledger.ListAccounts,
            q.ListAccountsRequest(page=page_request(1, ""), **flags),  # type: ignore[arg-type]
        )
        return int(answer.page.total_count)

    check = backends.call(
        "ledger", backends.ledger.CheckMrrConsistency, q.CheckMrrConsistencyRequest()
    )
    return _build(
        count(drift_detected=True), count(unsynced=True), check.consistent,
        field_money(check, "kpi_mrr"), field_money(check, "trend_mrr"), "ledger",
    )


class BannerCache:
    """One cached answer per process, refreshed after ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self._cache: TtlCache[str, BannersView] = TtlCache(ttl, size=1)

    def get(self, backends: Backends) -> BannersView:
        value = self._cache.get("banners")
        if value is None:
            value = banners(backends)
            self._cache.put("banners", value)
        return value

    def clear(self) -> None:
        self._cache.clear()


def banners(backends: Backends) -> BannersView:
    try:
        return _from_drift(backends)
    except ApiError as exc:
        if exc.status not in FALLBACK_STATUSES:
            raise
    return _from_ledger(backends)
