"""IngestService credentials: every mutating RPC needs an admin token, reads a read token."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from billing.ingest.v1 import ingest_pb2

from services.common.stripe_client import StripeSettings
from services.devstack.embedded import free_port
from services.ingest.app import IngestService
from services.ingest.grpc_api import READ_ONLY_METHODS
from tests.auth_matrix import check_matrix

pytestmark = pytest.mark.integration
SERVICE = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"]


async def test_every_method_checks_credentials(make_ingest: Callable[..., object]) -> None:
    # Stripe is a closed local port: RecoverEvents with the admin token fails fast (UNAVAILABLE)
    # instead of reaching out.
    stripe = StripeSettings("sk_test_x", f"http://127.0.0.1:{free_port()}", max_retries=0)
    service = await make_ingest(stripe=stripe)  # type: ignore[misc]
    assert isinstance(service, IngestService)
    seen = await check_matrix(f"127.0.0.1:{service.grpc.port}", SERVICE, READ_ONLY_METHODS)
    mutating = {name for name in seen if name not in READ_ONLY_METHODS}
    assert mutating == {"RecoverEvents", "RepublishEvent"}
    assert seen["RecoverEvents"]["admin"] == grpc.StatusCode.UNAVAILABLE
    assert seen["RepublishEvent"]["admin"] == grpc.StatusCode.INVALID_ARGUMENT
    assert seen["ListEvents"]["read"] == grpc.StatusCode.OK
