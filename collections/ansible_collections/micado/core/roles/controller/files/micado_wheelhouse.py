"""Build (or reuse) the controller's wheelhouse on the Ansible control node.

The `micado` package is not on PyPI and the master may have no internet, so the role installs it
offline from one tar of wheels: the micado wheel (shipped inside the collection tarball, taken
from the repository the collection sits in, or from a prepared wheelhouse) plus every dependency
downloaded from the control node's package index for the master's Python and platform. The tar
is cached under a key of the micado version, the hash of its source and the master's tags, so an
unchanged site neither rebuilds nor reinstalls. Prints one JSON object; errors go to stderr with
exit status 2.

Run by micado.core.controller with the control node's Python (ansible_playbook_python).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "micado"
# Files of a source tree that make the wheel (pyproject.toml packages controller/micado).
SOURCE_FILES = ("pyproject.toml", "README.md")
SOURCE_DIRS = ("controller/micado",)
# Wheel timestamps from this epoch (1980-01-01, the zip minimum): the same source, the same bytes.
SOURCE_DATE_EPOCH = "315532800"
CACHE_DAYS = 30
# Legacy manylinux names and the glibc minor version they stand for (PEP 600).
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


class WheelhouseError(Exception):
    """A problem the user can fix; printed without a traceback."""


@dataclass(frozen=True)
class Target:
    """The master's interpreter: what the dependency wheels must be built for."""

    implementation: str
    major: int
    minor: int
    arch: str
    libc: str
    libc_version: str

    @classmethod
    def parse(cls, text: str) -> Target:
        """`cpython 3 11 linux-x86_64 glibc 2.36`, as the role's probe on the master prints it."""
        parts = text.split()
        if len(parts) == 4:
            parts += ["", ""]  # no glibc (platform.libc_ver() found nothing)
        if len(parts) != 6 or not (parts[1].isdigit() and parts[2].isdigit()):
            raise WheelhouseError(f"cannot read the master's Python from {text!r}")
        implementation, major, minor, platform, libc, libc_version = parts
        if implementation != "cpython":
            raise WheelhouseError(f"the master's Python is {implementation}; micado needs CPython")
        if (int(major), int(minor)) < (3, 11):
            raise WheelhouseError(f"the master's Python is {major}.{minor}; micado needs >= 3.11 "
                                  "(set controller_python to a newer interpreter)")
        if not platform.startswith("linux-"):
            raise WheelhouseError(f"the master's platform is {platform}; only Linux is supported")
        return cls(implementation, int(major), int(minor), platform.removeprefix("linux-")
                   .replace("-", "_").replace(".", "_"), libc, libc_version)

    def platforms(self) -> list[str]:
        """Every platform tag a wheel may carry and still install on the master."""
        tags: list[str] = []
        if self.libc == "glibc":
            try:
                major, minor = (int(part) for part in self.libc_version.split(".")[:2])
            except ValueError as err:
                raise WheelhouseError(f"cannot read glibc {self.libc_version!r}") from err
            tags += [f"manylinux_{major}_{m}_{self.arch}" for m in range(minor, 4, -1)]
            tags += [f"{name}_{self.arch}" for glibc, name in LEGACY_MANYLINUX.items()
                     if major == 2 and minor >= glibc]
        tags.append(f"linux_{self.arch}")
        return tags

    def pip_options(self) -> list[str]:
        abi = f"cp{self.major}{self.minor}"
        options = ["--only-binary=:all:", "--python-version", f"{self.major}.{self.minor}",
                   "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none"]
        for platform in self.platforms():
            options += ["--platform", platform]
        return options


@dataclass(frozen=True)
class Source:
    """Where the micado wheel comes from: a wheel file, a source tree or a prepared wheelhouse."""

    kind: str  # wheel | tree | wheelhouse
    path: Path
    version: str
    digest: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_version(path: Path) -> str:
    """micado-0.1.0-py3-none-any.whl -> 0.1.0 (the wheel file name convention)."""
    parts = path.name.split("-")
    if len(parts) < 5 or parts[0] != PACKAGE:
        raise WheelhouseError(f"{path} is not a {PACKAGE} wheel")
    return parts[1]


