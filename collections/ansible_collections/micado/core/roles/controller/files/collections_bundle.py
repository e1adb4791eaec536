"""Pack the collections the node actuator's playbook needs into one deterministic tar.gz.

Runs on the control node (the master may have no internet and no Galaxy): the collections
come from where the control node's own ansible finds them (`ansible-galaxy collection list`),
micado.core from the tree this role sits in. Same collections and versions give the same
bytes (sorted members, zero times and owners), so an unchanged site copies nothing. Prints
one JSON line: {"tar": path, "changed": bool, "collections": {name: version}}.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

SKIPPED_DIRS = {"tests", "__pycache__", ".git"}  # not needed to run a playbook


class BundleError(Exception):
    pass


def installed(galaxy: str, names: list[str]) -> dict[str, Path]:
    """Where the control node's ansible finds each collection (the first path wins, as in
    ansible itself)."""
    done = subprocess.run([galaxy, "collection", "list", "--format", "json"],
                          capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise BundleError(f"{galaxy} collection list failed: {done.stderr.strip()[-500:]}")
    found: dict[str, Path] = {}
    for path, collections in json.loads(done.stdout or "{}").items():
        for name in collections:
            if name in names and name not in found:
                namespace, short = name.split(".", 1)
                found[name] = Path(path) / namespace / short
    missing = [name for name in names if name not in found]
    if missing:
        raise BundleError(f"the control node has no collection {', '.join(missing)} (the "
                          "`ansible` package from PyPI ships them)")
    return found


def version_of(root: Path) -> str:
    manifest = root / "MANIFEST.json"
    if manifest.is_file():
        return str(json.loads(manifest.read_text())["collection_info"]["version"])
    galaxy = root / "galaxy.yml"
    for line in galaxy.read_text().splitlines() if galaxy.is_file() else []:
        if line.startswith("version:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    return "unknown"


def pack(sources: dict[str, Path]) -> bytes:
    """A tar.gz of ansible_collections/<namespace>/<name>/..., byte-identical for identical
    trees."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(sources):
            namespace, short = name.split(".", 1)
            root = sources[name]
            for directory, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
                for file in sorted(files):
                    path = Path(directory) / file
                    if path.suffix == ".pyc" or not path.is_file():
                        continue
                    member = f"ansible_collections/{namespace}/{short}/{path.relative_to(root)}"
                    info = tarfile.TarInfo(member)
                    data = path.read_bytes()
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    info.uid = info.gid = 0
                    info.uname = info.gname = "root"
                    tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galaxy", required=True, help="the control node's ansible-galaxy")
    parser.add_argument("--micado-core", required=True, type=Path,
                        help="the micado.core collection this role belongs to")
    parser.add_argument("--cache", required=True, type=Path, help="where the tar is kept")
    parser.add_argument("collections", nargs="*", help="namespace.name of each other collection")
    args = parser.parse_args(argv)
    try:
        sources = installed(args.galaxy, [n for n in args.collections if n != "micado.core"])
    except (BundleError, OSError, ValueError, subprocess.TimeoutExpired) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    sources["micado.core"] = args.micado_core.resolve()
    versions = {name: version_of(path) for name, path in sorted(sources.items())}
    data = pack(sources)
    digest = hashlib.sha256(data).hexdigest()[:16]
    args.cache.mkdir(parents=True, exist_ok=True)
    target = args.cache / f"collections-{digest}.tar.gz"
    changed = not target.is_file()
    if changed:
        partial = target.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(target)
    print(json.dumps({"tar": str(target), "changed": changed, "collections": versions}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
