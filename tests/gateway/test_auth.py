"""Operator authentication: sessions, CSRF, roles, throttling, redirects, tokens, headers."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask

from services.backoffice_gateway.app import create_app
from services.backoffice_gateway.operators import create, disable, issue_token
from tests.gateway.conftest import (
    ADMIN,
    PASSWORD,
    VIEWER,
    Browser,
    form_csrf,
    gateway_config,
    login,
    signed_in,
)
from tests.gateway.stack import Services

pytestmark = pytest.mark.integration


def _store(app: Flask):  # type: ignore[no-untyped-def]
    return app.extensions["gateway"].store


def test_api_needs_a_login(app: Flask) -> None:
    answer = app.test_client().get("/api/v1/accounts")
    assert answer.status_code == 401
    assert answer.get_json() == {"error": {"status": 401, "code": "unauthenticated",
                                           "message": "authentication required"}}


def test_security_headers_on_every_answer(app: Flask, viewer: Browser) -> None:
    for answer in (app.test_client().get("/login"), app.test_client().get("/api/v1/x"),
                   viewer.client.get("/api/v1/accounts")):
        csp = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "same-origin"


def test_session_cookie_flags(app: Flask) -> None:
    client = app.test_client()
    answer = login(client, VIEWER)
    cookie = next(v for v in answer.headers.getlist("Set-Cookie") if v.startswith("gw_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    tls = app.test_client()
    page = tls.get("/login", base_url="https://backoffice.example")
    form_cookie = next(v for v in page.headers.getlist("Set-Cookie") if v.startswith("gw_pre="))
    assert "Secure" in form_cookie and "HttpOnly" in form_cookie
    answer = tls.post("/login", base_url="https://backoffice.example", data={
        "username": VIEWER, "password": PASSWORD,
        "csrf_token": form_csrf(page.get_data(as_text=True)),
    })
    cookie = next(v for v in answer.headers.getlist("Set-Cookie") if v.startswith("gw_session="))
    assert "Secure" in cookie


def test_wrong_password_and_unknown_user_look_the_same(app: Flask) -> None:
    a = login(app.test_client(), VIEWER, "wrong password!")
    b = login(app.test_client(), "nobody-at-all", "wrong password!")
    assert a.status_code == b.status_code == 401
    assert "Wrong username or password" in a.get_data(as_text=True)
    assert "gw_session=" not in " ".join(a.headers.getlist("Set-Cookie"))


def test_login_form_needs_its_csrf_token(app: Flask) -> None:
    client = app.test_client()
    client.get("/login")
    answer = client.post("/login", data={"username": VIEWER, "password": PASSWORD,
                                         "csrf_token": "forged"})
    assert answer.status_code == 403


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/accounts?plan=Pro&page_token=x", "/accounts?plan=Pro&page_token=x"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
    ],
)
def test_no_open_redirect_after_login(app: Flask, target: str, expected: str) -> None:
    answer = login(app.test_client(), VIEWER, next_url=target)
    assert answer.status_code == 302
    assert answer.headers["Location"] == expected


def test_throttling_per_account(app: Flask) -> None:
    create(_store(app), "throttled-op", "viewer", PASSWORD)
    for _ in range(5):
        assert login(app.test_client(), "throttled-op", "bad password!!").status_code == 401
    refused = login(app.test_client(), "throttled-op", PASSWORD)  # even the right one
    assert refused.status_code == 429
    # other accounts from the same address still get in
    assert login(app.test_client(), VIEWER).status_code == 302


def test_throttling_per_ip(gw_database_url: str, services: Services) -> None:
    app = create_app(replace(gateway_config(gw_database_url, services), throttle_ip_failures=3))
    env = {"REMOTE_ADDR": "203.0.113.7"}
    for i in range(3):
        client = app.test_client()
        client.environ_base.update(env)
        assert login(client, f"guess-{i}", "bad password!!").status_code == 401
    client = app.test_client()
    client.environ_base.update(env)
    assert login(client, VIEWER).status_code == 429
    other = app.test_client()
    other.environ_base.update({"REMOTE_ADDR": "203.0.113.8"})
    assert login(other, VIEWER).status_code == 302
    app.extensions["gateway"].store.dispose()


def test_csrf_required_for_state_changes_with_a_session(admin: Browser) -> None:
    refused = admin.client.post("/api/v1/webhooks/evt_none/republish", json={})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "csrf_failed"
    wrong = admin.client.post("/api/v1/webhooks/evt_none/republish", json={},
                              headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    # with the token the request reaches ingest, which does not know the event
    passed = admin.post_json("/api/v1/webhooks/evt_none/republish")
    assert passed.status_code == 404


def test_viewer_gets_403_on_admin_actions_and_it_is_audited(viewer: Browser,
                                                            admin: Browser) -> None:
    answer = viewer.post_json("/api/v1/webhooks/evt_viewer/republish")
    assert answer.status_code == 403
    assert answer.get_json()["error"]["code"] == "forbidden"
    assert viewer.client.get("/api/v1/audit").status_code == 403
    log = admin.client.get("/api/v1/audit?target=event:evt_viewer").get_json()["items"]
    assert [(e["operator"], e["action"], e["result"]) for e in log] == [
        (VIEWER, "republish", "refused")
    ]


def test_admin_actions_are_audited_with_their_outcome(admin: Browser) -> None:
    admin.post_json("/api/v1/webhooks/evt_audited/republish")
    entry = admin.client.get("/api/v1/audit?target=event:evt_audited").get_json()["items"][0]
    assert entry["operator"] == ADMIN
    assert entry["action"] == "republish"
    assert entry["result"] == "failed"
    assert entry["detail"].startswith("404 not_found")


def test_logout_ends_the_session(app: Flask) -> None:
    browser = signed_in(app, VIEWER)
    assert browser.client.post("/logout").status_code == 403  # no CSRF token
    assert browser.client.post("/logout", data={"csrf_token": browser.csrf}).status_code == 302
    assert browser.client.get("/api/v1/me").status_code == 401


def test_disabling_an_operator_ends_sessions_and_tokens(app: Flask) -> None:
    create(_store(app), "leaver-op", "admin", PASSWORD)
    browser = signed_in(app, "leaver-op")
    token = issue_token(_store(app), "leaver-op", "ci")
    bearer = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/api/v1/me", headers=bearer).status_code == 200
    disable(_store(app), "leaver-op")
    assert browser.client.get("/api/v1/me").status_code == 401
    assert app.test_client().get("/api/v1/me", headers=bearer).status_code == 401
    assert login(app.test_client(), "leaver-op").status_code == 401


def test_api_tokens(app: Flask) -> None:
    token = issue_token(_store(app), ADMIN, "script")
    client = app.test_client()
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert (me["username"], me["role"], me["via"]) == (ADMIN, "admin", "token")
    # bearer requests carry no ambient credential: no CSRF token needed
    answer = client.post("/api/v1/webhooks/evt_tok/republish", json={},
                         headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 404
    for header in (f"Bearer {token}x", "Bearer", "Basic abc", "Bearer  "):
        refused = client.get("/api/v1/me", headers={"Authorization": header})
        assert refused.status_code == 401, header
        assert refused.get_json()["error"]["code"] == "unauthenticated"


def test_billing_disabled_hides_every_billing_surface(
    gw_database_url: str, services: Services, app: Flask
) -> None:
    hidden = create_app(replace(gateway_config(gw_database_url, services),
                                public_subscription_enabled=False))
    browser = signed_in(hidden, VIEWER)
    for path in ("/api/v1/dashboard", "/api/v1/accounts", "/api/v1/invoices", "/api/v1/events",
                 "/api/v1/webhooks", "/api/v1/banners", "/api/v1/drift"):
        answer = browser.client.get(path)
        assert answer.status_code == 404, path
    assert browser.client.get("/api/v1/users").status_code == 200
    assert browser.client.get("/api/v1/me").get_json()["billing_enabled"] is False
    hidden.extensions["gateway"].store.dispose()


def test_errors_are_json_without_traces(viewer: Browser) -> None:
    for path, status in (("/api/v1/nowhere", 404), ("/api/v1/accounts?page_size=0", 400),
                         ("/api/v1/accounts?page_token=%00", 400),
                         ("/api/v1/accounts?page_token=garbage", 400)):
        answer = viewer.client.get(path)
        assert answer.status_code == status, path
        body = answer.get_json()
        assert body["error"]["status"] == status
        assert "Traceback" not in answer.get_data(as_text=True)
    assert viewer.client.delete("/api/v1/accounts").status_code in (403, 405)


def test_operator_sets_their_utc_offset(app: Flask) -> None:
    browser = signed_in(app, VIEWER)
    assert browser.client.post("/api/v1/me/preferences",
                               json={"utc_offset_minutes": 120}).status_code == 403  # CSRF
    answer = browser.post_json("/api/v1/me/preferences", {"utc_offset_minutes": 120})
    assert answer.status_code == 200
    assert browser.client.get("/api/v1/me").get_json()["utc_offset_minutes"] == 120
    assert browser.post_json("/api/v1/me/preferences",
                             {"utc_offset_minutes": 9999}).status_code == 400
    browser.post_json("/api/v1/me/preferences", {"utc_offset_minutes": None})
    assert browser.client.get("/api/v1/me").get_json()["utc_offset_minutes"] is None
