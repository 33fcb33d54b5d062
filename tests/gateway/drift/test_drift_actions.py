"""Drift pages, banners and the admin actions through the gateway, against the real drift
service and the simulator playing Stripe."""

from __future__ import annotations

from typing import Any

import pytest

from tests.drift.conftest import DriftStack
from tests.gateway.drift.conftest import Gw

pytestmark = pytest.mark.integration


def active_subscription(stack: DriftStack) -> dict[str, Any]:
    subs = stack.sim.world.objects["subscription"].values()
    return next(s for s in subs if s["status"] == "active" and not s["cancel_at_period_end"])


async def test_drift_found_shown_and_synced(stack: DriftStack, admin_gw: Gw) -> None:
    clean = (await admin_gw.get("/api/v1/banners")).get_json()
    assert clean["source"] == "drift"
    assert "drift_detected" not in {b["kind"] for b in clean["banners"]}
    sub = active_subscription(stack)
    quantity = sub["items"]["data"][0]["quantity"] + 2
    await stack.post_sim(f"/_sim/subscriptions/{sub['id']}/change", {"quantity": quantity})
    run = await admin_gw.post("/api/v1/drift/run")
    assert run.status_code == 200, run.get_json()
    assert run.get_json()["data"]["run"]["status"] == "finished"
    overview = (await admin_gw.get("/api/v1/drift")).get_json()
    assert overview["open_by_kind"].get("SubscriptionStateMismatch") == 1
    mismatch = next(d for d in overview["open"] if d["kind"] == "SubscriptionStateMismatch")
    account = mismatch["account_id"]
    banners = (await admin_gw.get("/api/v1/banners")).get_json()
    drift_banner = next(b for b in banners["banners"] if b["kind"] == "drift_detected")
    assert drift_banner["count"] == 1 and drift_banner["link"] == "/accounts?drift=1"
    synced = await admin_gw.post(f"/api/v1/accounts/{account}/sync")
    assert synced.status_code == 200, synced.get_json()
    assert synced.get_json()["data"]["clean"] is True
    after = (await admin_gw.get("/api/v1/drift")).get_json()
    assert after["open"] == []
    audit = (await admin_gw.get(f"/api/v1/audit?target=account:{account}")).get_json()
    assert [(e["action"], e["result"]) for e in audit["items"]] == [("sync_account", "succeeded")]


async def test_acknowledge_drift(stack: DriftStack, admin_gw: Gw, viewer_gw: Gw) -> None:
    sub = active_subscription(stack)
    await stack.post_sim(
        f"/_sim/subscriptions/{sub['id']}/change", {"cancel_at_period_end": True, "event": False}
    )
    await admin_gw.post("/api/v1/drift/run")
    (found,) = (await admin_gw.get("/api/v1/drift/discrepancies")).get_json()["items"]
    account = found["account_id"]
    refused = await viewer_gw.post(f"/api/v1/accounts/{account}/acknowledge-drift",
                                   {"note": "viewer"})
    assert refused.status_code == 403
    ack = await admin_gw.post(f"/api/v1/accounts/{account}/acknowledge-drift", {"note": "known"})
    assert ack.status_code == 200 and ack.get_json()["data"]["acknowledged"] == 1
    assert (await admin_gw.get("/api/v1/drift/discrepancies")).get_json()["items"] == []
    kept = (await admin_gw.get("/api/v1/drift/discrepancies?state=acknowledged")).get_json()
    assert [(d["acknowledged_by"], d["acknowledgement_note"]) for d in kept["items"]] == [
        ("admin-op", "known")
    ]


