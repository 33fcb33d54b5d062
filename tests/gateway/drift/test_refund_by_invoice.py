"""Refund by invoice, end to end: the simulator's world (every API family) delivered through
ingest into the ledger; each paid invoice names its charge and refundable amount; the account's
Invoices tab offers "Refund" on it, the form comes prefilled, the refund goes to Stripe through
drift's StripeOperations, and Stripe's webhooks bring it back into the ledger's invoice list."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.drift.conftest import DriftStack
from tests.gateway.conftest import form_csrf
from tests.gateway.drift.conftest import Gw

pytestmark = pytest.mark.integration


async def _invoices(gw: Gw, account: str) -> list[dict[str, Any]]:
    answer = await gw.get(f"/api/v1/accounts/{account}/invoices?page_size=500")
    assert answer.status_code == 200, answer.get_json()
    items: list[dict[str, Any]] = answer.get_json()["items"]
    return items


async def _paid_invoices(gw: Gw) -> list[tuple[str, dict[str, Any]]]:
    accounts = (await gw.get("/api/v1/accounts?page_size=500")).get_json()["items"]
    found = []
    for account in accounts:
        for row in await _invoices(gw, account["account_id"]):
            if row["kind"] == "invoice" and row["paid_at"] and (row["amount_paid"] or {}).get(
                "amount_minor", 0
            ) > 0:
                found.append((account["account_id"], row))
    return found


async def test_every_paid_invoice_names_its_payment(stack: DriftStack, admin_gw: Gw) -> None:
    paid = await _paid_invoices(admin_gw)
    assert len(paid) > 10, "the world has paid invoices"
    charges = stack.sim.world.objects["charge"]
    for _account, row in paid:
        assert row["charge_id"].startswith("ch_"), row
        charge = charges[row["charge_id"]]
        assert charge["status"] == "succeeded"
        assert row["payment_intent_id"] in ("", charge.get("payment_intent")), row
        refundable = row["refundable"]
        assert refundable["currency"] == row["amount_paid"]["currency"]
        assert refundable["amount_minor"] == charge["amount"] - charge["amount_refunded"], row
    reversals = [
        r
        for account in {a for a, _ in paid}
        for r in await _invoices(admin_gw, account)
        if r["kind"] != "invoice"
    ]
    assert all(r["charge_id"] == "" and r["refundable"] is None for r in reversals)


async def test_refund_from_the_invoices_tab(stack: DriftStack, admin_gw: Gw,
                                            viewer_gw: Gw) -> None:
    account, invoice = next(
        (a, r) for a, r in await _paid_invoices(admin_gw)
        if r["refundable"]["amount_minor"] > 500
    )
    before = invoice["refundable"]["amount_minor"]
    tab = (await admin_gw.get(f"/accounts/{account}?tab=invoices")).get_data(as_text=True)
    link = f'href="/accounts/{account}/refund?invoice={invoice["invoice_id"]}"'
    assert link in tab and 'data-testid="refund-invoice"' in tab
    viewer_tab = (await viewer_gw.get(f"/accounts/{account}?tab=invoices")).get_data(as_text=True)
    assert 'data-testid="refund-invoice"' not in viewer_tab, "no refund action for viewers"

    answer = await admin_gw.get(f"/accounts/{account}/refund?invoice={invoice['invoice_id']}")
    form = answer.get_data(as_text=True)
    assert answer.status_code == 200, form[-1500:]
    assert 'data-testid="refund-selected"' in form
    assert 'name="payment_id" placeholder="ch_... or pi_..." required' in form
    assert f'value="{invoice["charge_id"]}"' in form, "the charge is prefilled"
    assert f'value="{before}"' in form, "the refundable amount is prefilled"
    key = re.findall(r'name="idempotency_key" value="([^"]+)"', form)[0]
    done = await asyncio.to_thread(
        admin_gw.browser.client.post,
        f"/accounts/{account}/refund",
        data={
            "csrf_token": form_csrf(form),
            "idempotency_key": key,
            "payment_id": invoice["charge_id"],
            "mode": "partial",
            "amount_minor": "300",
            "reason": "requested_by_customer",
        },
    )
    assert done.status_code == 200, done.get_data(as_text=True)[-1500:]
    assert 'data-testid="action-result"' in done.get_data(as_text=True)

    await stack.deliver()  # Stripe's charge.refunded and refund.created webhooks
    await stack.settled()
    rows = await _invoices(admin_gw, account)
    after = next(r for r in rows if r["row_id"] == invoice["invoice_id"])
    assert after["refundable"]["amount_minor"] == before - 300
    refunds = [
        r for r in rows if r["kind"] == "refund" and r["invoice_id"] == invoice["invoice_id"]
    ]
    assert [r["amount"]["amount_minor"] for r in refunds] == [-300]
    unknown = await admin_gw.get(f"/accounts/{account}/refund?invoice=in_not_theirs")
    assert unknown.status_code == 404
