"""The disaster-recovery cutoff dialog, end to end through the pages: a subscription whose
every event was lost and is now older than Stripe's 30-day events.list window; drift reports
MissingHistoricalEventUnrecoverable; the admin syncs the account (two steps), the sync result
shows the cutoff dialog for that subscription, the admin sets the cutoff with the dialog's
form, and the gap stops being reported, also by the next drift pass."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.drift.conftest import DriftStack
from tests.gateway.conftest import ADMIN, form_csrf, signed_in
from tests.gateway.drift.conftest import Gw, start_gateway, stop_gateway

pytestmark = pytest.mark.integration

DAY = 86_400
UNRECOVERABLE = "MissingHistoricalEventUnrecoverable"


async def _form_post(gw: Gw, path: str, data: dict[str, str]) -> tuple[int, str]:
    answer = await asyncio.to_thread(gw.browser.client.post, path, data=data)
    return answer.status_code, answer.get_data(as_text=True)


def _field(form: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', form)
    assert found, f"no {name} in the form"
    return found.group(1)


async def test_cutoff_dialog_end_to_end(make_stack: Any) -> None:
    stack: DriftStack = await make_stack()
    lost = next(s for s in stack.sim.world.objects["subscription"].values()
                if s["status"] == "active")
    await stack.post_sim("/_sim/suppress", {"object_id": lost["id"]})
    await stack.deliver()
    await stack.settled()
    stack.sim.advance(40 * DAY)  # every event of it is now older than events.list keeps
    app = await start_gateway(stack)
    try:
        admin = Gw(await asyncio.to_thread(signed_in, app, ADMIN))
        run = await admin.post("/api/v1/drift/run")
        assert run.status_code == 200, run.get_json()
        gaps = (await admin.get(
            f"/api/v1/drift/discrepancies?subscription_id={lost['id']}")).get_json()["items"]
        assert gaps and {g["kind"] for g in gaps} == {UNRECOVERABLE}
        # The operator reaches the account from the accounts list: drift names the account of
        # a customer the ledger knows no subscription of by its customer id, while the
        # ledger's account of that customer is its tenant.
        accounts = (await admin.get("/api/v1/accounts?page_size=500")).get_json()["items"]
        account = next(a["account_id"] for a in accounts
                       if lost["customer"] in a["stripe_customer_ids"])
        assert lost["id"] in (await admin.get("/drift")).get_data(as_text=True)

        step1 = (await admin.get(f"/accounts/{account}/sync")).get_data(as_text=True)
        assert "step 1 of 2" in step1
        status, step2 = await _form_post(
            admin, f"/accounts/{account}/sync", {"csrf_token": form_csrf(step1)})
        assert status == 200, step2[-1500:]
        assert "step 2 of 2" in step2 and UNRECOVERABLE in step2
        dialog = step2[step2.index('data-testid="cutoff-dialog"'):]
        form = dialog[:dialog.index("</form>")]
        assert _field(form, "subscription_id") == lost["id"]
        assert f'action="/accounts/{account}/cutoff"' in form

        refused = await _form_post(admin, f"/accounts/{account}/cutoff", {
            "csrf_token": _field(form, "csrf_token"), "subscription_id": lost["id"],
            "cutoff": _field(form, "cutoff"), "note": "lost in the outage"})
        assert refused[0] == 400, "the dialog's confirmation box is required"
        status, done = await _form_post(admin, f"/accounts/{account}/cutoff", {
            "csrf_token": _field(form, "csrf_token"),
            "subscription_id": _field(form, "subscription_id"),
            "cutoff": _field(form, "cutoff"),
            "note": "lost in the outage",
            "confirm": "yes",
        })
        assert status == 200, done[-1500:]
        assert 'data-testid="action-result"' in done and "snapshot cutoff:" in done

        open_now = (await admin.get(
            f"/api/v1/drift/discrepancies?account_id={account}")).get_json()["items"]
        assert [d for d in open_now if d["kind"] == UNRECOVERABLE] == []
        again = await admin.post("/api/v1/drift/run")
        assert again.get_json()["data"]["run"]["status"] == "finished"
        still = (await admin.get(
            f"/api/v1/drift/discrepancies?subscription_id={lost['id']}")).get_json()["items"]
        assert still == [], "the next pass does not report the gap again"
        assert lost["id"] not in (await admin.get("/drift")).get_data(as_text=True)
        audit = (await admin.get("/api/v1/audit?action=recovery_cutoff")).get_json()["items"]
        assert [(e["target"], e["result"]) for e in audit] == [(lost["id"], "succeeded")]
    finally:
        stop_gateway(app)