async def test_subscription_operations(stack: DriftStack, admin_gw: Gw, viewer_gw: Gw) -> None:
    sub = active_subscription(stack)
    path = f"/api/v1/subscriptions/{sub['id']}"
    assert (await viewer_gw.post(f"{path}/cancel", {"at_period_end": True})).status_code == 403
    cancel = await admin_gw.post(f"{path}/cancel", {"at_period_end": True, "reason": "test"})
    assert cancel.status_code == 200, cancel.get_json()
    data = cancel.get_json()["data"]
    assert data["cancel_at_period_end"] is True and data["verified"] is True
    again = await admin_gw.post(f"{path}/reactivate")
    assert again.status_code == 200 and again.get_json()["data"]["cancel_at_period_end"] is False
    twice = await admin_gw.post(f"{path}/reactivate")
    assert twice.status_code == 409
    assert twice.get_json()["error"]["code"] == "failed_precondition"
    quantity = await admin_gw.post(f"{path}/quantity", {"quantity": 7})
    assert quantity.status_code == 200 and quantity.get_json()["data"]["quantity"] == 7
    bad = await admin_gw.post(f"{path}/quantity", {"quantity": 0})
    assert bad.status_code == 400
    audit = (await admin_gw.get(f"/api/v1/audit?target=subscription:{sub['id']}")).get_json()
    assert [(e["action"], e["result"]) for e in reversed(audit["items"])] == [
        ("cancel_subscription", "refused"),
        ("cancel_subscription", "succeeded"),
        ("reactivate_subscription", "succeeded"),
        ("reactivate_subscription", "failed"),
        ("change_quantity", "succeeded"),
        ("change_quantity", "failed"),
    ]


async def test_refund_partial_then_too_much(stack: DriftStack, admin_gw: Gw) -> None:
    charge = next(
        c for c in stack.sim.world.objects["charge"].values()
        if c.get("paid") and not c.get("refunded") and c["amount"] > 100
        and not c.get("amount_refunded")
    )
    account = "acct"
    partial = await admin_gw.post(f"/api/v1/accounts/{account}/refund",
                                  {"charge_id": charge["id"], "amount_minor": 100})
    assert partial.status_code == 200, partial.get_json()
    body = partial.get_json()["data"]
    assert body["amount"]["amount_minor"] == 100
    assert body["refundable_after"]["amount_minor"] == charge["amount"] - 100
    too_much = await admin_gw.post(f"/api/v1/accounts/{account}/refund",
                                   {"charge_id": charge["id"], "amount_minor": charge["amount"]})
    assert too_much.status_code == 409
    assert "refundable" in too_much.get_json()["error"]["message"]
    neither = await admin_gw.post(f"/api/v1/accounts/{account}/refund", {})
    assert neither.status_code == 400


async def test_diagnostic_and_operations(stack: DriftStack, admin_gw: Gw) -> None:
    sub = active_subscription(stack)
    await admin_gw.post(f"/api/v1/subscriptions/{sub['id']}/quantity", {"quantity": 5})
    ops = (await admin_gw.get(f"/api/v1/operations?target={sub['id']}")).get_json()["items"]
    assert [(o["operation"], o["operator"], o["outcome"]) for o in ops][:1] == [
        (ops[0]["operation"], "admin-op", "succeeded")
    ]
    account = (await admin_gw.get("/api/v1/accounts?page_size=500")).get_json()["items"]
    some = next(a["account_id"] for a in account if a["subscription_id"] == sub["id"])
    diag = await admin_gw.get(f"/api/v1/accounts/{some}/diagnostic")
    assert diag.status_code == 200, diag.get_json()
    assert diag.get_json()["fields"]
    missing = await admin_gw.get("/api/v1/accounts/nobody/diagnostic")
    assert missing.status_code == 404


async def test_recovery_cutoff_input_is_checked(stack: DriftStack, admin_gw: Gw) -> None:
    sub = active_subscription(stack)
    path = "/api/v1/accounts/any/recovery-cutoff"
    assert (await admin_gw.post(path, {"subscription_id": sub["id"]})).status_code == 400
    bad_date = await admin_gw.post(path, {"subscription_id": sub["id"], "cutoff": "soon"})
    assert bad_date.status_code == 400
    assert bad_date.get_json()["error"]["parameter"] == "cutoff"
    unknown = await admin_gw.post(path, {"subscription_id": "sub_nowhere",
                                         "cutoff": "2026-01-01T00:00:00Z"})
    assert unknown.status_code in (404, 409), unknown.get_json()
    audit = (await admin_gw.get("/api/v1/audit?action=recovery_cutoff")).get_json()["items"]
    assert [e["result"] for e in audit] == ["failed", "failed", "failed"]
