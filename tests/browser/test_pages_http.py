"""The pages through Flask's test client against the real suite (no browser): every page
renders for an operator, state lives in the URL, admin forms carry the CSRF token and are
refused (403) to viewers, and bad input is a defined answer, never a 500."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from flask.testing import FlaskClient

from tests.browser.harness import ADMIN, VIEWER, Backoffice

pytestmark = pytest.mark.integration

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def login(client: FlaskClient, who: tuple[str, str]) -> None:
    form = client.get("/login")
    token = CSRF.search(form.get_data(as_text=True))
    assert token is not None, "the login form carries a CSRF token"
    answer = client.post(
        "/login",
        data={"username": who[0], "password": who[1], "csrf_token": token.group(1), "next": "/"},
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)[:500]


@pytest.fixture
def admin(office: Backoffice) -> FlaskClient:
    client = office.app.test_client()
    login(client, ADMIN)
    return client


@pytest.fixture
def viewer(office: Backoffice) -> FlaskClient:
    client = office.app.test_client()
    login(client, VIEWER)
    return client


def text(client: FlaskClient, url: str, status: int = 200) -> str:
    answer = client.get(url)
    body = answer.get_data(as_text=True)
    assert answer.status_code == status, f"{url}: {answer.status_code}\n{body[:1500]}"
    return body


PAGES = [
    "/",
    "/?period=7",
    "/?period=90",
    "/accounts",
    "/users",
    "/events",
    "/invoices",
    "/webhooks",
    "/dead-letters",
    "/drift",
    "/audit",
    "/events?lens=mrr_impact",
    "/invoices?lens=reversals",
]


@pytest.mark.parametrize("url", PAGES)
def test_every_page_renders_for_an_admin(admin: FlaskClient, url: str) -> None:
    body = text(admin, url)
    assert "<main" in body and "Traceback" not in body
    assert 'id="banners"' in body


def test_pages_need_a_login(office: Backoffice) -> None:
    answer = office.app.test_client().get("/accounts?q=x")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login?next=")


def test_security_headers_and_no_inline_script(admin: FlaskClient) -> None:
    answer = admin.get("/")
    csp = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    body = answer.get_data(as_text=True)
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body) is None, "no inline script"
    assert " style=" not in body, "no inline style"
    assert answer.headers["X-Frame-Options"] == "DENY"


def test_dashboard_has_charts_with_data_tables(admin: FlaskClient) -> None:
    body = text(admin, "/?period=30")
    for chart in ("mrr-trend", "revenue", "movements", "plans", "growth"):
        assert f'id="{chart}"' in body
    assert body.count("<svg") >= 5 and body.count("<title id=") >= 5
    assert body.count("Data table") >= 5
    assert 'aria-current="true">30 days' in body
    # each KPI tile links to its list
    assert re.search(r'class="kpi" href="/accounts[^"]*" data-kpi="total_accounts"', body)


def test_period_drives_the_dashboard(admin: FlaskClient) -> None:
    week = text(admin, "/?period=7")
    quarter = text(admin, "/?period=90")
    assert 'aria-current="true">7 days' in week
    assert 'aria-current="true">90 days' in quarter
    # the trend table has one row per day of the period
    rows = lambda body: len(re.findall(r'<th scope="row">\d{4}-\d{2}-\d{2}</th>', body))  # noqa: E731
    assert rows(quarter) > rows(week) >= 7


def test_accounts_state_survives_sorting_and_paging(admin: FlaskClient) -> None:
    url = "/accounts?status=active&status=trialing&sort=mrr&desc=1&size=25"
    body = text(admin, url)
    next_links = re.findall(r'href="([^"]+)" rel="next"', body)
    assert next_links, "more than one page of active accounts in the demo"
    following = next_links[0].replace("&amp;", "&")
    query = parse_qs(urlsplit(following).query)
    assert query["status"] == ["active", "trialing"]
    assert query["sort"] == ["mrr"] and query["desc"] == ["1"] and query["size"] == ["25"]
    assert query["page"][0]
    second = text(admin, following)
    assert 'rel="prev"' in second
    # sorting links keep the filters and restart paging
    sort_links = [
        h.replace("&amp;", "&") for h in re.findall(r'class="sort" href="([^"]+)"', second)
    ]
    assert sort_links and all("status=active" in h and "page=" not in h for h in sort_links)


def test_forward_mrr_struck_through_when_it_differs(admin: FlaskClient) -> None:
    """Cancelling at period end makes forward MRR 0 while committed MRR stays: the list
    shows the committed amount struck through beside the forward one."""
    import time

    account = _first_account(admin, "status=active&sort=name&desc=1&size=25")
    manage = text(admin, f"/accounts/{account}/manage")
    subscription = re.findall(r'name="subscription_id" value="([^"]+)"', manage)[0]
    cancel = admin.post(
        f"/accounts/{account}/cancel",
        data={"csrf_token": _csrf(manage), "subscription_id": subscription, "when": "period_end"},
    )
    assert cancel.status_code == 200, cancel.get_data(as_text=True)[-1500:]
    row = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # Stripe's webhook reaches the ledger
        body = text(admin, f"/accounts?q={account}")
        rows = re.findall(r'<td class="num" data-testid="mrr">(.*?)</td>', body, re.S)
        row = rows[0] if rows else ""
        if '<s class="forward"' in row:
            break
        time.sleep(1)
    assert '<s class="forward"' in row, row
    committed, struck_forward = re.findall(r">([^<>]+)</(?:s|span)>", row)[:2]
    assert committed != struck_forward and struck_forward.startswith("0")
    struck_markup = '<s class="forward" title="Forward MRR (after the scheduled change)">'
    assert f"{struck_markup}{struck_forward}</s>" in row
    again = admin.post(
        f"/accounts/{account}/reactivate",
        data={"csrf_token": _csrf(manage), "subscription_id": subscription},
    )
    assert again.status_code == 200


def test_side_pane_server_rendered_and_fragment(admin: FlaskClient) -> None:
    body = text(admin, "/accounts")
    ids = re.findall(r'data-pane="/accounts/([^"/]+)/pane"', body)
    assert ids
    with_pane = text(admin, f"/accounts?preview={ids[0]}")
    assert 'data-testid="side-pane"' in with_pane and "Open account" in with_pane
    fragment = text(admin, f"/accounts/{ids[0]}/pane")
    assert fragment.lstrip().startswith("<aside") and "Open account" in fragment


def test_account_tabs(admin: FlaskClient) -> None:
    body = text(admin, "/accounts?sort=mrr&desc=1")
    account = re.findall(r'data-pane="/accounts/([^"/]+)/pane"', body)[0]
    for tab in ("", "?tab=users", "?tab=invoices", "?tab=events", "?tab=events&lens=other"):
        page = text(admin, f"/accounts/{account}{tab}")
        assert 'data-testid="admin-menu"' in page
    text(admin, f"/accounts/{account}?tab=nope", 400)
    text(admin, "/accounts/acct_that_does_not_exist", 404)


def test_viewer_sees_no_admin_menu_and_is_refused(viewer: FlaskClient, admin: FlaskClient) -> None:
    body = text(viewer, "/accounts?sort=mrr&desc=1")
    account = re.findall(r'data-pane="/accounts/([^"/]+)/pane"', body)[0]
    page = text(viewer, f"/accounts/{account}")
    assert 'data-testid="admin-menu"' not in page and "Sync with Stripe" not in page
    assert "Audit log" not in text(viewer, "/")
    text(viewer, "/audit", 403)
    text(viewer, f"/accounts/{account}/sync", 403)
    token = CSRF.search(page)
    assert token is not None
    refused = viewer.post(
        f"/accounts/{account}/acknowledge", data={"csrf_token": token.group(1), "note": "x"}
    )
    assert refused.status_code == 403
    audit = text(admin, "/audit?action=acknowledge_drift")
    assert "refused" in audit


def test_admin_form_needs_its_csrf_token(admin: FlaskClient) -> None:
    refused = admin.post("/drift/run", data={})
    assert refused.status_code == 403
    assert "CSRF" in refused.get_data(as_text=True)


def test_bad_input_is_a_defined_answer(admin: FlaskClient) -> None:
    text(admin, "/?period=5", 400)
    text(admin, "/accounts?sort=nonsense", 400)
    text(admin, "/accounts?status=bogus", 400)
    text(admin, "/accounts?size=7", 400)
    text(admin, "/accounts?drift=maybe", 400)
    text(admin, "/events?since=2025-13-45", 400)
    text(admin, "/accounts?q=" + "x" * 300, 400)
    text(admin, "/accounts?page=not-a-token", 400)
    text(admin, "/webhooks/evt_nope", 404)


def test_csv_links_on_lists(admin: FlaskClient) -> None:
    for url in (
        "/accounts?status=active",
        "/users",
        "/events",
        "/invoices",
        "/webhooks",
        "/dead-letters",
        "/drift",
        "/audit",
    ):
        body = text(admin, url)
        if 'data-testid="drift-unavailable"' in body:
            continue  # no drift service in this stack: the page says so, with no list
        links = [
            h.replace("&amp;", "&") for h in re.findall(r'class="export" href="([^"]+)"', body)
        ]
        assert links, url
        answer = admin.get(links[0])
        assert answer.status_code == 200, (links[0], answer.get_data(as_text=True)[:300])
        assert answer.mimetype == "text/csv"


def test_banners_json(admin: FlaskClient) -> None:
    answer = admin.get("/banners.json")
    assert answer.status_code == 200
    data = answer.get_json()
    assert isinstance(data["banners"], list)
    for banner in data["banners"]:
        assert {"kind", "level", "title", "message", "href"} <= banner.keys()


def test_billing_disabled_hides_every_billing_surface(office: Backoffice) -> None:
    from dataclasses import replace

    from services.backoffice_gateway.app import create_app
    from tests.browser.harness import gateway_config

    app = create_app(replace(gateway_config(office.stack), public_subscription_enabled=False))
    client = app.test_client()
    login(client, ADMIN)
    home = client.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/users")
    users = text(client, "/users")
    for hidden in ("Dashboard", "Accounts", "Invoices", "Webhooks", "Drift", "Billing events"):
        assert f">{hidden}</a>" not in users
    assert 'class="banner' not in users
    for url in ("/accounts", "/events", "/invoices", "/webhooks", "/dead-letters", "/drift"):
        text(client, url, 404)
    assert client.get("/banners.json").get_json() == {
        "banners": [],
        "checked_at": client.get("/banners.json").get_json()["checked_at"],
    }


def _first_account(client: FlaskClient, query: str = "status=active&sort=mrr&desc=1") -> str:
    body = text(client, f"/accounts?{query}")
    found = re.findall(r'data-pane="/accounts/([^"/]+)/pane"', body)
    assert found, query
    return found[0]


def _csrf(body: str) -> str:
    token = CSRF.search(body)
    assert token is not None
    return token.group(1)


def test_admin_forms_render_with_their_tokens(admin: FlaskClient) -> None:
    account = _first_account(admin)
    sync = text(admin, f"/accounts/{account}/sync")
    assert "step 1 of 2" in sync and "Sync now" in sync and _csrf(sync)
    refund = text(admin, f"/accounts/{account}/refund")
    assert 'data-testid="refundable"' in refund, "paid invoices with what is refundable"
    assert 'name="idempotency_key"' in refund
    manage = text(admin, f"/accounts/{account}/manage")
    assert "Cancel subscription" in manage and "Change quantity" in manage


def test_sync_with_stripe_in_two_steps(admin: FlaskClient) -> None:
    account = _first_account(admin)
    step1 = text(admin, f"/accounts/{account}/sync")
    assert 'data-testid="diagnostic-summary"' in step1, "step 1 shows what Stripe holds"
    answer = admin.post(f"/accounts/{account}/sync", data={"csrf_token": _csrf(step1)})
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200, body[-1500:]
    assert 'data-testid="action-result"' in body and "Events recovered" in body
    assert "step 2 of 2" in body
    assert "succeeded" in text(admin, f"/audit?action=sync&target={account}")


def _charge_of(office: Backoffice, admin: FlaskClient) -> tuple[str, str, int, str]:
    """(account, charge id, amount, currency) of a paid charge of a live account."""
    body = text(admin, "/accounts?status=active&sort=mrr&desc=1&size=100")
    for account in re.findall(r'data-pane="/accounts/([^"/]+)/pane"', body):
        with psycopg.connect(office.database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT p ->> 'id', (p ->> 'amount')::bigint, p ->> 'currency' FROM ("
                " SELECT convert_from(payload, 'UTF8')::jsonb -> 'data' -> 'object' AS p"
                " FROM ingest.stripe_events WHERE event_type = 'charge.succeeded') c"
                " WHERE p ->> 'customer' IN (SELECT stripe_customer_id FROM"
                "   ledger.billing_events WHERE tenant_id = %s OR stripe_customer_id = %s)"
                " AND (p ->> 'amount_refunded')::bigint = 0 LIMIT 1",
                (account, account),
            ).fetchone()
        if row is not None:
            return account, str(row[0]), int(row[1]), str(row[2])
    raise AssertionError("no paid charge in the demo")


def test_partial_refund_then_too_much(office: Backoffice, admin: FlaskClient) -> None:
    account, charge, amount, _currency = _charge_of(office, admin)
    form = text(admin, f"/accounts/{account}/refund")
    assert 'data-testid="refundable"' in form
    token, key = _csrf(form), re.findall(r'name="idempotency_key" value="([^"]+)"', form)[0]
    done = admin.post(
        f"/accounts/{account}/refund",
        data={
            "csrf_token": token,
            "idempotency_key": key,
            "payment_id": charge,
            "mode": "partial",
            "amount_minor": "1",
            "reason": "requested_by_customer",
        },
    )
    body = done.get_data(as_text=True)
    assert done.status_code == 200, body[-1500:]
    assert 'data-testid="action-result"' in body and "refund" in body
    too_much = admin.post(
        f"/accounts/{account}/refund",
        data={
            "csrf_token": token,
            "idempotency_key": key + "-2",
            "payment_id": charge,
            "mode": "partial",
            "amount_minor": str(amount * 10),
        },
    )
    assert too_much.status_code == 409, too_much.get_data(as_text=True)[-1500:]
    assert 'data-testid="action-error"' in too_much.get_data(as_text=True)
    audit = text(admin, f"/audit?action=refund&target={charge}")
    assert "succeeded" in audit and "failed" in audit


def test_bad_admin_form_input_is_400(admin: FlaskClient) -> None:
    account = _first_account(admin)
    token = _csrf(text(admin, f"/accounts/{account}/refund"))
    bad = [
        (f"/accounts/{account}/refund", {"payment_id": "in_123", "mode": "full"}),
        (
            f"/accounts/{account}/refund",
            {"payment_id": "ch_1", "mode": "partial", "amount_minor": "-5"},
        ),
        (f"/accounts/{account}/refund", {"payment_id": "ch_1", "mode": "half"}),
        (f"/accounts/{account}/cancel", {"subscription_id": "sub_not_theirs"}),
        (f"/accounts/{account}/quantity", {"subscription_id": "x", "quantity": "2"}),
        (f"/accounts/{account}/cutoff", {"subscription_id": "sub_x", "cutoff": "2025-01-01"}),
        (f"/accounts/{account}/tenant", {"op": "explode"}),
        ("/dead-letters/purge", {"id": "abc"}),
    ]
    for url, form in bad:
        answer = admin.post(url, data={"csrf_token": token, **form})
        assert answer.status_code == 400, (url, form, answer.status_code)


def test_suspend_and_reactivate_a_tenant(office: Backoffice, admin: FlaskClient) -> None:
    account = "tenant-gwui-suspend"
    office.upsert_tenant(account, "Suspendable Co")
    page = text(admin, f"/accounts/{account}")
    assert "never synced" in page and "Suspend tenant" in page
    done = admin.post(
        f"/accounts/{account}/tenant", data={"csrf_token": _csrf(page), "op": "suspend"}
    )
    assert done.status_code == 200, done.get_data(as_text=True)[-1500:]
    assert 'data-testid="action-result"' in done.get_data(as_text=True)
    page = text(admin, f"/accounts/{account}")
    assert "tenant suspended" in page and "Reactivate tenant" in page
    again = admin.post(
        f"/accounts/{account}/tenant", data={"csrf_token": _csrf(page), "op": "reactivate"}
    )
    assert again.status_code == 200, again.get_data(as_text=True)[-1500:]
    assert "tenant suspended" not in text(admin, f"/accounts/{account}")
    audit = text(admin, f"/audit?target={account}")
    assert "suspend_tenant" in audit and "reactivate_tenant" in audit


def test_action_failing_upstream_is_shown_and_audited(admin: FlaskClient) -> None:
    """A customer's tenant id that the directory does not know: the ledger answers
    NOT_FOUND, the page shows it (404) and the audit log keeps the failure."""
    body = text(admin, "/accounts?q=tenant-0&size=25")
    accounts = re.findall(r'data-pane="/accounts/(tenant-0[^"/]+)/pane"', body)
    assert accounts
    page = text(admin, f"/accounts/{accounts[0]}")
    answer = admin.post(
        f"/accounts/{accounts[0]}/tenant", data={"csrf_token": _csrf(page), "op": "suspend"}
    )
    assert answer.status_code == 404
    assert 'data-testid="action-error"' in answer.get_data(as_text=True)
    assert "failed" in text(admin, f"/audit?target={accounts[0]}")


def test_quantity_cancel_and_reactivate(admin: FlaskClient) -> None:
    account = _first_account(admin, "status=active&sort=renewal&size=25")
    manage = text(admin, f"/accounts/{account}/manage")
    subscription = re.findall(r'name="subscription_id" value="([^"]+)"', manage)[0]
    token = _csrf(manage)
    keys = re.findall(r'name="idempotency_key" value="([^"]+)"', manage)
    quantity = admin.post(
        f"/accounts/{account}/quantity",
        data={
            "csrf_token": token,
            "idempotency_key": keys[1],
            "subscription_id": subscription,
            "quantity": "3",
        },
    )
    assert quantity.status_code == 200, quantity.get_data(as_text=True)[-1500:]
    assert "<dt>quantity</dt><dd>3</dd>" in quantity.get_data(as_text=True)
    cancel = admin.post(
        f"/accounts/{account}/cancel",
        data={
            "csrf_token": token,
            "idempotency_key": keys[0],
            "subscription_id": subscription,
            "when": "period_end",
            "reason": "gwui test",
        },
    )
    assert cancel.status_code == 200, cancel.get_data(as_text=True)[-1500:]
    assert "<dt>cancel at period end</dt><dd>True</dd>" in cancel.get_data(as_text=True)
    assert "<dt>verified</dt><dd>True</dd>" in cancel.get_data(as_text=True)
    again = admin.post(
        f"/accounts/{account}/reactivate",
        data={
            "csrf_token": token,
            "idempotency_key": keys[0] + "-r",
            "subscription_id": subscription,
        },
    )
    assert again.status_code == 200, again.get_data(as_text=True)[-1500:]
    assert "<dt>cancel at period end</dt><dd>False</dd>" in again.get_data(as_text=True)
    audit = text(admin, f"/audit?target={subscription}")
    for action in ("quantity", "cancel", "reactivate"):
        assert f"<td>{action}</td>" in audit


def test_make_run_gateway_serves_the_pages(office: Backoffice) -> None:
    """The gateway `make run` starts (gunicorn, its own process) serves these pages and our
    static files, under the same security headers."""
    import urllib.request

    base = f"http://127.0.0.1:{office.stack.port('GATEWAY_PORT')}"
    with urllib.request.urlopen(base + "/login", timeout=30) as answer:  # noqa: S310
        body = answer.read().decode()
        assert answer.status == 200 and "Back-office sign in" in body
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    for path, mimetype in (("/static/app.js", "javascript"), ("/static/app.css", "text/css")):
        with urllib.request.urlopen(base + path, timeout=30) as answer:  # noqa: S310
            assert answer.status == 200 and mimetype in answer.headers["Content-Type"]


def test_drift_found_then_acknowledged(office: Backoffice, admin: FlaskClient) -> None:
    event = office.unclassified_event()
    customer = str(event["data"]["object"]["customer"])  # type: ignore[index]
    assert office.post_webhook(event) == 200
    office.wait_for_billing_event(str(event["id"]), "Unclassified")
    drift_page = text(admin, "/drift")
    ran = admin.post("/drift/run", data={"csrf_token": _csrf(drift_page)})
    assert ran.status_code == 200, ran.get_data(as_text=True)[-1500:]
    flagged = text(admin, "/accounts?drift=1&size=100")
    accounts = re.findall(r'data-pane="/accounts/([^"/]+)/pane"', flagged)
    assert accounts, "the drift filter lists the account"
    account = next((a for a in accounts if customer in text(admin, f"/accounts/{a}")), accounts[0])
    page = text(admin, f"/accounts/{account}")
    assert 'id="acknowledge"' in page
    done = admin.post(
        f"/accounts/{account}/acknowledge",
        data={"csrf_token": _csrf(page), "note": "seen by gwui test"},
    )
    assert done.status_code == 200, done.get_data(as_text=True)[-1500:]
    assert 'data-testid="action-result"' in done.get_data(as_text=True)
    acknowledged = text(admin, f"/drift?state=acknowledged&account_id={account}")
    assert "seen by gwui test" in acknowledged
    assert "acknowledge_drift" in text(admin, f"/audit?target={account}")


def test_demo_directory_users_and_never_synced(admin: FlaskClient) -> None:
    """make run's demo directory (services/devstack/demo_directory.py): host tenants without
    a subscription yet, their users, logins and sessions."""
    users = text(admin, "/users?q=northwind")
    assert "nancy.davolio@northwind.example" in users
    user = text(admin, "/users/u-nw-1")
    assert "Northwind Traders" in user and "owner" in user
    assert "password" in user and "failure" in user and "success" in user
    assert "sessions/demo-session-u-nw-1/revoke" in user
    never = text(admin, "/accounts?never_synced=1&size=100")
    assert "host-northwind" in never and "host-fabrikam" in never
