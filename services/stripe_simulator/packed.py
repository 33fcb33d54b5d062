"""A world kept as bytes on disk and in memory: what a 100,000-customer simulator can hold.

Why: :class:`~.world.World` keeps every event twice (a dict and its bytes) and every object
as a dict: 3.5 GB resident at 20,000 customers, ~17 GB at 100,000. A simulator serving a
drift benchmark only lists and retrieves. It needs each event's bytes, time and type (for
``events.list``), and each object's latest version. Here:

* event bodies live in one file, read back with ``pread`` (the OS page cache holds them,
  not the process); times, types and versions are compact arrays; an event's position comes
  from its id (ids are built from the event's sequence number, see ``ids.event_id``);
* an object's latest version is where it already is: inside the body of the last event
  that carried it. Only its place in the events file is kept (one int per object, found by
  one scan of the file after generation), and its bytes are read back when served; a list
  page is spliced from those bytes without parsing them (``splice_expanded``);
* the world is generated straight into the directory (``pack_world`` streams
  ``iter_events``), so the dicts of the whole world never exist at once; the directory is
  also the cache between benchmark runs.

Keeping each object's bytes in memory instead (the first version of this module) still
needed ~2 GB at 100,000 customers to serve and ~10.7 GB to generate (the bytes replaced on
every update fragmented the heap).

:class:`PackedWorld` offers the attributes and methods of ``World`` that the REST simulator
uses (``events``, ``bodies``, ``index``, ``objects``, ``new_event`` ...), so
``SimulatorApp`` serves either. Events added later (REST mutations) are kept in memory.
"""

from __future__ import annotations

import os
import pickle
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import orjson

from .config import WorldConfig
from .ids import event_id, world_tag
from .world import TRACKED, World, _Envelope, iter_events, serialize_event

JSON = dict[str, Any]

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ALPHABET = {c: i for i, c in enumerate(_B62)}
_EVENTS = "events.bin"
_META = "meta.pickle"
_OBJECTS = "objects-index-v2.pickle"
#: Written last: a directory without it is an interrupted generation (regenerated).
_DONE = "complete"


#: An object as indexed: ``created << 64 | offset << _LENGTH_BITS | length`` (its time, for
#: the list order, and its place in the events file).
_LENGTH_BITS = 24
_PLACE_BITS = 64


