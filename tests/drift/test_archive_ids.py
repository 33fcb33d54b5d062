"""Ingest's ``ids_only`` ListEvents (what drift diffs events.list against): the same events,
order and paging as the full listing, two fields each, big pages, no count."""

from __future__ import annotations

import grpc
import pytest
from billing.common.v1 import common_pb2
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.grpc_client import aio_channel
from services.drift.coverage import archived_ids
from tests.drift.conftest import DriftStack

pytestmark = pytest.mark.integration


def _ts(seconds: int) -> Timestamp:
    ts = Timestamp()
    ts.FromSeconds(seconds)
    return ts


async def test_ids_only_pages_match_the_full_listing(stack: DriftStack) -> None:
    created = sorted(ev["created"] for ev in stack.sim.world.events)
    window = common_pb2.Period(start=_ts(created[len(created) // 3]), end=_ts(created[-1] + 1))
    async with aio_channel(f"127.0.0.1:{stack.ingest.grpc.port}") as channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(channel)

        async def walk(size: int, ids_only: bool) -> list[ingest_pb2.ArchivedEvent]:
            out: list[ingest_pb2.ArchivedEvent] = []
            token = ""
            while True:
                page = await ingest.ListEvents(
                    ingest_pb2.ListEventsRequest(
                        created=window,
                        page=common_pb2.PageRequest(page_size=size, page_token=token),
                        ids_only=ids_only,
                    )
                )
                out.extend(page.events)
                token = page.page.next_page_token
                if ids_only:
                    assert page.page.total_count == 0
                if not token:
                    return out

        full = await walk(500, False)
        slim = await walk(7, True)
        big = await walk(0, True)  # default: 10,000 a page, one call here
        assert len(full) > 7
        expected = [(e.event_id, e.stripe_created_at.seconds) for e in full]
        assert [(e.event_id, e.stripe_created_at.seconds) for e in slim] == expected
        assert [(e.event_id, e.stripe_created_at.seconds) for e in big] == expected
        assert all(not e.type and not e.payload_sha256 for e in slim)
        assert await archived_ids(ingest, window.start.seconds, window.end.seconds - 1) == {
            e.event_id for e in full
        }
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ingest.ListEvents(
                ingest_pb2.ListEventsRequest(ids_only=True, include_payload=True)
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
