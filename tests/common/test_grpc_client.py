"""The client channels attach the bearer token that the servers' auth check reads."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common.grpc_client import AUTHORIZATION_KEY, aio_channel, sync_channel


class _Recorder(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self.seen: list[str | None] = []

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        values = dict(details.invocation_metadata or ())
        self.seen.append(values.get(AUTHORIZATION_KEY))
        return await continuation(details)


async def _server(recorder: _Recorder) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(interceptors=[recorder])
    servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest.mark.parametrize("token", ["s3cret", None])
async def test_aio_channel_sends_token_only_when_given(
    token: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRPC_CLIENT_TOKEN", raising=False)
    recorder = _Recorder()
    server, port = await _server(recorder)
    try:
        async with aio_channel(f"127.0.0.1:{port}", token=token) as channel:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    finally:
        await server.stop(None)
    assert recorder.seen == [f"Bearer {token}" if token else None]


async def test_sync_channel_reads_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_CLIENT_TOKEN", "from-env")
    recorder = _Recorder()
    server, port = await _server(recorder)
    try:
        channel = sync_channel(f"127.0.0.1:{port}")
        stub = health_pb2_grpc.HealthStub(channel)
        import asyncio

        await asyncio.get_running_loop().run_in_executor(
            None, lambda: stub.Check(health_pb2.HealthCheckRequest())
        )
        channel.close()
    finally:
        await server.stop(None)
    assert recorder.seen == ["Bearer from-env"]
