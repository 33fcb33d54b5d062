"""The ingest takes its start-up objects out of the collector's reach (issue 12 goal 3: a
full collection walking them stalled every in-flight webhook)."""

from __future__ import annotations

import gc

from services.ingest.app import freeze_startup_objects


def test_startup_objects_are_frozen_and_later_ones_still_collected() -> None:
    gc.unfreeze()
    try:
        before = len(gc.get_objects())
        freeze_startup_objects()
        assert gc.get_freeze_count() >= before // 2  # what existed is frozen
        assert len(gc.get_objects()) < before // 2  # and no longer walked by a collection

        class Node:
            other: object = None

        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle made after start-up
        del a, b
        assert gc.collect() >= 2  # still found and freed
    finally:
        gc.unfreeze()
