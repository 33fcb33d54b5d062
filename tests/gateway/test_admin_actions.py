"""Admin actions on the ledger, its directory and ingest through the gateway (real services):
republish, dead letters, tenant suspension, user session revocation."""

from __future__ import annotations

import time
import urllib.request
from datetime import UTC, datetime

import pytest
from billing.ledger.v1 import directory_pb2 as d
from flask import Flask

from services.stripe_simulator.signing import sign
from tests.gateway.conftest import Browser
from tests.gateway.stack import Services
from tests.ingest.conftest import SECRET, event_body

pytestmark = pytest.mark.integration


def post_webhook(services: Services, event_id: str) -> None:
    body = event_body(event_id, "customer.created")
    request = urllib.request.Request(
        f"http://127.0.0.1:{services.ingest.http_port}/webhooks/stripe", data=body,
        method="POST", headers={"Content-Type": "application/json",
                                "Stripe-Signature": sign(body, SECRET, int(time.time()))},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        assert answer.status == 200


def test_webhook_log_payload_and_republish(services: Services, admin: Browser,
                                           viewer: Browser) -> None:
    post_webhook(services, "evt_gw_log_1")
    rows = admin.client.get("/api/v1/webhooks?type=customer.created").get_json()["items"]
    assert "evt_gw_log_1" in {r["event_id"] for r in rows}
    detail = admin.client.get("/api/v1/webhooks/evt_gw_log_1").get_json()
    assert detail["payload"]["id"] == "evt_gw_log_1"
    assert detail["event"]["source"] == "webhook"
    assert viewer.post_json("/api/v1/webhooks/evt_gw_log_1/republish").status_code == 403
    answer = admin.post_json("/api/v1/webhooks/evt_gw_log_1/republish")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["data"]["published_at"]
    none = admin.client.get("/api/v1/webhooks?type=no.such.type").get_json()
    assert none["items"] == []


def test_dead_letters_retry_and_purge(admin: Browser) -> None:
    assert admin.client.get("/api/v1/dead-letters?status=dead").get_json()["items"] == []
    missing = admin.post_json("/api/v1/dead-letters/424242/retry")
    assert missing.status_code == 404
    purged = admin.post_json("/api/v1/dead-letters/purge", {"all_resolved": True})
    assert purged.status_code == 200 and purged.get_json()["data"]["purged"] == 0
    assert admin.post_json("/api/v1/dead-letters/purge", {}).status_code == 400
    assert admin.post_json("/api/v1/dead-letters/0/retry").status_code == 400


def test_suspend_and_reactivate_a_tenant(admin: Browser) -> None:
    before = admin.client.get("/api/v1/accounts?never_synced=true").get_json()["items"]
    assert "t_free" in {a["account_id"] for a in before}
    assert admin.post_json("/api/v1/accounts/t_free/suspend").status_code == 200
    during = admin.client.get("/api/v1/accounts?never_synced=true").get_json()["items"]
    assert "t_free" not in {a["account_id"] for a in during}
    answer = admin.post_json("/api/v1/accounts/t_free/reactivate")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["data"]["deleted_at"] is None
    after = admin.client.get("/api/v1/accounts?never_synced=true").get_json()["items"]
    assert "t_free" in {a["account_id"] for a in after}
    assert admin.post_json("/api/v1/accounts/t_nobody/suspend").status_code == 404


def test_user_detail_and_session_revocation(app: Flask, admin: Browser) -> None:
    backends = app.extensions["gateway"].backends
    stamp = d.RecordSessionRequest().started_at
    stamp.FromDatetime(datetime.now(UTC).replace(tzinfo=None))
    backends.call("ledger", backends.directory.UpsertTenant,
                  d.UpsertTenantRequest(tenant_id="t_alpha", name="Alpha Corp"))
    backends.call("ledger", backends.directory.UpsertUser,
                  d.UpsertUserRequest(user_id="u_gw", email="gw@example.com",
                                      first_name="Gia", last_name="Way"))
    backends.call("ledger", backends.directory.UpsertMembership, d.UpsertMembershipRequest(
        user_id="u_gw", tenant_id="t_alpha", role=d.MEMBERSHIP_ROLE_ADMIN,
        status=d.MEMBERSHIP_STATUS_ACTIVE))
    backends.call("ledger", backends.directory.RecordLogin, d.RecordLoginRequest(
        user_id="u_gw", tenant_id="t_alpha", at=stamp, method=d.LOGIN_METHOD_PASSWORD,
        outcome=d.LOGIN_OUTCOME_SUCCESS, ip="198.51.100.4", user_agent="Firefox"))
    backends.call("ledger", backends.directory.RecordSession, d.RecordSessionRequest(
        session_id="s_gw", user_id="u_gw", started_at=stamp, ip="198.51.100.4"))
    users = admin.client.get("/api/v1/accounts/t_alpha/users").get_json()["items"]
    assert "u_gw" in {u["user_id"] for u in users}
    user = admin.client.get("/api/v1/users/u_gw").get_json()
    assert [(m["tenant_id"], m["role"], m["status"]) for m in user["memberships"]] == [
        ("t_alpha", "admin", "active")
    ]
    assert [(x["method"], x["outcome"], x["ip"]) for x in user["recent_logins"]] == [
        ("password", "success", "198.51.100.4")
    ]
    assert [s["active"] for s in user["sessions"]] == [True]
    answer = admin.post_json("/api/v1/users/u_gw/sessions/s_gw/revoke")
    assert answer.status_code == 200, answer.get_json()
    user = admin.client.get("/api/v1/users/u_gw").get_json()
    assert [s["active"] for s in user["sessions"]] == [False]
    assert "admin-op" in user["sessions"][0]["revocation_reason"]
