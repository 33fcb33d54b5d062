"""Migration 0028: a batch's MRR steps are recomputed from its earliest new event.

``ledger.query_refresh_mrr(subs, since)`` starts from the state of the last stored step
before ``since`` and recomputes only the steps from there; the billing_events trigger passes
the earliest occurred_at of a statement's new MRR events, and ``query_flush`` the earliest of
a batch's. The steps must be exactly those a recomputation from the first event gives
(``query_support_rebuild``), whatever the batches: after the stored steps, straddling them,
before all of them, in the same second as a stored event, with MRR or currency left out
(carried forward), with MRR going to zero and back (``had_mrr_before``).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from services.common.config import libpq_url
from tests.ledger.queries.conftest import NOW

pytestmark = pytest.mark.integration

MRR_TABLES = ("query_mrr_steps", "query_mrr_daily", "query_mrr_moves_daily")
START = NOW - timedelta(days=300)


def _rows(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    return {
        table: [
            str(r[0])
            for r in conn.execute(
                f"SELECT t::text FROM ledger.{table} t ORDER BY 1"  # noqa: S608 - constants
            ).fetchall()
        ]
        for table in MRR_TABLES
    }


def _insert_batch(
    conn: psycopg.Connection[Any], events: list[tuple[str, str, datetime, Any, Any, Any]]
) -> None:
    """One deferring transaction, one INSERT statement, one flush: a projection batch."""
    ids, subs, times, kinds, mrrs, currencies = (list(c) for c in zip(*events, strict=True))
    with conn.transaction():
        conn.execute("SELECT set_config('ledger.query_defer', 'on', true)")
        conn.execute(
            "INSERT INTO ledger.billing_events (stripe_event_id, stripe_event_type,"
            " event_type, subscription_id, stripe_customer_id, committed_mrr, forward_mrr,"
            " currency, occurred_at)"
            " SELECT e, 'customer.subscription.updated', k, s, 'cus_since', m, m, c, t"
            " FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[],"
            " %s::timestamptz[]) AS x(e, k, s, m, c, t)",
            (ids, kinds, subs, mrrs, currencies, times),
        )
        conn.execute("SELECT ledger.query_flush()")


def _random_events(rng: random.Random, n: int, first: int) -> list[Any]:
    kinds = ("SubscriptionRenewed", "SubscriptionUpgraded", "SubscriptionCancelled",
             "SubscriptionReactivated", "SubscriptionDowngraded")
    out = []
    for i in range(n):
        at = START + timedelta(days=rng.randrange(0, 200), seconds=rng.choice((0, 0, 1, 7)))
        mrr = rng.choice((None, 0, 0, 1000, 1500, 2500, 4000))
        currency = rng.choice((None, "USD", "USD", "USD", "EUR"))
        if mrr is None and currency is None:
            currency = "USD"
        out.append((f"evt_since_{first + i:05d}", f"sub_s{rng.randrange(4)}", at,
                    rng.choice(kinds), mrr, currency))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_steps_equal_a_recomputation_from_the_first_event(database_url: str, seed: int) -> None:
    rng = random.Random(seed)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        counter = 0
        for _ in range(8):
            batch = _random_events(rng, rng.randrange(1, 12), counter)
            counter += len(batch)
            _insert_batch(conn, batch)
            live = _rows(conn)
            assert live["query_mrr_steps"]
            with conn.transaction(force_rollback=True):  # from the first event, undone
                conn.execute("SELECT ledger.query_support_rebuild_part('mrr')")
                rebuilt = _rows(conn)
            assert live == rebuilt


def test_the_touch_carries_the_earliest_new_mrr_event(database_url: str) -> None:
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("SELECT set_config('ledger.query_defer', 'on', true)")
        conn.execute(
            "INSERT INTO ledger.billing_events (stripe_event_id, stripe_event_type, event_type,"
            " subscription_id, committed_mrr, forward_mrr, currency, occurred_at) VALUES"
            " ('evt_t1', 'x', 'SubscriptionRenewed', 'sub_t', 100, 100, 'USD', %s),"
            " ('evt_t2', 'x', 'SubscriptionRenewed', 'sub_t', 200, 200, 'USD', %s),"
            " ('evt_t3', 'x', 'PaymentFailed', NULL, NULL, NULL, 'USD', %s)",
            (START + timedelta(days=5), START + timedelta(days=2), START),
        )
        queued = conn.execute(
            "SELECT ids, since FROM pg_temp.query_touches WHERE kind = 'mrr'"
        ).fetchall()
        conn.rollback()
    # the event without a subscription (and MRR) is no bound: the earliest MRR event is
    assert queued == [(["sub_t"], START + timedelta(days=2))]


def test_steps_before_the_bound_are_not_recomputed(database_url: str) -> None:
    """The bound is honoured: a step before it is neither read nor rewritten (a tampered one
    stays as it is), while a refresh without a bound puts it right."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        events = [
            (f"evt_b{i}", "sub_b", START + timedelta(days=10 * i), "SubscriptionUpgraded",
             1000 * (i + 1), "USD")
            for i in range(4)
        ]
        _insert_batch(conn, events)
        right = _rows(conn)["query_mrr_steps"]
        assert len(right) == 4
        conn.execute(
            "UPDATE ledger.query_mrr_steps SET committed = 999 WHERE stripe_event_id = 'evt_b0'"
        )
        tampered = _rows(conn)["query_mrr_steps"]
        conn.execute(
            "SELECT ledger.query_refresh_mrr(ARRAY['sub_b'], %s)", (START + timedelta(days=15),)
        )
        assert _rows(conn)["query_mrr_steps"] == tampered
        conn.execute("SELECT ledger.query_refresh_mrr(ARRAY['sub_b'])")
        assert _rows(conn)["query_mrr_steps"] == right
