"""The compiled (mypyc) form of the domain core: which form is loaded, and a stale build is
never used (services/ledger/domain/native.py, `make compile`)."""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.ledger.domain import native

EXTENSION = importlib.machinery.EXTENSION_SUFFIXES[0]


def test_the_loaded_form_is_the_one_the_build_status_says() -> None:
    """Says which form this run uses (see the test id's output with -rA / -v) and checks
    that every compiled module really is that form: a fresh build is used unless
    LEDGER_COMPILED=0, and anything else runs the source."""
    status = native.STATUS
    print(f"ledger domain: {status.mode} ({len(status.modules)} modules) {status.problems}")
    for name in status.modules:
        importlib.import_module(name)
    expected = "compiled" if status.mode == "compiled" else "pure"
    assert native.loaded_mode(status.modules) == expected
    if os.environ.get(native.ENV_SWITCH) == "0":
        assert status.mode in ("pure", "disabled", "stale")
    if status.mode == "compiled":  # the source the build compiled is the source here
        for name in status.modules:
            module = sys.modules[name]
            assert module.__file__ is not None and module.__file__.endswith(".so")


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    """A package ``pkgx`` with a module ``rules`` and a fake extension of it that cannot be
    loaded (not an ELF file): importing the extension fails, importing the source works."""
    package = tmp_path / "pkgx"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "rules.py").write_text("ANSWER = 'source'\n")
    (package / f"rules{EXTENSION}").write_bytes(b"not an extension")
    sys.path.insert(0, str(tmp_path))
    yield package
    sys.path.remove(str(tmp_path))
    for name in [n for n in sys.modules if n == "pkgx" or n.startswith("pkgx.")]:
        del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, native.SourceFinder)]


def _manifest(package: Path, digest: str) -> Path:
    path = package / "native-manifest.json"
    path.write_text(
        json.dumps(
            {
                "cache_tag": sys.implementation.cache_tag,
                "shared": [],
                "modules": {"pkgx.rules": digest},
            }
        )
    )
    return path


def test_a_build_that_matches_its_sources_is_fresh(tree: Path) -> None:
    manifest = _manifest(tree, native.source_digest(tree / "rules.py"))
    assert native.check(tree, "pkgx", manifest) == native.NativeStatus("compiled", ("pkgx.rules",))
    disabled = native.check(tree, "pkgx", manifest, enabled=False)
    assert disabled.mode == "disabled"


def test_a_source_edited_after_the_build_makes_it_stale(tree: Path) -> None:
    manifest = _manifest(tree, native.source_digest(tree / "rules.py"))
    (tree / "rules.py").write_text("ANSWER = 'edited'\n")
    status = native.check(tree, "pkgx", manifest)
    assert status.mode == "stale"
    assert status.problems == ("pkgx.rules: source changed since the build",)


def test_an_extension_without_a_manifest_is_stale(tree: Path) -> None:
    status = native.check(tree, "pkgx", tree / "native-manifest.json")
    assert status.mode == "stale" and status.modules == ("pkgx.rules",)
    assert "no readable manifest" in status.problems[0]


def test_an_extension_the_manifest_does_not_name_is_stale(tree: Path) -> None:
    manifest = _manifest(tree, native.source_digest(tree / "rules.py"))
    (tree / f"extra{EXTENSION}").write_bytes(b"")
    status = native.check(tree, "pkgx", manifest)
    assert status.problems == ("pkgx.extra: extension not in the manifest",)


def test_another_interpreters_build_is_stale(tree: Path) -> None:
    manifest = _manifest(tree, native.source_digest(tree / "rules.py"))
    recorded = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**recorded, "cache_tag": "cpython-399"}))
    assert native.check(tree, "pkgx", manifest).mode == "stale"


def test_no_extension_is_pure(tree: Path) -> None:
    (tree / f"rules{EXTENSION}").unlink()
    assert native.check(tree, "pkgx", tree / "native-manifest.json").mode == "pure"


