"""Helpers for the ledger integration tests: snapshots of the derived tables, worlds."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import psycopg

from services.ledger.effects import project_event
from services.ledger.tables import REBUILT_TABLES, check_schema, q
from services.stripe_simulator import WorldConfig, generate_world

Snapshot = dict[str, list[tuple[Any, ...]]]


async def snapshot(conn: psycopg.AsyncConnection[Any], schema: str = "ledger") -> Snapshot:
    """Every rebuilt table, all compared columns, sorted by key: equal snapshots = same ledger."""
    check_schema(schema)
    result: Snapshot = {}
    for table, key, ignored in REBUILT_TABLES:
        cur = await conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'ledger' AND table_name = %s ORDER BY ordinal_position",
            (table,),
        )
        columns = [r[0] for r in await cur.fetchall() if r[0] not in ignored]
        cols = ", ".join(q(c) for c in columns)
        cur = await conn.execute(
            f"SELECT {cols} FROM {schema}.{table} ORDER BY {q(key)}"  # noqa: S608
        )
        result[table] = [tuple(r) for r in await cur.fetchall()]
    return result


@lru_cache(maxsize=32)
def world_bodies(seed: int, tenants: int, months: int) -> tuple[tuple[str, bytes], ...]:
    """A simulator world's (event id, body) pairs, in Stripe order (cached across examples)."""
    world = generate_world(WorldConfig(seed=seed, tenants=tenants, months=months))
    return tuple(world.event_bodies())


def renamed(
    bodies: tuple[tuple[str, bytes], ...], suffix: str
) -> tuple[tuple[str, bytes], ...]:
    """The same events under fresh ids (``evt_..._<suffix>``).

    JetStream drops a message whose Nats-Msg-Id (the event id) it saw in the last two
    minutes, so a test publishing a world that another test published just before would see
    none of it: every test that goes through NATS renames its events.
    """
    out = []
    for event_id, body in bodies:
        document = json.loads(body)
        document["id"] = f"{event_id}_{suffix}"
        out.append((document["id"], json.dumps(document, separators=(",", ":")).encode()))
    return tuple(out)


def billing_event_ids(bodies: tuple[tuple[str, bytes], ...]) -> set[str]:
    """Ids of the events that must produce a billing_events row."""
    return {event_id for event_id, body in bodies if project_event(body).billing is not None}
