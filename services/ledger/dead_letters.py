"""``ledger.dead_letters``: messages that kept failing, set aside for an operator.

A dead letter keeps the exact message (subject, bytes, stream sequence) and the last error.
The stream sequence is unique, so two ledger processes dead-lettering the same message (a
redelivery racing an ack) produce one row. Dead letters are operator data, not history:
they may be purged, and VerifyLedger does not rebuild them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

STATUSES = ("dead", "resolved")


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    id: int
    stream_seq: int | None
    subject: str
    stripe_event_id: str | None
    payload: bytes
    error: str
    deliveries: int
    first_failed_at: datetime
    last_failed_at: datetime
    retries: int
    status: str
    resolved_at: datetime | None


def _row(record: dict[str, Any]) -> DeadLetterRow:
    return DeadLetterRow(**{**record, "payload": bytes(record["payload"])})


async def record_dead_letter(
    conn: psycopg.AsyncConnection[Any],
    *,
    stream_seq: int | None,
    subject: str,
    stripe_event_id: str | None,
    payload: bytes,
    error: str,
    deliveries: int,
) -> int:
    """Insert (or refresh, for the same stream sequence) a dead letter; returns its id."""
    cur = await conn.execute(
        "INSERT INTO ledger.dead_letters (stream_seq, subject, stripe_event_id, payload, error,"
        " deliveries) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (stream_seq) DO UPDATE SET error = EXCLUDED.error,"
        " deliveries = GREATEST(dead_letters.deliveries, EXCLUDED.deliveries),"
        " last_failed_at = now(), status = 'dead', resolved_at = NULL"
        " RETURNING id",
        (stream_seq, subject, stripe_event_id, payload, error[:4000], deliveries),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


#: Subject recorded for dead letters set aside by a replay (they did not come through NATS).
REPLAY_SUBJECT = "ledger.replay"


async def record_replay_dead_letter(
    conn: psycopg.AsyncConnection[Any], *, stripe_event_id: str, payload: bytes, error: str
) -> int:
    """A dead letter for an archived event a replay could not apply (no stream sequence).

    One row per event: a later replay that fails on it again refreshes that row."""
    cur = await conn.execute(
        "UPDATE ledger.dead_letters SET error = %s, last_failed_at = now(),"
        " deliveries = deliveries + 1, status = 'dead', resolved_at = NULL"
        " WHERE stream_seq IS NULL AND subject = %s AND stripe_event_id = %s RETURNING id",
        (error[:4000], REPLAY_SUBJECT, stripe_event_id),
    )
    row = await cur.fetchone()
    if row is not None:
        return int(row[0])
    return await record_dead_letter(
        conn,
        stream_seq=None,
        subject=REPLAY_SUBJECT,
        stripe_event_id=stripe_event_id,
        payload=payload,
        error=error,
        deliveries=1,
    )


async def list_dead_letters(
    conn: psycopg.AsyncConnection[Any],
    *,
    status: str | None,
    after_id: int | None,
    limit: int,
) -> tuple[list[DeadLetterRow], int]:
    """A page in id order (keyset on id) and the total count for the filter."""
    where = "WHERE (%(status)s::text IS NULL OR status = %(status)s)"
    params: dict[str, Any] = {"status": status, "after": after_id, "limit": limit}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT * FROM ledger.dead_letters {where}"  # noqa: S608 - constant fragment
            " AND (%(after)s::bigint IS NULL OR id > %(after)s) ORDER BY id LIMIT %(limit)s",
            params,
        )
        rows = [_row(r) for r in await cur.fetchall()]
        await cur.execute(f"SELECT count(*) AS n FROM ledger.dead_letters {where}", params)  # noqa: S608
        total = await cur.fetchone()
    return rows, int(total["n"]) if total else 0


async def get_dead_letter(
    conn: psycopg.AsyncConnection[Any], dead_letter_id: int, *, lock: bool = False
) -> DeadLetterRow | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        query = "SELECT * FROM ledger.dead_letters WHERE id = %s"
        await cur.execute(query + " FOR UPDATE" if lock else query, (dead_letter_id,))
        record = await cur.fetchone()
    return _row(record) if record else None


async def mark_resolved(conn: psycopg.AsyncConnection[Any], dead_letter_id: int) -> None:
    await conn.execute(
        "UPDATE ledger.dead_letters SET status = 'resolved', resolved_at = now(),"
        " retries = retries + 1 WHERE id = %s",
        (dead_letter_id,),
    )


async def mark_retry_failed(
    conn: psycopg.AsyncConnection[Any], dead_letter_id: int, error: str
) -> None:
    await conn.execute(
        "UPDATE ledger.dead_letters SET error = %s, last_failed_at = now(),"
        " retries = retries + 1 WHERE id = %s",
        (error[:4000], dead_letter_id),
    )


async def purge_dead_letters(
    conn: psycopg.AsyncConnection[Any], *, ids: list[int], all_resolved: bool
) -> int:
    """Delete the given ids and/or every resolved dead letter; returns how many went."""
    cur = await conn.execute(
        "DELETE FROM ledger.dead_letters WHERE id = ANY(%s) OR (%s AND status = 'resolved')",
        (ids, all_resolved),
    )
    return max(cur.rowcount, 0)
