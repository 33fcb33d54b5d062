"""The credentials matrix every service's methods must satisfy (shared by the service tests)."""

from __future__ import annotations

from collections.abc import Collection

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from services.common.grpc_client import aio_channel
from tests.conftest import TEST_ADMIN_TOKEN, TEST_READ_TOKEN
from tests.grpc_calls import bearer, call_status

REFUSALS = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


async def check_matrix(
    address: str, service: ServiceDescriptor, read_only: Collection[str]
) -> dict[str, dict[str, grpc.StatusCode]]:
    """Call every method without token, with a wrong one, a read and an admin token.

    Asserts: no or a wrong token -> UNAUTHENTICATED; a read token -> PERMISSION_DENIED unless
    the method is read-only; an admin token always gets past the check (the empty request
    may still be refused on its merits). Returns the statuses, for the caller's own checks.
    """
    seen: dict[str, dict[str, grpc.StatusCode]] = {}
    async with aio_channel(address, token="") as channel:
        for method in service.methods:
            row = seen.setdefault(method.name, {})
            row["none"], _ = await call_status(channel, method)
            row["wrong"], _ = await call_status(
                channel, method, metadata=bearer("not-a-configured-token-at-all")
            )
            row["read"], _ = await call_status(channel, method, metadata=bearer(TEST_READ_TOKEN))
            row["admin"], _ = await call_status(channel, method, metadata=bearer(TEST_ADMIN_TOKEN))
    for name, row in seen.items():
        assert row["none"] == grpc.StatusCode.UNAUTHENTICATED, (name, row)
        assert row["wrong"] == grpc.StatusCode.UNAUTHENTICATED, (name, row)
        if name in read_only:
            assert row["read"] not in REFUSALS, (name, row)
        else:
            assert row["read"] == grpc.StatusCode.PERMISSION_DENIED, (name, row)
        assert row["admin"] not in REFUSALS, (name, row)
    return seen
