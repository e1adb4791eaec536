"""The controller role's wheelhouse builder (roles/controller/files/micado_wheelhouse.py), run as
the role runs it: on the control node, with the master's Python as --target.

It is what makes the role's default install work without a micado release on PyPI, and what
keeps a rerun from rebuilding or reinstalling; a tiny project named micado stands in for the real
one so that the builds take seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from conftest import REPO

ROLE = REPO / "collections" / "ansible_collections" / "micado" / "core" / "roles" / "controller"
SCRIPT = ROLE / "files" / "micado_wheelhouse.py"
DEBIAN_12 = "cpython 3 11 linux-x86_64 glibc 2.36"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("micado_wheelhouse", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=600, check=False)


def build(*args: str) -> dict[str, object]:
    done = run(*args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return sorted(tar.getnames())


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A source tree shaped like this repository's: pyproject.toml naming micado, no deps."""
    return make_tree(tmp_path_factory.mktemp("src"))


def make_tree(root: Path, text: str = "micado") -> Path:
    (root / "controller" / "micado").mkdir(parents=True, exist_ok=True)
    (root / "controller" / "micado" / "__init__.py").write_text(f'"""{text}"""\n')
    (root / "README.md").write_text("micado\n")
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "micado"\nversion = "9.9.9"\nreadme = "README.md"\n'
        'requires-python = ">=3.11"\n'
        '[tool.setuptools.packages.find]\nwhere = ["controller"]\n')
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache") / "wheelhouse"