def micado_wheels(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{PACKAGE}-*.whl"))


def tree_files(root: Path) -> list[Path]:
    files = [root / name for name in SOURCE_FILES if (root / name).is_file()]
    for directory in SOURCE_DIRS:
        files += sorted(p for p in (root / directory).rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    return files


def read_tree(root: Path) -> Source | None:
    """A checkout of this project (pyproject.toml naming micado), or None."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise WheelhouseError(f"{pyproject}: {err}") from err
    if project.get("name") != PACKAGE or not isinstance(project.get("version"), str):
        return None
    digest = hashlib.sha256()
    for path in tree_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(sha256_file(path).encode())
    return Source("tree", root, project["version"], digest.hexdigest())


def read_wheelhouse(directory: Path) -> Source:
    wheels = sorted(directory.glob("*.whl"))
    ours = micado_wheels(directory)
    if len(ours) != 1:
        raise WheelhouseError(f"{directory} holds {len(ours)} {PACKAGE}-*.whl (one is needed): "
                              "build it with scripts/build-wheelhouse")
    digest = hashlib.sha256()
    for wheel in wheels:
        digest.update(f"{wheel.name}\0{sha256_file(wheel)}\n".encode())
    return Source("wheelhouse", directory, wheel_version(ours[0]), digest.hexdigest())


def find_source(candidates: list[str]) -> Source:
    """The first usable candidate: a micado wheel, a directory with one, or a source tree."""
    for text in candidates:
        path = Path(text).expanduser().resolve()
        if path.is_file() and path.suffix == ".whl":
            return Source("wheel", path, wheel_version(path), sha256_file(path))
        if not path.is_dir():
            continue
        wheels = micado_wheels(path)
        if len(wheels) > 1:
            raise WheelhouseError(f"{path} holds several {PACKAGE} wheels: keep one")
        if wheels:
            return Source("wheel", wheels[0], wheel_version(wheels[0]), sha256_file(wheels[0]))
        tree = read_tree(path)
        if tree is not None:
            return tree
    raise WheelhouseError(
        "no micado wheel or source found (looked in: " + ", ".join(candidates) + "). Install the "
        "collection from its tarball (make collection), run from the repository, or set "
        "controller_source or controller_wheelhouse")


def cache_key(source: Source, target: Target, pip_args: list[str]) -> str:
    """Changes when the micado source, the master's tags or the control node's index change."""
    material = json.dumps({"version": source.version, "source": source.digest,
                           "kind": source.kind, "target": target.pip_options(),
                           "pip": pip_args}, sort_keys=True)
    return f"{source.version}-{hashlib.sha256(material.encode()).hexdigest()[:20]}"


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "micado" / "wheelhouse"


def pip(python: str, args: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-3000:]
        raise WheelhouseError(f"pip {args[0]} failed on the control node:\n{tail}")


def build_wheel(python: str, tree: Path, out: Path, work: Path) -> None:
    """The micado wheel from a copy of the tree (setuptools writes build/ into the source)."""
    copy = work / "src"
    for path in tree_files(tree):
        target = copy / path.relative_to(tree)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    pip(python, ["wheel", "--quiet", "--no-deps", "--disable-pip-version-check", "-w", str(out),
                 str(copy)], env)


def write_tar(wheels: list[Path], tar_path: Path) -> None:
    """Sorted, zero mtimes and owners: the same wheels give the same bytes (copy reports ok)."""
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for wheel in sorted(wheels, key=lambda p: p.name):
            info = tarfile.TarInfo(wheel.name)
            info.size = wheel.stat().st_size
            info.mode = 0o644
            with wheel.open("rb") as handle:
                tar.addfile(info, handle)


def assemble(python: str, source: Source, target: Target, pip_args: list[str],
             work: Path) -> Path:
    """The wheels of the wheelhouse in work/wheels."""
    wheels = work / "wheels"
    wheels.mkdir()
    if source.kind == "wheelhouse":
        for wheel in source.path.glob("*.whl"):
            shutil.copy2(wheel, wheels / wheel.name)
        return wheels
    if source.kind == "tree":
        build_wheel(python, source.path, wheels, work)
    else:
        shutil.copy2(source.path, wheels / source.path.name)
    ours = micado_wheels(wheels)
    if len(ours) != 1:
        raise WheelhouseError(f"building {source.path} gave no single {PACKAGE} wheel")
    try:
        pip(python, ["download", "--quiet", "--disable-pip-version-check", "-d", str(wheels),
                     *target.pip_options(), *pip_args, str(ours[0])])
    except WheelhouseError as err:
        raise WheelhouseError(
            f"{err}\nThe control node downloads micado's dependencies from its package index: "
            "give it one (controller_build_pip_args: [--index-url=<mirror>]) or prepare "
            "controller_wheelhouse with scripts/build-wheelhouse on a machine that has one") \
            from err
    return wheels


def wheel_only(candidates: list[str], out: Path) -> Path:
    """The micado wheel of a source tree, for the collection tarball."""
    source = find_source(candidates)
    if source.kind != "tree":
        raise WheelhouseError(f"{source.path} is not a micado source tree")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        built = Path(work) / "wheels"
        build_wheel(sys.executable, source.path, built, Path(work))
        wheels = micado_wheels(built)
        if len(wheels) != 1:
            raise WheelhouseError(f"building {source.path} gave no single {PACKAGE} wheel")
        return Path(shutil.copy2(wheels[0], out / wheels[0].name))


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    """One build at a time per cache (several masters, or parallel plays)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prune(cache: Path, keep: str, now: float) -> None:
    """Entries unused for CACHE_DAYS go (the one in use is touched on every run)."""
    for entry in cache.iterdir():
        stale = now - entry.stat().st_mtime > CACHE_DAYS * 86400
        if entry.is_dir() and entry.name != keep and not entry.name.startswith(".") and stale:
            shutil.rmtree(entry, ignore_errors=True)


def ensure(python: str, source: Source, target: Target, pip_args: list[str], cache: Path,
           expect_version: str) -> dict[str, object]:
    if expect_version and source.version != expect_version:
        raise WheelhouseError(
            f"the micado wheel from {source.path} is version {source.version}, but "
            f"controller_version is {expect_version}: set controller_version to {source.version}")
    key = cache_key(source, target, pip_args)
    entry = cache / key
    tar_path = entry / "wheelhouse.tar"
    changed = False
    with locked(cache):
        if not tar_path.is_file():
            with tempfile.TemporaryDirectory(prefix=".build-", dir=cache) as work:
                wheels = assemble(python, source, target, pip_args, Path(work))
                staging = Path(work) / "entry"
                staging.mkdir()
                write_tar(list(wheels.glob("*.whl")), staging / "wheelhouse.tar")
                shutil.rmtree(entry, ignore_errors=True)
                staging.rename(entry)
            changed = True
        now = time.time()
        os.utime(entry, (now, now))
        prune(cache, key, now)
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
    return {"changed": changed, "tar": str(tar_path), "version": source.version,
            "source": str(source.path), "kind": source.kind, "key": key, "wheels": len(names),
            "bytes": tar_path.stat().st_size}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="",
                        help="the master's Python: 'cpython 3 11 linux-x86_64 glibc 2.36'")
    parser.add_argument("--source", action="append", default=[],
                        help="a micado wheel, a directory with one, or a source tree (the "
                             "first usable one wins; repeatable)")
    parser.add_argument("--wheelhouse", default="",
                        help="a prepared wheelhouse directory instead of --source")
    parser.add_argument("--cache", default="", help="default: $XDG_CACHE_HOME/micado/wheelhouse")
    parser.add_argument("--expect-version", default="", help="fail unless micado is this version")
    parser.add_argument("--build-wheel", metavar="DIR", default="",
                        help="only build the micado wheel of the --source tree into DIR (what "
                             "make collection ships in the tarball)")
    parser.add_argument("--pip-arg", action="append", default=[],
                        help="an extra argument for pip download (an --index-url, say)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.build_wheel:
            print(json.dumps({"wheel": str(wheel_only(args.source, Path(args.build_wheel)))}))
            return 0
        target = Target.parse(args.target)
        if args.wheelhouse:
            directory = Path(args.wheelhouse).expanduser()
            if not directory.is_dir():
                raise WheelhouseError(f"controller_wheelhouse {directory} is not a directory")
            source = read_wheelhouse(directory)
        else:
            source = find_source(args.source)
        cache = Path(args.cache).expanduser() if args.cache else default_cache()
        result = ensure(sys.executable, source, target, args.pip_arg, cache,
                        args.expect_version)
    except (WheelhouseError, OSError) as err:
        print(f"micado wheelhouse: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
