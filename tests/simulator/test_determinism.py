"""Same seed and config => byte-identical events; another seed => different events."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from services.stripe_simulator import WorldConfig, generate_world, iter_event_bodies

CFG = WorldConfig(seed=11, tenants=30, months=4)


def _digest(config: WorldConfig) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    for event_id, body in iter_event_bodies(config):
        h.update(event_id.encode() + b"\0" + body + b"\0")
        n += 1
    return n, h.hexdigest()


def test_same_seed_same_bytes() -> None:
    assert _digest(CFG) == _digest(replace(CFG))


def test_world_matches_stream() -> None:
    world = generate_world(CFG)
    assert world.event_bodies() == list(iter_event_bodies(CFG))


def test_different_seed_differs() -> None:
    a = [b for _, b in iter_event_bodies(CFG)]
    b = [b for _, b in iter_event_bodies(replace(CFG, seed=12))]
    assert a != b
    assert not set(a) & set(b), "no body should be shared between different seeds"


def test_ids_unique_and_chronological() -> None:
    world = generate_world(CFG)
    ids = [ev["id"] for ev in world.events]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("evt_") for i in ids)
    times = [ev["created"] for ev in world.events]
    assert times == sorted(times)
    assert all(isinstance(t, int) for t in times)


def test_object_ids_unique_per_kind() -> None:
    world = generate_world(CFG)
    created = [ev["data"]["object"]["id"] for ev in world.events
               if ev["type"] in ("customer.created", "customer.subscription.created",
                                 "invoice.created", "charge.succeeded", "refund.created")]
    assert len(created) == len(set(created))


def test_same_bytes_across_processes() -> None:
    """Nothing may depend on str hashing (PYTHONHASHSEED) or other per-process state."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import hashlib\nfrom services.stripe_simulator import WorldConfig, "
            "iter_event_bodies\nh = hashlib.sha256()\n"
            "for i, b in iter_event_bodies(WorldConfig(seed=11, tenants=30, months=4)):\n"
            "    h.update(i.encode() + b'\\0' + b + b'\\0')\nprint(h.hexdigest())\n")
    repo = Path(__file__).resolve().parents[2]
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, check=True,
                             capture_output=True, text=True)
        digests.add(out.stdout.strip())
    h = hashlib.sha256()
    for event_id, body in iter_event_bodies(CFG):
        h.update(event_id.encode() + b"\0" + body + b"\0")
    assert digests == {h.hexdigest()}
