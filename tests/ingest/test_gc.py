"""The ingest takes its start-up objects out of the collector's reach (issue 12 goal 3: a
full collection walking them stalled every in-flight webhook)."""

from __future__ import annotations

import gc

from services.ingest.app import freeze_startup_objects


def test_startup_objects_are_frozen_and_later_ones_still_collected() -> None:
    gc.unfreeze()
    try:
        # What existed before is frozen, i.e. no longer walked by a collection. Checked by
        # identity, not by counts: other threads of the test process (servers of earlier
        # tests) allocate meanwhile, so a count of the tracked objects is not this test's.
        started_before = [object()]
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0
        assert not any(tracked is started_before for tracked in gc.get_objects())

        class Node:
            other: object = None

        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle made after start-up
        del a, b
        assert gc.collect() >= 2  # still found and freed
    finally:
        gc.unfreeze()
