"""The back-office in a real headless Chromium (Debian's ``chromium`` driven by Playwright
for Python through ``executable_path``), over the whole suite (harness.py).

These tests never skip: without Chromium or Playwright they fail, naming what is missing
(``make browser`` installs both). Screenshots of each run are kept in ``.artifacts/browser``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.harness import ADMIN, VIEWER, Backoffice

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / ".artifacts" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

try:  # a missing package must fail the tests (below), not skip them
    from playwright.sync_api import Browser, Page, expect, sync_playwright

    PLAYWRIGHT_ERROR = ""
except ImportError as exc:  # pragma: no cover - exercised only on a machine without it
    PLAYWRIGHT_ERROR = f"playwright is not installed ({exc}); run `make browser`"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if PLAYWRIGHT_ERROR:
        pytest.fail(PLAYWRIGHT_ERROR)
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"no Chromium at {CHROMIUM}; run `make browser` (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def signed_in(browser: Browser, office: Backoffice, who: tuple[str, str]) -> Page:
    context = browser.new_context(
        base_url=office.url, viewport={"width": 1400, "height": 1000}, timezone_id="Europe/Paris"
    )
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=username]", who[0])
    page.fill("input[name=password]", who[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))
    return page


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def test_login_and_dashboard_with_charts(browser: Browser, office: Backoffice) -> None:
    page = signed_in(browser, office, ADMIN)
    expect(page.locator("h1")).to_have_text("Dashboard")
    charts = page.locator("figure.chart-card svg[role=img]")
    expect(charts).to_have_count(5)
    for chart_id in ("mrr-trend", "revenue", "movements", "plans", "growth"):
        title = page.locator(f"#{chart_id} svg title").first
        assert title.text_content()
    # the MRR chart draws this period and the prior one (dashed) as lines
    assert page.locator("#mrr-trend polyline").count() >= 1
    expect(page.locator(".kpi")).to_have_count(6)
    # dates carry the browser's offset (the page read it from the cookie app.js set)
    page.reload()
    assert "UTC+01:00" in page.content() or "UTC+02:00" in page.content()
    shot(page, "01-dashboard")
    page.context.close()


def test_change_the_period(browser: Browser, office: Backoffice) -> None:
    page = signed_in(browser, office, ADMIN)
    expect(page.locator('[data-testid=period] a[aria-current="true"]')).to_have_text("30 days")
    rows_30 = page.locator("#mrr-trend tbody tr").count()
    page.click("[data-testid=period] >> text=7 days")
    page.wait_for_url(re.compile(r"period=7"))
    expect(page.locator('[data-testid=period] a[aria-current="true"]')).to_have_text("7 days")
    assert page.locator("#mrr-trend tbody tr").count() == 7 < rows_30
    assert page.locator("#growth tbody tr").count() == 7
    shot(page, "02-dashboard-7-days")
    page.click("[data-testid=period] >> text=90 days")
    page.wait_for_url(re.compile(r"period=90"))
    assert page.locator("#mrr-trend tbody tr").count() == 90
    page.context.close()


def test_filter_accounts_state_survives_paging(browser: Browser, office: Backoffice) -> None:
    page = signed_in(browser, office, ADMIN)
    page.goto("/accounts?size=25")
    page.click("[data-testid=status-filter] summary")
    page.check("[data-testid=status-filter] input[value=active]")
    page.check("[data-testid=status-filter] input[value=trialing]")
    page.click("[data-testid=account-filters] button[type=submit]")
    page.wait_for_url(re.compile(r"status=active"))
    assert query(page)["status"] == ["active", "trialing"]
    # sort by MRR, descending: the filters stay
    page.click("th a.sort >> text=MRR")
    page.click("th a.sort >> text=MRR")
    page.wait_for_url(re.compile(r"desc=1"))
    first_page_rows = page.locator("[data-testid=accounts-table] tbody tr").all_text_contents()
    expect(page.locator("[data-testid=next-page]")).to_be_visible()
    page.click("[data-testid=next-page]")
    page.wait_for_url(re.compile(r"page="))
    state = query(page)
    assert state["status"] == ["active", "trialing"]
    assert state["sort"] == ["mrr"] and state["desc"] == ["1"] and state["size"] == ["25"]
    second_page_rows = page.locator("[data-testid=accounts-table] tbody tr").all_text_contents()
    assert second_page_rows and not set(second_page_rows) & set(first_page_rows)
    # the form still shows the filters, and every status shown is one asked for
    page.click("[data-testid=status-filter] summary")
    expect(page.locator("[data-testid=status-filter] input[value=active]")).to_be_checked()
    statuses = page.locator("[data-testid=accounts-table] tbody .badge").all_text_contents()
    assert {s for s in statuses if s in ("active", "trialing", "past due", "canceled")} <= {
        "active",
        "trialing",
    }
    shot(page, "03-accounts-page-2")
    page.click("a[rel=prev]")
    page.wait_for_load_state()
    assert query(page)["status"] == ["active", "trialing"] and "page" not in query(page)
    page.context.close()


def test_side_pane(browser: Browser, office: Backoffice) -> None:
    page = signed_in(browser, office, ADMIN)
    page.goto("/accounts?sort=mrr&desc=1")
    pane = page.locator("[data-testid=side-pane]")
    expect(pane).to_be_hidden()
    page.evaluate("window.__noReload = true")
    first = page.locator("a[data-pane]").first
    first.click()
    expect(pane).to_be_visible()
    expect(pane.locator("text=Open account")).to_be_visible()
    assert page.evaluate("window.__noReload") is True, "opened in place, no navigation"
    assert "preview" in query(page), "the preview is in the URL"
    shot(page, "04-side-pane")
    # the same URL renders the pane on the server (no script needed)
    page.reload()
    expect(page.locator("[data-testid=side-pane]")).to_be_visible()
    page.click("[data-pane-close]")
    expect(page.locator("[data-testid=side-pane]")).to_be_hidden()
    assert "preview" not in query(page)
    page.context.close()


def test_admin_action_with_its_csrf_token(browser: Browser, office: Backoffice) -> None:
    page = signed_in(browser, office, ADMIN)
    page.goto("/webhooks")
    page.locator("table tbody a[href^='/webhooks/evt_']").first.click()
    expect(page.locator("[data-testid=payload]")).to_contain_text('"object": "event"')
    event_id = page.url.rsplit("/", 1)[1]
    form = page.locator("form[action$='/republish']")
    token = form.locator("input[name=csrf_token]").get_attribute("value")
    assert token and len(token) >= 20
    form.locator("button").click()
    expect(page.locator("[data-testid=action-result]")).to_contain_text("Done")
    shot(page, "05-admin-action")
    page.goto(f"/audit?action=republish&target={event_id}")
    expect(page.locator("table tbody tr").first).to_contain_text("succeeded")
    page.context.close()


def test_refused_as_a_viewer(browser: Browser, office: Backoffice) -> None:
    page = signed_in(browser, office, VIEWER)
    page.goto("/accounts?sort=mrr&desc=1")
    account = page.locator("a[data-pane]").first.get_attribute("data-pane")
    assert account is not None
    account_url = account.removesuffix("/pane")
    page.goto(account_url)
    expect(page.locator("[data-testid=admin-menu]")).to_have_count(0)
    expect(page.locator("nav >> text=Audit log")).to_have_count(0)
    response = page.goto(account_url + "/sync")
    assert response is not None and response.status == 403
    expect(page.locator("[data-testid=error] h1")).to_contain_text("403")
    shot(page, "06-viewer-refused")
    page.context.close()


def test_banner_appears_when_drift_exists(browser: Browser, office: Backoffice) -> None:
    page = signed_in(browser, office, ADMIN)
    drift_banner = page.locator("#banners [data-kind=drift_detected]")
    expect(drift_banner).to_have_count(0)
    page.evaluate("window.__noReload = true")
    event = office.unclassified_event()
    assert office.post_webhook(event) == 200
    office.wait_for_billing_event(str(event["id"]), "Unclassified")
    # With the drift service in the stack the banner counts what its passes found: run one
    # from the drift page (another admin action); without it the ledger's flags are used.
    other = page.context.new_page()
    other.goto("/drift")
    if other.locator("[data-testid=drift-unavailable]").count() == 0:
        other.click("text=Run a drift pass now")
        expect(other.locator("[data-testid=action-result]")).to_be_visible(timeout=120_000)
    other.close()
    expect(drift_banner).to_have_count(1, timeout=60_000)
    assert page.evaluate("window.__noReload") is True, "the banner came without a reload"
    link = drift_banner.locator("a")
    assert "drift" in (link.get_attribute("href") or "")
    shot(page, "07-drift-banner")
    link.click()
    page.wait_for_load_state()
    expect(page.locator("[data-testid=accounts-table] .badge.drift").first).to_be_visible()
    shot(page, "11-accounts-with-drift")
    page.goto("/drift")
    expect(page.locator("h1")).to_have_text("Drift")
    shot(page, "12-drift")
    page.context.close()


def test_sync_with_stripe_from_the_account_menu(browser: Browser, office: Backoffice) -> None:
    page = signed_in(browser, office, ADMIN)
    page.goto("/accounts?status=active&sort=mrr&desc=1")
    page.locator("[data-testid=accounts-table] tbody td a").first.click()
    expect(page.locator("[data-testid=plan-card]").first).to_be_visible()
    shot(page, "08-account")
    page.click("[data-testid=admin-menu] summary")
    page.click("text=Sync with Stripe…")
    expect(page.locator("h1")).to_contain_text("step 1 of 2")
    expect(page.locator("[data-testid=diagnostic-summary]")).to_be_visible()
    shot(page, "09-sync-step-1")
    page.click("text=Sync now")
    expect(page.locator("h1")).to_contain_text("step 2 of 2")
    expect(page.locator("[data-testid=action-result]")).to_contain_text("Done")
    shot(page, "10-sync-step-2")
    page.context.close()


def test_preferences_set_the_offset_dates_follow(browser: Browser, office: Backoffice) -> None:
    page = signed_in(browser, office, VIEWER)
    page.click("[data-testid=preferences-link]")
    page.wait_for_url(re.compile(r".*/preferences$"))
    page.select_option("[data-testid=utc-offset]", "330")
    page.click("form[action='/preferences'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/preferences\?saved=1$"))
    expect(page.locator("[data-testid=action-result]")).to_contain_text("UTC+05:30")
    page.goto("/events")
    expect(page.locator("main table tbody").first).to_contain_text("UTC+05:30)")
    shot(page, "09-preferences-offset")
    page.goto("/preferences")
    page.select_option("[data-testid=utc-offset]", "")
    page.click("form[action='/preferences'] button[type=submit]")
    expect(page.locator("[data-testid=action-result]")).to_contain_text("browser")
    page.context.close()


def test_refund_from_the_invoices_tab(browser: Browser, office: Backoffice) -> None:
    page = signed_in(browser, office, ADMIN)
    page.goto("/invoices?lens=invoices")
    links = page.locator("main table tbody a[href^='/accounts/']").all()
    hrefs = list(dict.fromkeys(str(a.get_attribute("href")) for a in links))
    for href in hrefs:
        page.goto(href + "?tab=invoices")
        if page.locator("[data-testid=refund-invoice]").count():
            break
    refund = page.locator("[data-testid=refund-invoice]").first
    refund.click()
    page.wait_for_url(re.compile(r".*/refund\?invoice=in_"))
    expect(page.locator("[data-testid=refund-selected]")).to_contain_text("refundable")
    charge = page.locator("input[name=payment_id]").input_value()
    assert re.fullmatch(r"(ch|py|pi)_\w+", charge), charge
    shot(page, "10-refund-prefilled")
    page.context.close()