@pytest.fixture(scope="module")
def first(tree: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The first build from the tree (the role's default on a fresh control node)."""
    return build("--target", DEBIAN_12, "--source", str(tmp_path_factory.mktemp("nowhere")),
                 "--source", str(tree), "--cache", str(cache), "--expect-version", "9.9.9")


@pytest.fixture(scope="module")
def wheel(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel make collection ships in the tarball, built from the same tree."""
    files = tmp_path_factory.mktemp("files")
    shipped = build("--build-wheel", str(files), "--source", str(tree))
    return Path(str(shipped["wheel"]))


def test_the_masters_python_gives_every_platform_its_wheels_may_carry() -> None:
    target = load_script().Target.parse(DEBIAN_12)
    platforms = target.platforms()
    for tag in ("manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
                "manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64"):
        assert tag in platforms
    assert "manylinux_2_37_x86_64" not in platforms  # newer than the master's glibc
    options = target.pip_options()
    assert options[:3] == ["--only-binary=:all:", "--python-version", "3.11"]
    assert "cp311" in options
    arm = load_script().Target.parse("cpython 3 12 linux-aarch64 glibc 2.39").platforms()
    assert "manylinux_2_39_aarch64" in arm and "manylinux2014_aarch64" in arm


@pytest.mark.parametrize(("target", "message"), [
    ("cpython 3 10 linux-x86_64 glibc 2.35", "needs >= 3.11"),
    ("pypy 3 11 linux-x86_64 glibc 2.36", "needs CPython"),
    ("cpython 3 11 macosx-14-arm64", "only Linux"),
    ("Python 3.11.2", "cannot read the master's Python"),
])
def test_a_master_micado_cannot_run_on_is_refused_with_the_reason(
        tree: Path, tmp_path: Path, target: str, message: str) -> None:
    done = run("--target", target, "--source", str(tree), "--cache", str(tmp_path / "cache"))
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "cache").exists()


def test_the_first_run_builds_and_a_rerun_reuses_the_same_bytes(
        tree: Path, cache: Path, first: dict[str, object]) -> None:
    assert first["changed"] is True and first["kind"] == "tree" and first["version"] == "9.9.9"
    tar = Path(str(first["tar"]))
    assert tar.parent.parent == cache and tar_names(tar) == ["micado-9.9.9-py3-none-any.whl"]
    digest = sha256(tar)
    again = build("--target", DEBIAN_12, "--source", str(tree), "--cache", str(cache),
                  "--expect-version", "9.9.9")
    assert again["changed"] is False and again["tar"] == first["tar"] and sha256(tar) == digest


def test_a_changed_source_is_rebuilt_under_a_new_key(
        cache: Path, first: dict[str, object], tmp_path: Path) -> None:
    changed_tree = make_tree(tmp_path / "src", text="micado, changed")
    changed = build("--target", DEBIAN_12, "--source", str(changed_tree), "--cache", str(cache))
    assert changed["changed"] is True and changed["key"] != first["key"]
    assert sha256(Path(str(changed["tar"]))) != sha256(Path(str(first["tar"])))


def test_the_same_source_gives_the_same_wheel_on_another_control_node(
        first: dict[str, object], wheel: Path) -> None:
    """The wheel is reproducible: a fresh cache, or the tarball's wheel, reinstalls nothing."""
    with tarfile.open(str(first["tar"])) as tar:
        member = tar.extractfile(wheel.name)
        assert member is not None
        assert hashlib.sha256(member.read()).hexdigest() == sha256(wheel)


def test_a_wheel_shipped_in_the_collection_comes_before_the_repository(
        tree: Path, wheel: Path, tmp_path: Path) -> None:
    result = build("--target", DEBIAN_12, "--source", str(wheel.parent), "--source", str(tree),
                   "--cache", str(tmp_path / "cache"))
    assert result["kind"] == "wheel" and result["source"] == str(wheel)
    assert tar_names(Path(str(result["tar"]))) == [wheel.name]


def test_a_failed_download_says_what_to_give_the_control_node_and_caches_nothing(
        wheel: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    done = run("--target", DEBIAN_12, "--source", str(wheel), "--cache", str(cache),
               "--pip-arg=--no-such-option")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "pip download failed on the control node" in done.stderr
    assert "controller_build_pip_args" in done.stderr
    assert [p.name for p in cache.iterdir()] == [".lock"]  # no half-built entry


def test_a_version_other_than_controller_version_is_refused_before_building(
        tree: Path, tmp_path: Path) -> None:
    done = run("--target", DEBIAN_12, "--source", str(tree), "--cache", str(tmp_path / "cache"),
               "--expect-version", "0.1.0")
    assert done.returncode == 2
    assert "version 9.9.9, but controller_version is 0.1.0" in done.stderr
    assert not (tmp_path / "cache").exists()


def test_no_source_names_where_it_looked_and_what_to_set(tmp_path: Path) -> None:
    done = run("--target", DEBIAN_12, "--source", str(tmp_path), "--cache", str(tmp_path / "c"))
    assert done.returncode == 2
    assert str(tmp_path) in done.stderr and "controller_source" in done.stderr


def test_a_prepared_wheelhouse_is_packed_once_and_must_hold_micado(
        wheel: Path, tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / "other-1.0-py3-none-any.whl").write_bytes(b"not micado")
    cache = str(tmp_path / "cache")
    refused = run("--target", DEBIAN_12, "--wheelhouse", str(wheelhouse), "--cache", cache)
    assert refused.returncode == 2 and "scripts/build-wheelhouse" in refused.stderr

    shutil.copy(wheel, wheelhouse / wheel.name)
    first = build("--target", DEBIAN_12, "--wheelhouse", str(wheelhouse), "--cache", cache)
    assert first["changed"] is True and first["kind"] == "wheelhouse"
    assert tar_names(Path(str(first["tar"]))) == ["micado-9.9.9-py3-none-any.whl",
                                                  "other-1.0-py3-none-any.whl"]
    again = build("--target", DEBIAN_12, "--wheelhouse", str(wheelhouse), "--cache", cache)
    assert again["changed"] is False


def test_the_default_controller_version_is_the_version_the_repository_builds() -> None:
    """Else the default install (the wheel from this repository or the tarball) is refused."""
    project = load_script().read_tree(REPO)
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    assert project is not None
    assert defaults["controller_version"] == options["controller_version"]["default"] \
        == project.version
    assert defaults["controller_build_wheelhouse"] is True
    assert defaults["controller_wheelhouse"] == ""
