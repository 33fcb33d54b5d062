"""Bad gRPC input is INVALID_ARGUMENT with a short message, never UNKNOWN / UNAVAILABLE, and
never SQL text, an exception class or the input echoed back at length."""

from __future__ import annotations

import base64
import json
import re

import grpc
import pytest
from billing.common.v1 import common_pb2
from billing.ingest.v1 import ingest_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.grpc_client import aio_channel
from services.ingest.app import IngestService
from tests.grpc_calls import call_status

pytestmark = pytest.mark.integration
SERVICE = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"]
HUGE = "x" * 200_000


def token(key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def far(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def page(tok: str) -> common_pb2.PageRequest:
    return common_pb2.PageRequest(page_token=tok)


BAD: list[tuple[str, Message]] = [
    ("GetEvent", ingest_pb2.GetEventRequest(event_id="evt_\x00")),
    ("GetEvent", ingest_pb2.GetEventRequest(event_id=HUGE)),
    ("RepublishEvent", ingest_pb2.RepublishEventRequest(event_id="evt_\x00")),
    ("ListEvents", ingest_pb2.ListEventsRequest(type="a\x00b")),
    ("ListEvents", ingest_pb2.ListEventsRequest(page=page(token([10**30, "evt"])))),
    ("ListEvents", ingest_pb2.ListEventsRequest(page=page(token([2**62, "evt"])))),
    ("ListEvents", ingest_pb2.ListEventsRequest(page=page(token([1, "evt\x00"])))),
    ("ListEvents", ingest_pb2.ListEventsRequest(page=page("%%%" + HUGE))),
    (
        "ListEvents",
        ingest_pb2.ListEventsRequest(created=common_pb2.Period(start=far(10**15))),
    ),
    (
        "ListEvents",
        ingest_pb2.ListEventsRequest(created=common_pb2.Period(end=far(-(10**14)))),
    ),
    ("ListDivergences", ingest_pb2.ListDivergencesRequest(page=page(token([10**30])))),
    ("ListDivergences", ingest_pb2.ListDivergencesRequest(event_id="\x00")),
    ("StreamArchive", ingest_pb2.StreamArchiveRequest(since=far(10**15))),
    ("StreamArchiveBatches", ingest_pb2.StreamArchiveRequest(until=far(-(10**14)))),
    ("RecoverEvents", ingest_pb2.RecoverEventsRequest(since=far(10**15))),
    ("RecoverEvents", ingest_pb2.RecoverEventsRequest(customer="cus_\x00")),
]
LEAKS = re.compile(r"SELECT|INSERT|psycopg|Error\(|Exception|Traceback|<class", re.IGNORECASE)


@pytest.mark.parametrize(
    ("method", "request_"), BAD, ids=[f"{m}-{i}" for i, (m, _) in enumerate(BAD)]
)
async def test_bad_input_is_invalid_argument(
    method: str, request_: Message, ingest: IngestService
) -> None:
    async with aio_channel(f"127.0.0.1:{ingest.grpc.port}") as channel:
        code, details = await call_status(channel, SERVICE.methods_by_name[method], request_)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details[:300])
    assert len(details) <= 300, details[:300]
    assert not LEAKS.search(details), details
