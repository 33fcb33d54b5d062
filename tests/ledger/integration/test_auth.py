"""LedgerService and DirectoryService credentials: mutating RPCs need an admin token."""

from __future__ import annotations

import grpc
import pytest
from billing.ledger.v1 import directory_pb2, ledger_pb2

from services.ledger.app import LedgerService
from services.ledger.directory.servicer import READ_ONLY_METHODS as DIRECTORY_READS
from services.ledger.grpc_api import READ_ONLY_METHODS as LEDGER_READS
from tests.auth_matrix import check_matrix

pytestmark = pytest.mark.integration


async def test_ledger_methods_check_credentials(ledger: LedgerService) -> None:
    service = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"]
    seen = await check_matrix(f"127.0.0.1:{ledger.grpc.port}", service, LEDGER_READS)
    mutating = {name for name in seen if name not in LEDGER_READS}
    assert mutating == {
        "ReplayArchive",
        "VerifyLedger",
        "RetryDeadLetter",
        "PurgeDeadLetters",
        "RecordStripeSnapshot",
    }
    # The admin calls really ran (the ledger reached ingest with its own client token).
    assert seen["ReplayArchive"]["admin"] == grpc.StatusCode.OK
    assert seen["VerifyLedger"]["admin"] == grpc.StatusCode.OK
    assert seen["GetDashboard"]["read"] == grpc.StatusCode.OK


async def test_directory_methods_check_credentials(ledger: LedgerService) -> None:
    service = directory_pb2.DESCRIPTOR.services_by_name["DirectoryService"]
    seen = await check_matrix(f"127.0.0.1:{ledger.grpc.port}", service, DIRECTORY_READS)
    mutating = {name for name in seen if name not in DIRECTORY_READS}
    assert mutating == {
        "UpsertTenant",
        "SoftDeleteTenant",
        "UpsertUser",
        "UpsertMembership",
        "RecordLogin",
        "RecordSession",
        "RevokeSession",
        "LinkStripeCustomer",
        "UnlinkStripeCustomer",
    }
    assert seen["ListUsers"]["read"] == grpc.StatusCode.OK
