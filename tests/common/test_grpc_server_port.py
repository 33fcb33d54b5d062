"""A gRPC port is shared only on purpose (services/common/grpc_server.py ``reuse_port``).

gRPC sets ``SO_REUSEPORT`` by default: a second service started on an occupied port bound it
silently and took a share of the first one's calls, answering them UNIMPLEMENTED (seen in a
benchmark whose two free ports collided). Without ``reuse_port`` that start must fail; with it
on both sides (the scale-out copies of one service) both bind.
"""

from __future__ import annotations

import pytest

from services.common.grpc_auth import GrpcAuth
from services.common.grpc_server import GrpcServer

AUTH = GrpcAuth.with_tokens(["admin-token-for-port-test"], ["read-token-for-port-test"])


async def test_a_second_server_on_a_taken_port_fails_to_bind() -> None:
    first = GrpcServer(0, "127.0.0.1", auth=AUTH)
    await first.server.start()
    try:
        with pytest.raises(RuntimeError):
            GrpcServer(first.port, "127.0.0.1", auth=AUTH)
    finally:
        await first.server.stop(None)


async def test_copies_of_one_service_share_the_port_when_asked() -> None:
    first = GrpcServer(0, "127.0.0.1", auth=AUTH, reuse_port=True)
    await first.server.start()
    try:
        second = GrpcServer(first.port, "127.0.0.1", auth=AUTH, reuse_port=True)
        assert second.port == first.port
        await second.server.start()
        await second.server.stop(None)
    finally:
        await first.server.stop(None)
