"""Call any gRPC method by its descriptor (auth matrix and fuzz tests cover every method)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

Metadata = Sequence[tuple[str, str]]


def methods(service: ServiceDescriptor) -> Iterator[MethodDescriptor]:
    yield from service.methods


def request_class(method: MethodDescriptor) -> type[Message]:
    return GetMessageClass(method.input_type)


async def call_status(
    channel: grpc.aio.Channel,
    method: MethodDescriptor,
    request: Message | None = None,
    *,
    metadata: Metadata = (),
    timeout: float = 60.0,
) -> tuple[grpc.StatusCode, str]:
    """Call ``method`` with ``request`` (default: empty) and return its status and details.

    Responses are read completely (streams too); only the outcome matters to the callers.
    """
    req_cls = request_class(method)
    resp_cls = GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    message = request if request is not None else req_cls()
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path,
                request_serializer=req_cls.SerializeToString,
                response_deserializer=resp_cls.FromString,
            )
            async for _ in stream(message, metadata=tuple(metadata), timeout=timeout):
                pass
        else:
            unary = channel.unary_unary(
                path,
                request_serializer=req_cls.SerializeToString,
                response_deserializer=resp_cls.FromString,
            )
            await unary(message, metadata=tuple(metadata), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)
