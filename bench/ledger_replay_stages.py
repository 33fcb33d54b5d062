"""A replay worker's CPU per event, stage by stage, and a digest of what it hands the writer.

``bench.ledger_replay_profile`` says how much CPU each process of a replay spends; this one
takes the projection worker apart in one process, over a simulator world projected in
batches exactly as a replay does (``project_merged``): what crossing the process boundary
costs each way (pickling the archived events in, the projected batch out), the decode, the
projection proper, the merge and the COPY encoding. The digest (SHA-256 over every batch's
COPY bytes, row counts, key lists and error lists) is the check that a faster worker hands
the writer the same bytes: compare it across commits and across ``LEDGER_COMPILED=0|1``.

    .venv/bin/python -m bench.ledger_replay_stages --tenants 500 --months 12
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from services.ledger.effects import parse_event, project_document, tune_gc_for_projection
from services.ledger.projection import merge_effects, stage_merged
from services.ledger.replay import Archived, ProjectedBatch, project_merged
from services.stripe_simulator import WorldConfig, iter_events, serialize_event


def world(config: WorldConfig, limit: int | None) -> list[Archived]:
    """(event id, payload) of the world's events in archive order."""
    events: list[Archived] = []
    for event in iter_events(config):
        if limit is not None and len(events) >= limit:
            break
        events.append((event["id"], serialize_event(event)))
    return events


def digest(batches: Sequence[ProjectedBatch]) -> str:
    """What the writer receives, hashed in a fixed order."""
    h = hashlib.sha256()
    for batch in batches:
        staged = batch.staged
        for table in sorted(staged.copies):
            h.update(table.encode())
            h.update(staged.copies[table])
        h.update(repr(sorted(staged.rows.items())).encode())
        h.update(repr(sorted(staged.keys.items())).encode())
        h.update(repr(batch.unreadable).encode())
        h.update(repr([(e, err) for e, _, err in batch.failed]).encode())
    return h.hexdigest()[:16]


def timed(fn: Callable[[Any], Any], items: Sequence[Any]) -> tuple[float, list[Any]]:
    """CPU seconds of ``fn`` over every item, and the results."""
    started = time.process_time()
    out = [fn(item) for item in items]
    return time.process_time() - started, out


def _decode_all(batch: Sequence[Archived]) -> list[dict[str, Any]]:
    return [parse_event(payload) for _, payload in batch]


def _project_all(docs: Sequence[dict[str, Any]]) -> list[Any]:
    return [project_document(doc) for doc in docs]


def _pickle(value: object) -> bytes:
    return pickle.dumps(value, 5)


def one_round(batches: list[list[Archived]]) -> tuple[dict[str, float], list[ProjectedBatch]]:
    """CPU seconds of each stage over all batches, and the projected batches."""
    spent: dict[str, float] = {}
    spent["project_merged (whole worker call)"], projected = timed(project_merged, batches)
    spent["  events in: pickle (writer side)"], pickled_in = timed(_pickle, batches)
    spent["  events in: unpickle (worker side)"], _ = timed(pickle.loads, pickled_in)
    spent["  decode (parse_event)"], docs = timed(_decode_all, batches)
    spent["  project_document"], effects = timed(_project_all, docs)
    del docs
    spent["  merge_effects"], merged = timed(merge_effects, effects)
    del effects
    spent["  stage_merged (COPY text, key lists)"], _ = timed(stage_merged, merged)
    spent["  batch out: pickle (worker side)"], pickled_out = timed(_pickle, projected)
    spent["  batch out: unpickle (writer side)"], _ = timed(pickle.loads, pickled_out)
    return spent, projected


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="ledger_replay_stages", description=__doc__)
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-events", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2, help="best of N per stage")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    tune_gc_for_projection()  # as a replay worker does
    events = world(
        WorldConfig(seed=args.seed, tenants=args.tenants, months=args.months), args.max_events
    )
    size = args.batch_size
    batches = [events[i : i + size] for i in range(0, len(events), size)]
    n = len(events)
    best: dict[str, float] = {}

    def keep(stage: str, seconds: float) -> None:
        best[stage] = min(best.get(stage, seconds), seconds)

    projected: list[ProjectedBatch] = []
    for _ in range(args.rounds):
        spent, projected = one_round(batches)
        for stage, seconds in spent.items():
            keep(stage, seconds)
    print(f"{n} events in {len(batches)} batches of {size}; best of {args.rounds}; CPU us/event")
    for stage, seconds in best.items():
        print(f"{stage:42s} {seconds / n * 1e6:8.1f}")
    mib_in = sum(len(pickle.dumps(b, 5)) for b in batches) / n
    mib_out = sum(len(pickle.dumps(p, 5)) for p in projected) / n
    print(f"bytes per event across the boundary: in {mib_in:,.0f}, out {mib_out:,.0f}")
    print(f"digest {digest(projected)}")


if __name__ == "__main__":
    main(sys.argv[1:])
