"""The JSON API against the real ledger: the figures of tests/ledger/queries/world.py."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from typing import Any

import pytest

from services.backoffice_gateway.app import create_app
from services.ledger.queries import accounts as ledger_accounts
from tests.gateway.conftest import VIEWER, Browser, gateway_config, signed_in
from tests.gateway.stack import Services
from tests.ledger.queries import world

pytestmark = pytest.mark.integration
AS_OF = "2025-06-15T12:00:00Z"


def test_dashboard_kpis_and_series(viewer: Browser) -> None:
    answer = viewer.client.get(f"/api/v1/dashboard?period=7&as_of={AS_OF}")
    assert answer.status_code == 200, answer.get_json()
    d = answer.get_json()
    assert d["period_days"] == 7
    assert d["platform_currency"] == "USD"
    kpis = {k["key"]: k for k in d["kpis"]}
    assert kpis["total_accounts"]["value"] == 6
    growth = d["account_growth"]
    assert kpis["total_accounts"]["prior"] == growth[0]["total_accounts"] - growth[0][
        "new_accounts"]
    assert kpis["total_accounts"]["change"] == 6 - kpis["total_accounts"]["prior"]
    assert kpis["new_accounts"]["value"] == 3
    assert kpis["new_accounts"]["prior"] == 1
    assert kpis["new_accounts"]["change"] == 2
    assert kpis["committed_mrr"]["value"] == {"amount_minor": world.COMMITTED_NOW,
                                              "currency": "USD"}
    assert kpis["forward_mrr"]["value"]["amount_minor"] == world.FORWARD_NOW
    assert kpis["net_revenue"]["value"]["amount_minor"] == world.PERIOD_REVENUE
    assert kpis["net_revenue"]["prior"]["amount_minor"] == world.PRIOR_REVENUE
    assert kpis["net_revenue"]["change"]["amount_minor"] == (
        world.PERIOD_REVENUE - world.PRIOR_REVENUE
    )
    assert len(d["mrr_trend"]) == 7
    assert len(d["revenue_trend"]) == 7
    assert d["revenue_trend"][-1]["cumulative"]["amount_minor"] == world.PERIOD_REVENUE
    # the prior period is overlaid point by point: its last point is the prior period's end
    assert d["mrr_trend"][-1]["prior_committed_mrr"]["amount_minor"] == (
        kpis["committed_mrr"]["prior"]["amount_minor"]
    )
    assert {m["category"] for m in d["mrr_movements"]} == {
        "new", "expansion", "contraction", "churn", "reactivation"
    }
    assert d["unconverted_currencies"] == ["GBP"]


@pytest.mark.parametrize("period", [7, 30, 90])
def test_every_period_drives_every_series(viewer: Browser, period: int) -> None:
    d = viewer.client.get(f"/api/v1/dashboard?period={period}&as_of={AS_OF}").get_json()
    assert d["period_days"] == period
    assert len(d["mrr_trend"]) == len(d["revenue_trend"]) == len(d["account_growth"]) == period


@pytest.mark.parametrize("period", ["14", "x", "0", "-7", "7.5"])
def test_bad_period_is_400(viewer: Browser, period: str) -> None:
    answer = viewer.client.get(f"/api/v1/dashboard?period={period}")
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "invalid_argument"


def test_accounts_filters_sort_and_paging(viewer: Browser) -> None:
    all_rows = viewer.client.get("/api/v1/accounts?page_size=100").get_json()
    assert all_rows["total_count"] == 6
    names = [a["name"] for a in all_rows["items"]]
    assert names == sorted(names, key=str.lower) or names == sorted(names)
    pro = viewer.client.get("/api/v1/accounts?plan=Pro").get_json()
    assert {a["account_id"] for a in pro["items"]} == {"t_alpha", "cus_b"}
    both = viewer.client.get("/api/v1/accounts?plan=Pro&plan=Business").get_json()
    assert {a["account_id"] for a in both["items"]} == {"t_alpha", "cus_b", "cus_c"}
    unsynced = viewer.client.get("/api/v1/accounts?never_synced=true").get_json()
    assert [a["account_id"] for a in unsynced["items"]] == ["t_free"]
    by_mrr = viewer.client.get("/api/v1/accounts?sort=mrr&desc=1&page_size=2").get_json()
    assert len(by_mrr["items"]) == 2 and by_mrr["next_page_token"]
    assert all(a["committed_mrr_platform"] is not None for a in by_mrr["items"]), (
        "accounts without MRR are last, also when sorting by MRR descending")
    second = viewer.client.get(
        f"/api/v1/accounts?sort=mrr&desc=1&page_size=2&page_token={by_mrr['next_page_token']}"
    ).get_json()
    first_ids = {a["account_id"] for a in by_mrr["items"]}
    assert not first_ids & {a["account_id"] for a in second["items"]}


def test_forward_mrr_differs_flag(viewer: Browser) -> None:
    rows = viewer.client.get("/api/v1/accounts?q=alpha").get_json()["items"]
    alpha = next(a for a in rows if a["account_id"] == "t_alpha")
    assert alpha["committed_mrr"]["amount_minor"] == 1500
    assert alpha["forward_mrr"]["amount_minor"] == 0
    assert alpha["forward_differs"] is True


def test_account_detail_and_unknown_account(viewer: Browser) -> None:
    d = viewer.client.get("/api/v1/accounts/t_alpha").get_json()
    assert d["account"]["name"]
    assert d["plan"]["plan"] == "Pro"
    assert d["plan"]["cancel_at_period_end"] is True
    missing = viewer.client.get("/api/v1/accounts/nobody_here")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "not_found"


def test_events_lenses_and_account_scope(viewer: Browser) -> None:
    mrr = viewer.client.get("/api/v1/events?lens=mrr_impact&page_size=100").get_json()
    assert mrr["items"] and all("mrr_impact" in e["lenses"] for e in mrr["items"])
    scoped = viewer.client.get("/api/v1/accounts/cus_e/events").get_json()
    assert {e["account_id"] for e in scoped["items"]} == {"cus_e"}
    assert viewer.client.get("/api/v1/events?lens=bogus").status_code == 400


def test_invoices_dual_rows(viewer: Browser) -> None:
    rows = viewer.client.get("/api/v1/invoices?page_size=100").get_json()["items"]
    kinds = {r["kind"] for r in rows}
    assert {"invoice", "credit_note", "refund"} <= kinds
    reversals = viewer.client.get("/api/v1/invoices?lens=reversals").get_json()["items"]
    assert reversals and all(r["kind"] != "invoice" for r in reversals)
    assert all(r["amount"]["amount_minor"] <= 0 for r in reversals)


def test_csv_export_of_a_list(viewer: Browser) -> None:
    for path in ("/api/v1/accounts.csv", "/api/v1/accounts?format=csv"):
        answer = viewer.client.get(path)
        assert answer.status_code == 200
        assert answer.mimetype == "text/csv"
        rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
        assert len(rows) == 6
        assert {"account_id", "committed_mrr_minor", "committed_mrr_currency"} <= set(rows[0])


def test_csv_cells_cannot_be_formulas() -> None:
    from dataclasses import dataclass

    from services.backoffice_gateway.api.respond import flatten
    from services.backoffice_gateway.views.common import Money

    @dataclass
    class Row:
        name: str
        amount: Money | None
        delta: int

    flat = flatten(Row("=HYPERLINK(1)", Money(-5, "USD"), -3))
    assert flat["name"] == "'=HYPERLINK(1)"
    assert flat["amount_minor"] == "-5"
    assert flat["delta"] == "-3"


def test_users_and_webhooks_answer(viewer: Browser) -> None:
    assert viewer.client.get("/api/v1/users").status_code == 200
    assert viewer.client.get("/api/v1/webhooks").status_code == 200
    assert viewer.client.get("/api/v1/dead-letters").status_code == 200
    assert viewer.client.get("/api/v1/webhooks/evt_missing").status_code == 404
    assert viewer.client.get("/api/v1/users/u_missing").status_code == 404


def test_banners_fall_back_to_the_ledger_without_drift(viewer: Browser) -> None:
    b = viewer.client.get("/api/v1/banners").get_json()
    assert b["source"] == "ledger"
    kinds = {x["kind"] for x in b["banners"]}
    assert "never_synced" in kinds
    never = next(x for x in b["banners"] if x["kind"] == "never_synced")
    assert never["count"] == 1
    assert never["link"] == "/accounts?never_synced=1"


def test_drift_pages_say_unavailable_without_drift(viewer: Browser) -> None:
    answer = viewer.client.get("/api/v1/drift")
    assert answer.status_code == 503
    assert answer.get_json()["error"]["code"] == "unavailable"


def test_openapi_document(viewer: Browser) -> None:
    doc = viewer.client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert "/accounts/{account_id}" in doc["paths"]
    assert "post" in doc["paths"]["/accounts/{account_id}/refund"]


def test_dashboard_snapshot_and_prior_trend_are_reused(gw_database_url: str,
                                                       services: Services) -> None:
    app = create_app(replace(gateway_config(gw_database_url, services),
                             dashboard_cache_seconds=60.0))
    browser = signed_in(app, VIEWER)
    backends = app.extensions["gateway"].backends
    calls: list[str] = []
    inner_call, inner_start = backends.call, backends.start

    def call(service: str, method: Any, request: Any) -> Any:
        calls.append("call")
        return inner_call(service, method, request)

    def start(service: str, method: Any, request: Any) -> Any:
        calls.append("start")
        return inner_start(service, method, request)

    backends.call, backends.start = call, start
    first = browser.client.get("/api/v1/dashboard?period=7").get_json()
    assert calls == ["start", "call"]  # the period and, together, the prior period's trend
    assert browser.client.get("/api/v1/dashboard?period=7").get_json() == first
    assert calls == ["start", "call"]  # the same minute's snapshot
    app.extensions["gateway"].dashboards.clear()
    browser.client.get("/api/v1/dashboard?period=7")
    assert calls == ["start", "call", "call"]  # prior trend still cached: one query
    browser.client.get("/api/v1/dashboard?period=30")
    assert calls[-2:] == ["start", "call"]
    app.extensions["gateway"].store.dispose()


def test_plan_filter_offers_every_known_plan(viewer: Browser) -> None:
    plans = viewer.client.get("/api/v1/plans").get_json()["items"]
    by_name = {p["plan"]: p["accounts"] for p in plans}
    assert by_name["Pro"] == 2 and by_name["Business"] == 1
    assert "Starter" in by_name, "a plan whose only subscription ended is still a plan"
    dashboard = viewer.client.get("/api/v1/dashboard?period=7").get_json()
    assert set(by_name) >= {p["plan"] for p in dashboard["plan_distribution"] if p["plan"]}
    page = viewer.client.get("/accounts?plan=Gold").get_data(as_text=True)
    for name, count in by_name.items():
        assert f'name="plan" value="{name}"' in page
        assert f'data-plan-accounts="{count}"' in page
    assert 'name="plan" value="Gold" checked' in page, "a plan named by the URL stays offered"


def test_a_bounded_search_count_is_shown_as_a_lower_bound(
    viewer: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger counts a search's matches up to a cap (migration 0014); beyond it the API
    says the total is a lower bound and the page shows "N+", never a wrong exact total."""
    exact = viewer.client.get("/api/v1/accounts?q=example&page_size=100").get_json()
    assert exact["total_count"] == len(exact["items"]) > 2
    assert exact["total_count_is_lower_bound"] is False
    monkeypatch.setattr(ledger_accounts, "SEARCH_COUNT_CAP", 2)
    bounded = viewer.client.get("/api/v1/accounts?q=example&page_size=100").get_json()
    assert (bounded["total_count"], bounded["total_count_is_lower_bound"]) == (2, True)
    assert bounded["items"] == exact["items"]  # the rows themselves are not bounded
    page = viewer.client.get("/accounts?q=example").get_data(as_text=True)
    assert "2+ in all" in page
