"""The webhook log filtered by account and outcome: the gateway maps the account to its
Stripe customers through the ledger, ingest filters its archive on the derived customer
column and on the publish outcome. Checked against the payloads themselves."""

from __future__ import annotations

from typing import Any

import pytest

from tests.drift.conftest import DriftStack
from tests.gateway.drift.conftest import Gw
from tests.helpers import query

pytestmark = pytest.mark.integration

ABOUT_CUSTOMERS = """
SELECT event_id FROM (
    SELECT event_id, convert_from(payload, 'UTF8')::jsonb -> 'data' -> 'object' AS o
    FROM ingest.stripe_events) e
WHERE (o ->> 'object' = 'customer' AND o ->> 'id' = ANY(%s))
   OR (o ->> 'object' <> 'customer' AND o ->> 'customer' = ANY(%s))
"""


async def _all(gw: Gw, url: str) -> list[dict[str, Any]]:
    answer = await gw.get(url)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["next_page_token"] == "", "one page holds them all"
    items: list[dict[str, Any]] = body["items"]
    return items


async def test_webhook_log_by_account_and_outcome(stack: DriftStack, viewer_gw: Gw) -> None:
    accounts = await _all(viewer_gw, "/api/v1/accounts?page_size=500")
    account = next(a for a in accounts if a["stripe_customer_ids"])
    customers = account["stripe_customer_ids"]
    expected = {r[0] for r in query(stack.database_url, ABOUT_CUSTOMERS, (customers, customers))}
    assert len(expected) > 5
    url = f"/api/v1/webhooks?account_id={account['account_id']}&page_size=500"
    rows = await _all(viewer_gw, url)
    assert {r["event_id"] for r in rows} == expected
    assert {r["stripe_customer_id"] for r in rows} <= set(customers)
    published = await _all(viewer_gw, url + "&outcome=published")
    assert {r["event_id"] for r in published} == expected, "the settled stack published all"
    assert await _all(viewer_gw, url + "&outcome=pending") == []
    paid = await _all(viewer_gw, url + "&type=invoice.paid")
    assert paid and {r["type"] for r in paid} == {"invoice.paid"}
    assert {r["event_id"] for r in paid} < expected
    assert await _all(viewer_gw, "/api/v1/webhooks?account_id=acct_nobody") == []

    page = await viewer_gw.get(
        f"/webhooks?account_id={account['account_id']}&outcome=published&size=100"
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html[-1500:]
    shown = [e for e in expected if f'href="/webhooks/{e}"' in html]
    assert len(shown) == min(len(expected), 100)
    other = next(a for a in accounts if a["stripe_customer_ids"] and a is not account)
    foreign = {r[0] for r in query(stack.database_url, ABOUT_CUSTOMERS,
                                   (other["stripe_customer_ids"], other["stripe_customer_ids"]))}
    assert not any(f'href="/webhooks/{e}"' in html for e in foreign)
    detail = (await viewer_gw.get(f"/accounts/{account['account_id']}")).get_data(as_text=True)
    assert f'href="/webhooks?account_id={account["account_id"]}"' in detail
