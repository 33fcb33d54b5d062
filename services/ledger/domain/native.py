"""Which form of the ledger's projection runs: the mypyc-compiled extension modules, or the
source.

``make compile`` (``tools/native_build.py``) compiles the hot, pure modules of the domain core
and the two projection modules that turn its answers into rows (``services.ledger.effects``,
``services.ledger.projection``; list in ``pyproject.toml``) with mypyc into extension modules
beside their sources (git-ignored), and writes a manifest
of the SHA-256 of every source it compiled (issue 12: the projection's CPU per event). The
source stays the one home of every rule: an extension is only a faster form of the same file.

Python prefers an extension module to the ``.py`` of the same name, so an extension built
from OLDER source would silently run old rules. Before any compiled module is imported
(``services.ledger`` imports this module first, so before ``effects`` or ``projection``
can be found) :func:`activate` compares the
extension files with the manifest; when anything differs (a source edited since the build, a
manifest missing, an extension the manifest does not name, another interpreter's build), it
makes every compiled module load from its source and logs a WARNING naming what is stale.
All or nothing: compiled modules call each other directly inside their shared library, so a
stale module cannot be replaced alone.

``LEDGER_COMPILED=0`` in the environment loads the source on purpose (the unit tests run both
ways; benchmarks compare the two). Without a build, nothing here does anything.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

#: The package whose tree is checked: every extension module under it must be the manifest's.
PACKAGE = "services.ledger"
ROOT = Path(__file__).resolve().parent.parent
#: Written by ``tools/native_build.py`` at ``ROOT`` (git-ignored).
MANIFEST_NAME = "native-manifest.json"
#: ``0`` loads the source even when a fresh build is there.
ENV_SWITCH = "LEDGER_COMPILED"
#: Every value of :attr:`NativeStatus.mode`.
MODES = ("compiled", "pure", "disabled", "stale")


@dataclass(frozen=True, slots=True)
class NativeStatus:
    """What a build left in the package, and which form of the code is therefore used.

    ``mode``: ``compiled`` (a fresh build, used), ``pure`` (no build at all), ``disabled``
    (a fresh build, not used: ``LEDGER_COMPILED=0``) or ``stale`` (a build that does not match
    the sources, not used; ``problems`` says why).
    """

    mode: str
    modules: tuple[str, ...]
    problems: tuple[str, ...] = ()


def source_digest(path: Path) -> str:
    """SHA-256 of a source file's bytes (what the manifest records per module)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _module_name(root: Path, package: str, path: Path, suffix: str) -> str:
    parts = path.relative_to(root).with_name(path.name[: -len(suffix)]).parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((package, *parts))


def _extensions(root: Path, package: str) -> dict[str, Path]:
    """Extension modules under ``root`` by module name (shared libraries included)."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES  # the most specific first
    paths = {path for suffix in suffixes for path in root.rglob(f"*{suffix}")}
    found: dict[str, Path] = {}
    for path in sorted(paths):
        suffix = next(s for s in suffixes if path.name.endswith(s))
        found[_module_name(root, package, path, suffix)] = path
    return found


def check(root: Path, package: str, manifest: Path, *, enabled: bool = True) -> NativeStatus:
    """Compare the extension modules under ``root`` with the build's manifest."""
    extensions = _extensions(root, package)
    if not extensions:
        return NativeStatus("pure", ())
    problems: list[str] = []
    try:
        recorded = json.loads(manifest.read_text())
        modules: dict[str, str] = recorded["modules"]
        shared: list[str] = recorded["shared"]
        tag: str = recorded["cache_tag"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        names = tuple(sorted(extensions))
        return NativeStatus("stale", names, (f"no readable manifest {manifest}: {exc}",))
    if tag != sys.implementation.cache_tag:
        problems.append(f"built for {tag}, running {sys.implementation.cache_tag}")
    for name in sorted(set(extensions) - set(modules) - set(shared)):
        problems.append(f"{name}: extension not in the manifest")
    for name, digest in sorted(modules.items()):
        source = _source_path(root, package, name)
        if name not in extensions:
            problems.append(f"{name}: extension missing")
        elif source is None:
            problems.append(f"{name}: source missing")
        elif source_digest(source) != digest:
            problems.append(f"{name}: source changed since the build")
    names = tuple(sorted(modules))
    if problems:
        return NativeStatus("stale", names, tuple(problems))
    return NativeStatus("compiled" if enabled else "disabled", names)


def _source_path(root: Path, package: str, name: str) -> Path | None:
    relative = name.removeprefix(package).lstrip(".").split(".") if name != package else []
    base = root.joinpath(*relative) if relative else root
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


class SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the listed modules' ``.py`` source, ahead of the extension beside it."""

    def __init__(self, root: Path, package: str, names: Sequence[str]) -> None:
        self._root = root
        self._package = package
        self._names = frozenset(names)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._names:
            return None
        source = _source_path(self._root, self._package, fullname)
        if source is None:
            return None
        locations = [str(source.parent)] if source.name == "__init__.py" else None
        return importlib.util.spec_from_file_location(
            fullname, source, submodule_search_locations=locations
        )


def activate(
    root: Path = ROOT, package: str = PACKAGE, manifest_name: str = MANIFEST_NAME
) -> NativeStatus:
    """Decide which form is used and, unless it is the compiled one, make the imports of
    every compiled module find its source (a ``sys.meta_path`` finder)."""
    enabled = os.environ.get(ENV_SWITCH, "1") != "0"
    status = check(root, package, root / manifest_name, enabled=enabled)
    if status.mode == "stale":
        log.warning(
            "compiled ledger domain modules are stale, running the source instead"
            " (run `make compile`): %s",
            "; ".join(status.problems),
        )
    if status.mode in ("stale", "disabled"):
        sys.meta_path.insert(0, SourceFinder(root, package, status.modules))
    return status


def loaded_mode(names: Sequence[str]) -> str:
    """``compiled``, ``pure`` or ``mixed``: what the already imported ``names`` really are."""
    extension = importlib.machinery.ExtensionFileLoader
    compiled = [
        isinstance(getattr(sys.modules[n], "__loader__", None), extension)
        for n in names
        if n in sys.modules
    ]
    if compiled and all(compiled):
        return "compiled"
    return "mixed" if any(compiled) else "pure"


STATUS = activate()
