"""Bad requests to drift get INVALID_ARGUMENT (or NOT_FOUND) with a short message."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from billing.common.v1 import common_pb2
from billing.drift.v1 import drift_pb2
from google.protobuf.message import Message

from tests.drift.conftest import DriftStack
from tests.grpc_calls import call_status

pytestmark = pytest.mark.integration
DRIFT = drift_pb2.DESCRIPTOR.services_by_name["DriftService"]

BAD: list[tuple[str, Message, grpc.StatusCode]] = [
    (
        "ListDiscrepancies",
        drift_pb2.ListDiscrepanciesRequest(kind="Nope"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "ListDiscrepancies",
        drift_pb2.ListDiscrepanciesRequest(severity="Loud"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "ListDiscrepancies",
        drift_pb2.ListDiscrepanciesRequest(page_token="%%%"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "ListDiscrepancies",
        drift_pb2.ListDiscrepanciesRequest(account_id="a\x00"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "ListDriftRuns",
        drift_pb2.ListDriftRunsRequest(page=common_pb2.PageRequest(page_token="e30=")),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "RunDriftPass",
        drift_pb2.RunDriftPassRequest(account_id="tenant-unknown"),
        grpc.StatusCode.NOT_FOUND,
    ),
    ("SyncAccount", drift_pb2.SyncAccountRequest(), grpc.StatusCode.INVALID_ARGUMENT),
    (
        "AcknowledgeDrift",
        drift_pb2.AcknowledgeDriftRequest(account_id="x"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "SetRecoveryCutoff",
        drift_pb2.SetRecoveryCutoffRequest(subscription_id="x", operator="o"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "SetRecoveryCutoff",
        drift_pb2.SetRecoveryCutoffRequest(subscription_id="sub_x"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "GetCustomerDiagnostic",
        drift_pb2.GetCustomerDiagnosticRequest(),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
]


async def test_bad_requests(stack: DriftStack) -> None:
    from services.common.grpc_client import aio_channel

    async with aio_channel(stack.drift_addr) as channel:
        for method, request, expected in BAD:
            code, details = await call_status(channel, DRIFT.methods_by_name[method], request)
            assert code == expected, (method, code, details[:200])
            assert len(details) <= 300


async def test_page_tokens_round_trip(stack: DriftStack, drift_stub: Any) -> None:
    for _ in range(3):
        await drift_stub.RunDriftPass(drift_pb2.RunDriftPassRequest(incremental=True))
    first = await drift_stub.ListDriftRuns(
        drift_pb2.ListDriftRunsRequest(page=common_pb2.PageRequest(page_size=2))
    )
    assert len(first.runs) == 2 and first.page.total_count == 3
    rest = await drift_stub.ListDriftRuns(
        drift_pb2.ListDriftRunsRequest(
            page=common_pb2.PageRequest(page_size=2, page_token=first.page.next_page_token)
        )
    )
    assert len(rest.runs) == 1 and not rest.page.next_page_token
    assert {r.id for r in first.runs}.isdisjoint({r.id for r in rest.runs})
