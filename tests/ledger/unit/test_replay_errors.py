"""Issue 6.11: a replay tells the known bad-payload error apart from every other failure."""

from __future__ import annotations

import json

import pytest

from services.ledger import replay
from services.ledger.effects import Effects, project_event


def _event(event_id: str) -> bytes:
    customer = {"id": f"cus_{event_id}", "object": "customer", "metadata": {}}
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2020-08-27",
            "created": 1_700_000_000,
            "type": "customer.created",
            "data": {"object": customer},
        }
    ).encode()


def projecting_with_a_bug(payload: bytes) -> Effects:
    """The projection, failing on any payload naming ``evt_bug`` (a bug, not bad input)."""
    if b"evt_bug" in payload:
        raise KeyError("a bug in the projection")
    return project_event(payload)


def test_only_bad_payloads_are_unreadable_other_errors_are_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replay, "project_event", projecting_with_a_bug)
    batch = replay.project_merged(
        [("evt_ok", _event("evt_ok")), ("evt_bad", b"{not json"), ("evt_bug", _event("evt_bug"))]
    )
    assert batch.examined == 3
    assert [e for e, _ in batch.unreadable] == ["evt_bad"]
    assert [(e, p) for e, p, _ in batch.failed] == [("evt_bug", _event("evt_bug"))]
    assert "KeyError" in batch.failed[0][2]
    assert batch.staged.rows["billing_events"] == 1
    assert batch.staged.copies["billing_events"].startswith(b"evt_ok\t")


def test_each_unreadable_event_is_logged_with_its_id(caplog: pytest.LogCaptureFixture) -> None:
    report = replay.ReplayReport()
    with caplog.at_level("WARNING", logger="services.ledger.replay"):
        replay._unreadable(report, "evt_unreadable_1", "payload is not JSON")
    assert report.unreadable == 1
    assert any(getattr(r, "event_id", None) == "evt_unreadable_1" for r in caplog.records)
