"""The pull client's pure parts: ack subjects in both forms, what each status means, and a
status that answers a request nobody waits for any more."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.msg import Msg

from services.ledger.jetstream_pull import (
    AckMetadata,
    JetStreamPull,
    PullConsumerGone,
    PullRequestRejected,
    parse_ack_subject,
    status_error,
)


def test_the_nine_token_ack_subject() -> None:
    assert parse_ack_subject("$JS.ACK.STRIPE_EVENTS.ledger.3.1042.977.1733480000000000000.12") == (
        AckMetadata("STRIPE_EVENTS", "ledger", 3, 1042, 977, 1733480000000000000, 12)
    )


@pytest.mark.parametrize("suffix", ["", ".x7tkDP"])
def test_the_domain_and_account_form_with_and_without_the_random_token(suffix: str) -> None:
    reply = "$JS.ACK.hub.ACCHASH.STRIPE_EVENTS.ledger.5.88.80.1733480000000000001.0" + suffix
    assert parse_ack_subject(reply) == AckMetadata(
        "STRIPE_EVENTS", "ledger", 5, 88, 80, 1733480000000000001, 0
    )


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "_INBOX.abc.1",
        "$JS.ACK.S.c.1.2.3.4",  # 8 tokens
        "$JS.ACK.d.h.S.c.1.2.3.4",  # 10 tokens
        "$JS.NAK.S.c.1.2.3.4.5",
        "$JS.ACK.S.c.one.2.3.4.5",
    ],
)
def test_anything_else_is_refused_rather_than_guessed(reply: str) -> None:
    with pytest.raises(ValueError, match="not a JetStream ack subject"):
        parse_ack_subject(reply)


@pytest.mark.parametrize(
    ("status", "description", "expected"),
    [
        ("404", "No Messages", None),
        ("408", "Request Timeout", None),
        ("409", "Leadership Change", None),
        ("409", "Exceeded MaxWaiting", None),
        ("409", "Message Size Exceeds MaxBytes", None),
        ("409", "Consumer Deleted", PullConsumerGone),
        ("409", "Consumer is push based", PullConsumerGone),
        ("409", "Exceeded MaxRequestBatch of 5", PullRequestRejected),
        ("409", "Exceeded MaxRequestExpires of 1s", PullRequestRejected),
        ("503", "", PullConsumerGone),
        ("400", "Bad Request", PullRequestRejected),
    ],
)
def test_what_each_status_means(status: str, description: str, expected: type | None) -> None:
    error = status_error(status, description)
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected
        assert error is not None and error.status == status


class _Client:
    """Just enough of a nats client for the callback (mock: unit test only)."""

    def new_inbox(self) -> str:
        return "_INBOX.unit"


def _status(subject: str, code: str) -> Msg:
    return Msg(_client=None, subject=subject, reply="", headers={"Status": code})  # type: ignore[arg-type]


async def test_a_status_for_an_older_request_does_not_end_the_current_one() -> None:
    pull = JetStreamPull(_Client(), "S", "c")  # type: ignore[arg-type]
    from services.ledger import jetstream_pull

    request = jetstream_pull._Request(
        "_INBOX.unit.2", 10, asyncio.get_running_loop().create_future()
    )
    pull._request = request
    await pull._on_message(_status("_INBOX.unit.1", "408"))  # the expired earlier request
    assert not request.done.done() and pull.stale_statuses == 1
    await pull._on_message(_status("_INBOX.unit.2", "100"))  # heartbeats end nothing
    assert not request.done.done()
    await pull._on_message(
        Msg(_client=None, subject="stripe.events.x", reply="$JS.ACK.S.c.1.1.1.1.0", data=b"{}")  # type: ignore[arg-type]
    )
    assert pull.buffered == 1 and not request.done.done()
    await pull._on_message(_status("_INBOX.unit.2", "404"))
    assert request.done.done() and request.done.exception() is None
    assert pull.statuses == {"408": 1, "100": 1, "404": 1}
