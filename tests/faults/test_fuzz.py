"""Property-based fuzzing of what the outside world can send: signed malformed webhook bodies
and generated requests to every gRPC method. Only defined answers; nothing stored on refusal."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from billing.ingest.v1 import ingest_pb2
from billing.ledger.v1 import directory_pb2, ledger_pb2
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.grpc_client import aio_channel
from services.common.stripe_client import StripeSettings
from services.devstack.embedded import free_port
from services.stripe_simulator.signing import sign
from tests.faults.inprocess import Suite, suite
from tests.faults.proto_strategies import message_strategy
from tests.grpc_calls import call_status
from tests.helpers import query
from tests.ingest.conftest import SECRET
from tests.servers import PostgresHandle

pytestmark = pytest.mark.integration
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
async def webhook_suite(pg: PostgresHandle) -> AsyncIterator[Suite]:
    async with suite(pg) as running:
        yield running


@pytest.fixture(scope="module")
async def grpc_suite(pg: PostgresHandle) -> AsyncIterator[Suite]:
    """A suite of its own, receiving no webhooks: its tables change only through the calls.

    Stripe is a closed local port: RecoverEvents fails fast instead of reaching out.
    """
    stripe = StripeSettings("sk_test_fuzz", f"http://127.0.0.1:{free_port()}", max_retries=0)
    async with suite(pg, stripe=stripe) as running:
        yield running


def fingerprint(
    database_url: str, schemas: tuple[str, ...] = ("ingest", "ledger")
) -> tuple[Any, ...]:
    """Row counts of every table of ``schemas``."""
    tables = query(
        database_url,
        "SELECT table_schema || '.' || table_name FROM information_schema.tables"
        " WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE' ORDER BY 1",
        (list(schemas),),
    )
    counts = " UNION ALL ".join(
        f"SELECT '{name}', count(*) FROM {name}"  # noqa: S608 - names from the catalog
        for (name,) in tables
    )
    return tuple(query(database_url, counts))


# ------------------------------------------------------------------------------ webhooks
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
ENVELOPE_VALUE = st.one_of(
    JSON,
    st.sampled_from(["", "\x00", "\ud800", "evt_\x00", "x" * 400, 10**12, 2**63, -1, 1.5]),
)


@st.composite
def envelope_bodies(draw: st.DrawFn) -> bytes:
    """An event envelope with some fields replaced, removed or added."""
    document: dict[str, Any] = {
        "id": f"evt_fuzz_{draw(st.integers(0, 10**9))}",
        "object": "event",
        "api_version": "2020-08-27",
        "created": 1_700_000_000,
        "livemode": False,
        "type": "customer.created",
        "data": {"object": {"id": "cus_fuzz", "object": "customer"}},
    }
    for key in draw(st.lists(st.sampled_from([*document, "account", "extra"]), max_size=3)):
        if draw(st.booleans()):
            document[key] = draw(ENVELOPE_VALUE)
        else:
            document.pop(key, None)
    return json.dumps(document).encode()


BODIES = st.one_of(
    envelope_bodies(),
    JSON.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=64),
    st.sampled_from([b"\xef\xbb\xbf{}", b"[" * 5000 + b"]" * 5000, b"{" * 3000]),
)


@FUZZ
@given(body=BODIES)
async def test_webhook_fuzz(webhook_suite: Suite, body: bytes) -> None:
    # The archive only: the ledger is still consuming what earlier examples archived.
    before = fingerprint(webhook_suite.database_url, ("ingest",))
    headers = {"Stripe-Signature": sign(body, SECRET, int(time.time()))}
    async with (
        aiohttp.ClientSession() as session,
        session.post(webhook_suite.webhook_url, data=body, headers=headers) as response,
    ):
        status = response.status
        answer = await response.json()
    assert status in (200, 400), (status, answer)
    assert isinstance(answer.get("outcome"), str)
    if status == 400:
        assert fingerprint(webhook_suite.database_url, ("ingest",)) == before


# ------------------------------------------------------------------------------ gRPC
SERVICES = [
    ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
    ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"],
    directory_pb2.DESCRIPTOR.services_by_name["DirectoryService"],
]
METHODS: list[MethodDescriptor] = [m for service in SERVICES for m in service.methods]
DEFINED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
}
# Where UNAVAILABLE is the truth: Stripe (a closed port here) is away.
MAY_BE_UNAVAILABLE = {"RecoverEvents"}

CALLS = st.sampled_from(METHODS).flatmap(
    lambda method: message_strategy(method.input_type).map(lambda request: (method, request))
)


@settings(FUZZ, max_examples=200)
@given(call=CALLS)
async def test_grpc_fuzz(grpc_suite: Suite, call: tuple[MethodDescriptor, Any]) -> None:
    method, request = call
    address = (
        grpc_suite.ingest.grpc.port
        if method.containing_service.name == "IngestService"
        else grpc_suite.ledger.grpc.port
    )
    before = fingerprint(grpc_suite.database_url)
    async with aio_channel(f"127.0.0.1:{address}") as channel:
        code, details = await call_status(channel, method, request)
    allowed = DEFINED | (
        {grpc.StatusCode.UNAVAILABLE} if method.name in MAY_BE_UNAVAILABLE else set()
    )
    assert code in allowed, (method.name, code, details[:300])
    assert len(details) <= 300
    if code != grpc.StatusCode.OK:
        assert fingerprint(grpc_suite.database_url) == before, method.name
