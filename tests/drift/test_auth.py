"""DriftService and StripeOperations credentials: reads for read tokens, the rest admin only."""

from __future__ import annotations

import grpc
import pytest
from billing.drift.v1 import drift_pb2

from services.drift.grpc_api import DRIFT_READ_ONLY, OPERATIONS_READ_ONLY
from tests.auth_matrix import check_matrix
from tests.drift.conftest import DriftStack

pytestmark = pytest.mark.integration


async def test_drift_methods_check_credentials(stack: DriftStack) -> None:
    service = drift_pb2.DESCRIPTOR.services_by_name["DriftService"]
    seen = await check_matrix(stack.drift_addr, service, DRIFT_READ_ONLY)
    assert {n for n in seen if n not in DRIFT_READ_ONLY} == {
        "RunDriftPass",
        "SyncAccount",
        "AcknowledgeDrift",
        "SetRecoveryCutoff",
        "ImportBaseline",
    }
    assert seen["RunDriftPass"]["admin"] == grpc.StatusCode.OK
    assert seen["GetDataQualitySummary"]["read"] == grpc.StatusCode.OK
    assert seen["SyncAccount"]["admin"] == grpc.StatusCode.INVALID_ARGUMENT


async def test_operations_check_credentials(stack: DriftStack) -> None:
    service = drift_pb2.DESCRIPTOR.services_by_name["StripeOperations"]
    seen = await check_matrix(stack.drift_addr, service, OPERATIONS_READ_ONLY)
    assert seen["ListOperations"]["read"] == grpc.StatusCode.OK
    for name in ("RefundPayment", "CancelSubscription", "UpdateSubscriptionQuantity"):
        assert seen[name]["admin"] == grpc.StatusCode.INVALID_ARGUMENT, name