def test_a_stale_build_runs_the_source(tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Without the finder the (broken) extension is what Python imports; with a stale build
    ``activate`` makes the import find the source and warns."""
    _manifest(tree, "0" * 64)
    with pytest.raises(ImportError):
        importlib.import_module("pkgx.rules")  # what Python does on its own
    del sys.modules["pkgx"]
    status = native.activate(tree, "pkgx")
    assert status.mode == "stale"
    assert "stale" in caplog.text and "pkgx.rules" in caplog.text
    assert importlib.import_module("pkgx.rules").ANSWER == "source"


def test_disabled_runs_the_source(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _manifest(tree, native.source_digest(tree / "rules.py"))
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert native.activate(tree, "pkgx").mode == "disabled"
    assert importlib.import_module("pkgx.rules").ANSWER == "source"


def test_the_projection_modules_are_compiled_and_checked_with_the_domain() -> None:
    """``effects`` and ``projection`` are in the build's list, and every listed module lies
    under the tree the check covers (so an extension of any of them is compared with the
    manifest before use)."""
    import tomllib

    repo = native.ROOT.parent.parent
    listed = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["billing"]["native"]
    paths = [repo / path for path in listed["modules"]]
    assert repo / "services/ledger/effects.py" in paths
    assert repo / "services/ledger/projection.py" in paths
    assert repo / "services/ledger/tables.py" in paths
    for path in paths:
        assert path.is_file() and path.is_relative_to(native.ROOT), path


@pytest.fixture
def nested(tmp_path: Path) -> Iterator[Path]:
    """Like ``tree`` but shaped like services/ledger: a module at the top (``effects``) and
    one in a subpackage (``domain.rules``), each with a fake extension beside it."""
    package = tmp_path / "pkgy"
    (package / "domain").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "domain" / "__init__.py").write_text("")
    for source in (package / "effects.py", package / "domain" / "rules.py"):
        source.write_text("ANSWER = 'source'\n")
        source.with_name(f"{source.stem}{EXTENSION}").write_bytes(b"not an extension")
    sys.path.insert(0, str(tmp_path))
    yield package
    sys.path.remove(str(tmp_path))
    for name in [n for n in sys.modules if n == "pkgy" or n.startswith("pkgy.")]:
        del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, native.SourceFinder)]


def _nested_manifest(package: Path) -> Path:
    path = package / "native-manifest.json"
    digests = {
        "pkgy.effects": native.source_digest(package / "effects.py"),
        "pkgy.domain.rules": native.source_digest(package / "domain" / "rules.py"),
    }
    path.write_text(
        json.dumps({"cache_tag": sys.implementation.cache_tag, "shared": [], "modules": digests})
    )
    return path


def test_a_top_level_module_edited_makes_the_whole_tree_run_the_source(nested: Path) -> None:
    manifest = _nested_manifest(nested)
    assert native.check(nested, "pkgy", manifest).mode == "compiled"
    (nested / "effects.py").write_text("ANSWER = 'edited'\n")
    status = native.activate(nested, "pkgy")
    assert status.problems == ("pkgy.effects: source changed since the build",)
    assert status.modules == ("pkgy.domain.rules", "pkgy.effects")
    # all or nothing: the unchanged module in the subpackage runs its source too
    assert importlib.import_module("pkgy.effects").ANSWER == "edited"
    assert importlib.import_module("pkgy.domain.rules").ANSWER == "source"


def test_an_extension_in_a_subpackage_the_manifest_does_not_name_is_stale(nested: Path) -> None:
    manifest = _nested_manifest(nested)
    (nested / "domain" / f"extra{EXTENSION}").write_bytes(b"")
    status = native.check(nested, "pkgy", manifest)
    assert status.problems == ("pkgy.domain.extra: extension not in the manifest",)


def test_importing_effects_first_still_goes_through_the_check() -> None:
    """A fresh interpreter whose first import is ``services.ledger.effects`` (as a replay
    worker's is): the package's ``__init__`` has run the check before Python looked for the
    module, so ``LEDGER_COMPILED=0`` gives the source of both projection modules."""
    import subprocess

    code = (
        "import services.ledger.effects, services.ledger.projection, sys\n"
        "from services.ledger.domain import native\n"
        "print(native.STATUS.mode, native.loaded_mode(['services.ledger.effects',"
        " 'services.ledger.projection']))\n"
    )
    env = {**os.environ, native.ENV_SWITCH: "0"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=native.ROOT.parent.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] in ("disabled", "pure")  # "pure": no build in this checkout
    assert out[1] == "pure"
