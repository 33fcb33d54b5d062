"""``billing.drift.detected``: one NATS message per new discrepancy, for other subscribers.

The message is JSON (documented in the README)::

    {"kind": "SubscriptionStateMismatch", "severity": "Critical",
     "account_id": "tenant_1", "subscription_id": "sub_...", "stripe_event_id": null,
     "stripe_object_id": "sub_...", "field": "quantity", "ledger_value": "2",
     "stripe_value": "3", "detail": "...", "run_id": "…", "fingerprint": "…"}

Core NATS (no stream): a subscriber that is away misses notifications, but nothing is lost:
the discrepancies stay in ``ListDiscrepancies``. A broker outage never fails a pass.
"""

from __future__ import annotations

import json
import logging

from services.common.nats_link import BrokerUnavailable, NatsLink
from services.drift.detector import Publish
from services.drift.findings import Finding

log = logging.getLogger(__name__)

SUBJECT = "billing.drift.detected"


def message(finding: Finding, run_id: str) -> bytes:
    return json.dumps(
        {
            "kind": finding.kind,
            "severity": finding.level,
            "account_id": finding.account_id,
            "subscription_id": finding.subscription_id,
            "stripe_event_id": finding.stripe_event_id,
            "stripe_object_id": finding.stripe_object_id,
            "field": finding.field,
            "ledger_value": finding.ledger_value,
            "stripe_value": finding.stripe_value,
            "detail": finding.detail,
            "run_id": run_id,
            "fingerprint": finding.fingerprint,
        },
        separators=(",", ":"),
    ).encode()


def nats_publisher(link: NatsLink) -> Publish:
    """The detector's ``publish`` callback over ``link``."""

    async def publish(findings: list[Finding], run_id: str) -> None:
        sent = 0
        for finding in findings:
            try:
                await link.publish_plain(SUBJECT, message(finding, run_id))
                sent += 1
            except BrokerUnavailable as exc:
                log.warning("drift notification not sent", extra={"error": str(exc)[:200]})
                return
        log.info("drift notifications sent", extra={"count": sent, "run_id": run_id})

    return publish
