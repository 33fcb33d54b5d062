"""Dead letters: messages the ledger set aside after repeated failures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing.ledger.v1 import ledger_pb2 as lg

from services.backoffice_gateway.backends import Backends
from services.backoffice_gateway.views.common import Page, field_time, page_request

STATUSES = {
    "all": lg.DEAD_LETTER_STATUS_UNSPECIFIED,
    "dead": lg.DEAD_LETTER_STATUS_DEAD,
    "resolved": lg.DEAD_LETTER_STATUS_RESOLVED,
}


@dataclass(frozen=True)
class DeadLetterRow:
    id: int
    stream_seq: int
    subject: str
    stripe_event_id: str
    error: str
    deliveries: int
    first_failed_at: datetime | None
    last_failed_at: datetime | None
    status: str
    retries: int
    resolved_at: datetime | None


def dead_letter_row(x: lg.DeadLetter) -> DeadLetterRow:
    return DeadLetterRow(
        id=x.id,
        stream_seq=x.stream_seq,
        subject=x.subject,
        stripe_event_id=x.stripe_event_id,
        error=x.error,
        deliveries=x.deliveries,
        first_failed_at=field_time(x, "first_failed_at"),
        last_failed_at=field_time(x, "last_failed_at"),
        status=lg.DeadLetterStatus.Name(x.status).removeprefix("DEAD_LETTER_STATUS_").lower(),
        retries=x.retries,
        resolved_at=field_time(x, "resolved_at"),
    )


def list_dead_letters(
    backends: Backends, status: str = "all", page_size: int = 50, page_token: str = ""
) -> Page[DeadLetterRow]:
    answer = backends.call(
        "ledger",
        backends.ledger.ListDeadLetters,
        lg.ListDeadLettersRequest(
            status=STATUSES[status], page=page_request(page_size, page_token)
        ),
    )
    return Page(
        [dead_letter_row(x) for x in answer.dead_letters],
        answer.page.next_page_token,
        answer.page.total_count,
    )
