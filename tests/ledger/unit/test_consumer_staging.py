"""The live consumer's projection step (issue 12, live7): what a batch of payloads becomes in
the worker process, and how the outcome maps back onto the fetched messages."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.config import ConfigError
from services.ledger import consumer
from services.ledger.consumer import ProjectedMessages, next_batch_size, stage_payloads
from services.ledger.jetstream_pull import Delivery
from services.ledger.settings import LedgerSettings
from services.ledger.worker_pool import projection_pool
from tests.ledger.unit.test_replay_errors import (  # one customer.created payload
    _event,
    projecting_with_a_bug,
)


def _msg(data: bytes) -> Delivery:
    return Delivery(b"stripe.events.x", b"", data)


def test_unreadable_and_failing_payloads_are_named_by_index_the_rest_is_staged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumer, "project_event", projecting_with_a_bug)
    payloads = [_event("evt_ok"), b"{not json", _event("evt_bug"), _event("evt_ok2")]
    staged, failed, stage_error = stage_payloads(payloads)
    assert stage_error is None
    assert [index for index, _ in failed] == [1, 2]
    assert "KeyError" in failed[1][1]
    assert staged is not None
    assert staged.rows["billing_events"] == 2

    msgs = [_msg(p) for p in payloads]
    projected = ProjectedMessages.of(msgs, (staged, failed, stage_error))
    assert projected.good == [msgs[0], msgs[3]]
    assert [m for m, _ in projected.failed] == [msgs[1], msgs[2]]


def test_nothing_readable_stages_nothing() -> None:
    staged, failed, stage_error = stage_payloads([b"{not json"])
    assert staged is None and stage_error is None
    assert [index for index, _ in failed] == [0]


def test_a_batch_that_cannot_be_staged_is_handed_over_for_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(merged: Any) -> Any:
        raise ValueError("cannot encode")

    monkeypatch.setattr(consumer, "stage_merged", refuse)
    msgs = [_msg(_event("evt_a")), _msg(_event("evt_b"))]
    projected = ProjectedMessages.of(msgs, stage_payloads([m.data for m in msgs]))
    assert projected.staged is None
    assert projected.good == msgs  # both go to the one-by-one fallback, neither failed yet
    assert projected.failed == []
    assert projected.stage_error == "ValueError: cannot encode"


def test_the_worker_process_stages_what_this_process_stages() -> None:
    payloads = [_event(f"evt_{n}") for n in range(50)] + [b"{not json"]
    pool = projection_pool(1)
    try:
        remote = pool.submit(stage_payloads, payloads).result()
    finally:
        pool.shutdown()
    local = stage_payloads(payloads)
    assert remote[0] is not None and local[0] is not None
    assert remote[0].copies == local[0].copies
    assert remote[0].keys == local[0].keys
    assert remote[1:] == local[1:]


def test_batches_double_while_fetches_come_back_full_and_start_over_after_a_short_one() -> None:
    sizes, size = [], 250
    for got in (250, 500, 1000, 2000, 2000, 1999, 250):
        size = next_batch_size(size, got, 250, 2000)
        sizes.append(size)
    assert sizes == [500, 1000, 2000, 2000, 2000, 250, 500]


def test_a_fetch_ended_by_its_byte_bound_keeps_the_batch_size() -> None:
    # short, but because max_bytes ended it: a backlog, so neither starting over nor doubling
    assert next_batch_size(4000, 2700, 250, 8000, cut=True) == 4000
    assert next_batch_size(4000, 2700, 250, 8000) == 250


def _settings(monkeypatch: pytest.MonkeyPatch, name: str, value: str | None) -> LedgerSettings:
    """The ledger's settings with ``name`` set to ``value`` (``None``: unset)."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://billing@db:5432/billing")
    monkeypatch.setenv("NATS_URL", "nats://nats:4222")
    if value is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, value)
    return LedgerSettings.from_env()


@pytest.mark.parametrize(("value", "expected"), [(None, 32 << 20), ("1048576", 1 << 20)])
def test_the_fetch_byte_bound_setting(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: int
) -> None:
    assert _settings(monkeypatch, "LEDGER_FETCH_MAX_BYTES", value).fetch_max_bytes == expected


@pytest.mark.parametrize(("value", "workers"), [(None, 0), ("0", 0), ("1", 1)])
def test_the_projection_worker_setting(
    monkeypatch: pytest.MonkeyPatch, value: str | None, workers: int
) -> None:
    assert _settings(monkeypatch, "LEDGER_CONSUMER_WORKERS", value).consumer_workers == workers


@pytest.mark.parametrize(
    ("name", "value"), [("LEDGER_FETCH_MAX_BYTES", "0"), ("LEDGER_CONSUMER_WORKERS", "2")]
)
def test_out_of_range_consumer_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        _settings(monkeypatch, name, value)
