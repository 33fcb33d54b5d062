"""Bad gRPC input to the ledger's services is INVALID_ARGUMENT with a short message."""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from billing.common.v1 import common_pb2
from billing.ledger.v1 import directory_pb2, ledger_pb2, queries_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.grpc_client import aio_channel
from services.ledger.app import LedgerService
from tests.grpc_calls import call_status
from tests.ingest.test_grpc_bad_input import LEAKS

pytestmark = pytest.mark.integration
LEDGER = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"]
DIRECTORY = directory_pb2.DESCRIPTOR.services_by_name["DirectoryService"]
HUGE = "y" * 300_000
FAR = Timestamp(seconds=10**15)


def token(key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def page(tok: str) -> common_pb2.PageRequest:
    return common_pb2.PageRequest(page_token=tok)


BAD: list[tuple[str, str, Message]] = [
    ("L", "GetBillingEvent", ledger_pb2.GetBillingEventRequest(stripe_event_id="evt_\x00")),
    ("L", "ReplayArchive", ledger_pb2.ReplayArchiveRequest(since=FAR)),
    ("L", "ListDeadLetters", ledger_pb2.ListDeadLettersRequest(page=page(token([10**40])))),
    ("L", "GetDashboard", queries_pb2.GetDashboardRequest(as_of=FAR)),
    ("L", "GetAccount", queries_pb2.GetAccountRequest(account_id="acct\x00")),
    ("L", "ListAccounts", queries_pb2.ListAccountsRequest(search="a\x00b")),
    ("L", "ListBillingEvents", queries_pb2.ListBillingEventsRequest(account_id=HUGE)),
    (
        "L",
        "ListBillingEvents",
        queries_pb2.ListBillingEventsRequest(period=common_pb2.Period(start=FAR)),
    ),
    (
        "L",
        "ListInvoices",
        queries_pb2.ListInvoicesRequest(page=page(token(["invoices", False, 2**70, "x"]))),
    ),
    ("D", "GetUser", directory_pb2.GetUserRequest(user_id="u\x00")),
    ("D", "UpsertTenant", directory_pb2.UpsertTenantRequest(tenant_id="t1", name="n\x00")),
    ("D", "ListUsers", directory_pb2.ListUsersRequest(query="\x00")),
]


@pytest.mark.parametrize(
    ("service", "method", "request_"), BAD, ids=[f"{m}-{i}" for i, (_, m, _) in enumerate(BAD)]
)
async def test_bad_input_is_invalid_argument(
    service: str, method: str, request_: Message, ledger: LedgerService
) -> None:
    descriptor = (LEDGER if service == "L" else DIRECTORY).methods_by_name[method]
    async with aio_channel(f"127.0.0.1:{ledger.grpc.port}") as channel:
        code, details = await call_status(channel, descriptor, request_)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details[:300])
    assert len(details) <= 300, details[:300]
    assert not LEAKS.search(details), details
