"""Compile the ledger's hot, pure projection modules with mypyc (``make compile``).

Why: the projection (resolve, classify, MRR) is CPU-bound at ~180 us per event in pure
Python, with no single cost above ~10% (issue 12); mypyc compiles the SAME source to C, so
every rule keeps one home. The modules compiled are listed in ``pyproject.toml``
(``[tool.billing.native] modules``); the build needs only the dev dependencies (mypy, which
brings mypyc, and setuptools), gcc and the Python headers.

What it leaves (all git-ignored): one extension module beside each source, one shared
library (``services/ledger/domain/_compiled__mypyc*.so``), the C code under
``build/native/``, and ``services/ledger/native-manifest.json``: the SHA-256 of every
source compiled, which ``services.ledger.domain.native`` checks at import so that an
extension older than its source is never run. Up to date (the same sources, the same
interpreter) means nothing to do. Extensions are installed by rename, never rewritten in
place: a process that has the old ones loaded keeps running them safely.

Run from the repository root: ``python tools/native_build.py [--force]``; ``--clean``
removes everything the build left.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.machinery
import json
import os
import shutil
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: The tree services/ledger/domain/native.py checks (every extension under it), and the name
#: of the shared library (kept under the domain package, where the first build put it).
PACKAGE_DIR = REPO / "services" / "ledger"
GROUP = "services.ledger.domain._compiled"
MANIFEST = PACKAGE_DIR / "native-manifest.json"
#: Where builds before effects/projection were compiled left it; a build removes it.
OLD_MANIFEST = PACKAGE_DIR / "domain" / "native-manifest.json"
BUILD_DIR = REPO / "build" / "native"


def _digest(path: Path) -> str:
    # The same digest as services.ledger.domain.native.source_digest (not imported here:
    # importing the package would load the extensions this build replaces).
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def configured_sources() -> list[Path]:
    """The source files to compile, from ``pyproject.toml``."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed: list[str] = config["tool"]["billing"]["native"]["modules"]
    return [REPO / path for path in listed]


def module_name(source: Path) -> str:
    parts = source.relative_to(REPO).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def wanted_manifest(sources: list[Path]) -> dict[str, object]:
    return {
        "cache_tag": sys.implementation.cache_tag,
        "shared": [f"{GROUP}__mypyc"],
        "modules": {module_name(s): _digest(s) for s in sources},
    }


def _extension_path(name: str) -> Path:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    parts = name.split(".")
    path = REPO.joinpath(*parts)
    if path.is_dir():  # a package: its __init__
        return path / f"__init__{suffix}"
    return path.with_name(parts[-1] + suffix)


def up_to_date(wanted: dict[str, object]) -> bool:
    try:
        current = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return False
    names = [*wanted["modules"], *wanted["shared"]]  # type: ignore[misc]
    return current == wanted and all(_extension_path(n).is_file() for n in names)


def clean() -> None:
    """Remove every extension, the manifest and the C build directory."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for path in PACKAGE_DIR.rglob(f"*{suffix}"):
            path.unlink()
    MANIFEST.unlink(missing_ok=True)
    OLD_MANIFEST.unlink(missing_ok=True)
    shutil.rmtree(BUILD_DIR, ignore_errors=True)


def build(sources: list[Path]) -> None:
    """mypyc -> C -> extensions under ``build/native/lib``, then renamed into place."""
    from mypyc.build import mypycify
    from setuptools import Distribution

    os.chdir(REPO)  # mypy reads pyproject.toml's [tool.mypy] and names modules from here
    extensions = mypycify(
        [str(s.relative_to(REPO)) for s in sources],
        opt_level="3",
        group_name=GROUP,
        target_dir=str(BUILD_DIR / "c"),
    )
    dist = Distribution({"name": "ledger-native", "ext_modules": extensions})
    command = dist.get_command_obj("build_ext")
    command.build_lib = str(BUILD_DIR / "lib")  # type: ignore[attr-defined]
    command.build_temp = str(BUILD_DIR / "tmp")  # type: ignore[attr-defined]
    command.inplace = False  # type: ignore[attr-defined]
    dist.run_command("build_ext")
    MANIFEST.unlink(missing_ok=True)  # a half-installed build is stale, never fresh
    for extension in extensions:
        built = Path(command.get_ext_fullpath(extension.name))  # type: ignore[attr-defined]
        target = _extension_path(extension.name.removesuffix(".__init__"))
        staging = target.with_name(target.name + ".new")
        shutil.copyfile(built, staging)
        os.replace(staging, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="build even when up to date")
    parser.add_argument("--clean", action="store_true", help="remove the build and stop")
    args = parser.parse_args(argv)
    # One build at a time per checkout (`make test` and `make bench` may start together): the
    # second waits, then finds the build up to date.
    REPO.joinpath("build").mkdir(exist_ok=True)
    with open(REPO / "build" / "native.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.clean:
        clean()
        print("native build removed: the ledger domain runs from source")
        return 0
    sources = configured_sources()
    wanted = wanted_manifest(sources)
    if not args.force and up_to_date(wanted):
        print(f"native build up to date ({len(sources)} modules)")
        return 0
    clean()
    build(sources)  # digests taken before: a source edited meanwhile shows up as stale
    MANIFEST.write_text(json.dumps(wanted, indent=1, sort_keys=True) + "\n")
    print(f"native build done: {len(sources)} modules compiled with mypyc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