class PackedObjects(dict[str, Any]):
    """One kind's objects by id, each stored as its place in the events file (or as bytes:
    objects changed after generation, refunds found inside a charge), parsed on access.

    A ``dict`` subclass so the simulator's code (``.get``, ``[]``, ``.values()``, assignment)
    works unchanged; each access returns a fresh dict, so a change is kept only by assigning
    it back (which is how the simulator's handlers update objects).
    """

    def __init__(self, fd: int = -1) -> None:
        super().__init__()
        self.fd = fd

    def raw(self, key: str) -> bytes:
        """The object's JSON bytes, unparsed (``KeyError`` if unknown)."""
        stored = super().__getitem__(key)
        if isinstance(stored, bytes):
            return stored
        place = stored & ((1 << _PLACE_BITS) - 1)
        length = place & ((1 << _LENGTH_BITS) - 1)
        return os.pread(self.fd, length, place >> _LENGTH_BITS)

    def created_pairs(self) -> Iterator[tuple[str, int]]:
        """``(id, created)`` of every object, from the index (an object changed after
        generation is parsed): what a list's order needs, without reading 100,000 objects."""
        for key, stored in super().items():
            if isinstance(stored, bytes):
                yield key, int(orjson.loads(stored).get("created", 0))
            else:
                yield key, stored >> _PLACE_BITS

    def __getitem__(self, key: str) -> JSON:
        parsed: JSON = orjson.loads(self.raw(key))
        return parsed

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key not in self:
            return default
        return self[key]

    def __setitem__(self, key: str, value: JSON) -> None:
        super().__setitem__(key, orjson.dumps(value))

    def setdefault(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key not in self:
            self[key] = default
        return self[key]

    def values(self) -> Iterator[JSON]:  # type: ignore[override]
        return (self[key] for key in self)

    def items(self) -> Iterator[tuple[str, JSON]]:  # type: ignore[override]
        return ((key, self[key]) for key in self)

    @classmethod
    def of_index(cls, fd: int, stored: dict[str, int | bytes]) -> PackedObjects:
        out = cls(fd)
        for key, value in stored.items():
            dict.__setitem__(out, key, value)
        return out


def splice_expanded(raw: bytes, name: str, found: Callable[[str], bytes | None]) -> bytes | None:
    """``raw`` (an object's JSON bytes) with its ``name`` id replaced by the bytes of the
    object it names (Stripe's ``expand[]``), without parsing either. ``None`` when the key is
    absent or appears more than once (a nested object has it too): the caller then parses.
    Unchanged when the value is not an id or names nothing known (as ``expand`` does)."""
    key = b'"' + name.encode() + b'":'
    at = raw.find(key)
    if at < 0 or raw.find(key, at + 1) >= 0:
        return None
    start = at + len(key)
    if raw[start : start + 1] != b'"':
        return raw
    end = raw.index(b'"', start + 1)
    other = found(raw[start + 1 : end].decode())
    return raw if other is None else raw[:start] + other + raw[end + 1 :]


@dataclass(slots=True)
class EventMeta:
    """Per event (by position): where its body starts, its time, type and API version."""

    offsets: array[int]
    created: array[int]
    types: array[int]
    versions: array[int]
    type_names: list[str]
    version_names: list[str]


class PackedEvents:
    """``world.events`` of a packed world: a read-only sequence of small dicts (id, created,
    type, api_version) built on access; the full event is its body (``world.bodies``)."""

    def __init__(self, tag: str, meta: EventMeta, extra: list[JSON]) -> None:
        self.tag = tag
        self.meta = meta
        self.extra = extra

    def __len__(self) -> int:
        return len(self.meta.created) + len(self.extra)

    def __getitem__(self, i: int) -> JSON:
        packed = len(self.meta.created)
        if i < 0:
            i += len(self)
        if i >= packed:
            return self.extra[i - packed]
        if i < 0:
            raise IndexError(i)
        m = self.meta
        return {
            "id": event_id(self.tag, i + 1),
            "created": m.created[i],
            "type": m.type_names[m.types[i]],
            "api_version": m.version_names[m.versions[i]],
        }

    def __iter__(self) -> Iterator[JSON]:
        for i in range(len(self)):
            yield self[i]

    def __reversed__(self) -> Iterator[JSON]:
        for i in range(len(self) - 1, -1, -1):
            yield self[i]


class PackedBodies:
    """``world.bodies`` of a packed world: each body read from the events file by position."""

    def __init__(self, fd: int, offsets: array[int], extra: list[bytes]) -> None:
        self.fd = fd
        self.offsets = offsets
        self.extra = extra

    def __len__(self) -> int:
        return len(self.offsets) - 1 + len(self.extra)

    def __getitem__(self, i: int) -> bytes:
        packed = len(self.offsets) - 1
        if i < 0:
            i += len(self)
        if i >= packed:
            return self.extra[i - packed]
        start = self.offsets[i]
        return os.pread(self.fd, self.offsets[i + 1] - start, start)


class PackedIndex:
    """``world.index`` of a packed world: an event id's position, decoded from the id."""

    def __init__(self, tag: str, events: PackedEvents) -> None:
        self.tag = tag
        self.events = events

    def get(self, eid: str, default: int | None = None) -> int | None:
        prefix = f"evt_{self.tag}"
        if not eid.startswith(prefix):
            return default
        digits = eid[len(prefix) : len(prefix) + 6]
        seq = 0
        for c in digits:
            if c not in _ALPHABET:
                return default
            seq = seq * 62 + _ALPHABET[c]
        if not 1 <= seq <= len(self.events) or event_id(self.tag, seq) != eid:
            return default
        return seq - 1

    def __contains__(self, eid: object) -> bool:
        return isinstance(eid, str) and self.get(eid) is not None

    def __getitem__(self, eid: str) -> int:
        pos = self.get(eid)
        if pos is None:
            raise KeyError(eid)
        return pos


class PackedWorld(World):
    """A world opened from a directory written by :func:`pack_world` (see the module)."""

    def __init__(self, directory: Path, *, with_objects: bool = True) -> None:
        """``with_objects=False``: the events only (what loading an archive needs; the
        objects are most of a packed world's memory)."""
        with (directory / _META).open("rb") as f:
            saved = pickle.load(f)  # noqa: S301 - our own file (pack_world)
        index: dict[str, Any] = {"objects": {}, "api_version_of": {}}
        if with_objects:
            with (directory / _OBJECTS).open("rb") as f:
                index = pickle.load(f)  # noqa: S301 - our own file (pack_world)
        config: WorldConfig = saved["config"]
        super().__init__(config=config, tag=world_tag(config.seed))
        meta: EventMeta = saved["meta"]
        self.directory = directory
        self.fd = os.open(directory / _EVENTS, os.O_RDONLY)
        self._extra_events: list[JSON] = []
        self._extra_bodies: list[bytes] = []
        self.meta = meta
        packed_events = PackedEvents(self.tag, meta, self._extra_events)
        self.events = packed_events  # type: ignore[assignment]
        self.bodies = PackedBodies(self.fd, meta.offsets, self._extra_bodies)  # type: ignore[assignment]
        self.index = PackedIndex(self.tag, packed_events)  # type: ignore[assignment]
        self.objects = {
            kind: PackedObjects.of_index(self.fd, stored)
            for kind, stored in index["objects"].items()
        }
        self.api_version_of = index["api_version_of"]
        self.next_seq = len(meta.created)

    def close(self) -> None:
        os.close(self.fd)

    def add_event(self, event: JSON) -> bytes:
        """An event added after generation (a REST mutation): kept in memory."""
        body = serialize_event(event)
        self._extra_events.append({k: event[k] for k in ("id", "created", "type", "api_version")})
        self._extra_bodies.append(body)
        obj = event["data"]["object"]
        kind = obj.get("object")
        if kind in TRACKED and "id" in obj:
            self.objects.setdefault(kind, PackedObjects(self.fd))[obj["id"]] = obj
            if kind == "customer":
                self.api_version_of[obj["id"]] = event["api_version"]
        return body

    def body(self, event_id: str) -> bytes:
        return self.bodies[self.index[event_id]]

    def event_bodies(self) -> list[tuple[str, bytes]]:
        return [(ev["id"], self.bodies[i]) for i, ev in enumerate(self.events)]

    def new_event(
        self, t: int, version: str, etype: str, obj: JSON, prev: JSON | None, api: bool = True
    ) -> JSON:
        self.next_seq += 1
        env = _Envelope(self.tag)
        env.seq = self.next_seq - 1
        event = env(t, version, etype, obj, prev, api)
        self.add_event(event)
        return event

    def stored_bodies(self, chunk: int = 1 << 24) -> Iterator[tuple[int, bytes]]:
        """``(position, body)`` of every generated event, read from the file in big chunks
        (what loading the archive wants: sequential reads, not one ``pread`` per event)."""
        offsets = self.meta.offsets
        n = len(offsets) - 1
        i = 0
        while i < n:
            j = i + 1
            while j < n and offsets[j + 1] - offsets[i] <= chunk:
                j += 1
            block = os.pread(self.fd, offsets[j] - offsets[i], offsets[i])
            base = offsets[i]
            for k in range(i, j):
                yield k, block[offsets[k] - base : offsets[k + 1] - base]
            i = j


def world_directory(root: Path, config: WorldConfig) -> Path:
    """Where ``config``'s packed world lives under ``root`` (one directory per config)."""
    return root / f"packed-s{config.seed}-t{config.tenants}-m{config.months}"


def is_packed(directory: Path) -> bool:
    """Whether ``directory`` holds a completely generated and indexed packed world."""
    return (directory / _DONE).exists() and (directory / _OBJECTS).exists()


def pack_world(config: WorldConfig, directory: Path) -> None:
    """Generate ``config``'s world into ``directory`` (streamed) unless it is there already,
    then index its objects (open it with :class:`PackedWorld`). Generation is
    deterministic: a kept directory equals a fresh one."""
    if not (directory / _DONE).exists():
        _write_events(config, directory)
    if not (directory / _OBJECTS).exists():
        _index_objects(directory)


def _write_events(config: WorldConfig, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    meta = EventMeta(array("q", [0]), array("q"), array("H"), array("H"), [], [])
    type_at: dict[str, int] = {}
    version_at: dict[str, int] = {}
    size = 0
    with (directory / _EVENTS).open("wb") as out:
        for event in iter_events(config):
            body = serialize_event(event)
            out.write(body)
            size += len(body)
            meta.offsets.append(size)
            meta.created.append(int(event["created"]))
            etype, version = event["type"], event["api_version"]
            if etype not in type_at:
                type_at[etype] = len(meta.type_names)
                meta.type_names.append(etype)
            if version not in version_at:
                version_at[version] = len(meta.version_names)
                meta.version_names.append(version)
            meta.types.append(type_at[etype])
            meta.versions.append(version_at[version])
    with (directory / _META).open("wb") as f:
        pickle.dump({"config": config, "meta": meta}, f, protocol=pickle.HIGHEST_PROTOCOL)
    (directory / _DONE).write_text("ok\n")


class _Refunds(msgspec.Struct):
    data: list[msgspec.Raw] = []


class _Carried(msgspec.Struct):
    """What indexing reads of an event's object: its kind, id and (a charge) its refunds."""

    object: Any = None
    id: Any = None
    created: Any = None
    refunds: _Refunds | None = None


class _Data(msgspec.Struct):
    object: msgspec.Raw


class _EventShape(msgspec.Struct):
    data: _Data


_ENVELOPE = msgspec.json.Decoder(_EventShape)
_CARRIED = msgspec.json.Decoder(_Carried)
#: How every body starts its object (``serialize_event``: compact, envelope keys first).
_OBJECT_AT = b'"data":{"object":'


def _carried(raw: bytes) -> tuple[Any, Any, Any, list[bytes]]:
    """An event object's kind, id, ``created`` and (a charge's) refunds' bytes, without
    building the rest of it; a shape the typed decoder does not expect is parsed whole."""
    try:
        carried = _CARRIED.decode(raw)
    except msgspec.ValidationError:
        obj = orjson.loads(raw)
        if not isinstance(obj, dict):
            return None, None, None, []
        listed = obj.get("refunds")
        found = listed.get("data", []) if isinstance(listed, dict) else []
        return (
            obj.get("object"),
            obj.get("id"),
            obj.get("created"),
            [orjson.dumps(r) for r in found],
        )
    found = carried.refunds.data if carried.refunds is not None else []
    return carried.object, carried.id, carried.created, [bytes(r) for r in found]


def _index_objects(directory: Path) -> None:
    """Each object's latest version: the place, in the events file, of the object carried by
    the last event that had it (what ``World.add_event`` keeps, as a dict). A refund seen
    only inside a charge's list is kept as bytes, the first one seen (as ``World`` does)."""
    world = PackedWorld(directory, with_objects=False)
    meta = world.meta
    objects: dict[str, dict[str, int | bytes]] = {}
    api_version_of: dict[str, str] = {}
    try:
        for i, body in world.stored_bodies():
            raw = bytes(_ENVELOPE.decode(body).data.object)
            kind, oid, carried_created, refunds = _carried(raw)
            if kind in TRACKED and isinstance(oid, str):
                at = body.index(_OBJECT_AT) + len(_OBJECT_AT)
                if body[at : at + len(raw)] != raw:
                    raise ValueError(f"event {i}: its object is not where it was expected")
                place = (meta.offsets[i] + at) << _LENGTH_BITS | len(raw)
                created = carried_created if isinstance(carried_created, int) else 0
                objects.setdefault(kind, {})[oid] = created << _PLACE_BITS | place
                if kind == "customer":
                    api_version_of[oid] = meta.version_names[meta.versions[i]]
            if kind == "charge":
                known = objects.setdefault("refund", {})
                for refund in refunds:
                    known.setdefault(orjson.loads(refund)["id"], refund)
    finally:
        world.close()
    with (directory / _OBJECTS).open("wb") as f:
        pickle.dump(
            {"objects": objects, "api_version_of": api_version_of},
            f,
            protocol=pickle.HIGHEST_PROTOCOL,
        )


def main(argv: list[str] | None = None) -> None:
    """``python -m services.stripe_simulator.packed DIR --tenants N``: pack a world (what a
    benchmark runs in a child process, so the generation's memory goes with the child)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m services.stripe_simulator.packed")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--months", type=int, default=2)
    args = parser.parse_args(argv)
    config = WorldConfig(seed=args.seed, tenants=args.tenants, months=args.months)
    pack_world(config, args.directory)


if __name__ == "__main__":
    # Through the imported module: the pickled metadata must name its classes by the
    # module's real name, not ``__main__``.
    from services.stripe_simulator.packed import main as packed_main

    packed_main()


__all__ = [
    "PackedObjects",
    "PackedWorld",
    "is_packed",
    "pack_world",
    "splice_expanded",
    "world_directory",
]
