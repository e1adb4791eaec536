"""Resolve an ADT's `imports` without the network.

MiCADO ADTs import MiCADO's type files from GitHub (any branch or tag of micado-scale/tosca).
Those URLs are recognised and served from the definitions bundled in this package; relative
paths are read from the local disk; anything else is refused, because nothing is ever fetched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from .errors import PathPart, Problems
from .yamlio import describe_yaml_error, load_yaml

_MICADO_URL = re.compile(
    r"^https?://(?:raw\.githubusercontent\.com/micado-scale/tosca/"
    r"|github\.com/micado-scale/tosca/(?:raw|blob)/)"
    r"(?:refs/(?:heads|tags)/)?(?P<ref>[^?#]+?)/"
    r"(?P<file>micado_types\.yaml|custom_types/[A-Za-z0-9_\-]+/[A-Za-z0-9_\-]+\.ya?ml)"
    r"(?:[?#].*)?$"
)
BUNDLED_ROOT = "micado"
NORMATIVE_FILE = "tosca_normative.yaml"


@dataclass(frozen=True)
class Source:
    """Where a definitions file comes from: bundled in the package or a local file."""

    bundled: bool
    path: str  # posix path inside the bundle, or absolute local path

    @property
    def label(self) -> str:
        return f"bundled:{self.path}" if self.bundled else self.path


@dataclass
class LoadedFile:
    source: Source
    document: dict[str, Any]


def _bundle_file(path: str) -> Any:
    return resources.files("micado.adt").joinpath("types", *PurePosixPath(path).parts)


@lru_cache(maxsize=64)
def _bundled_document(path: str) -> Any:
    """A bundled definitions file, parsed once per process (callers only read it)."""
    return load_yaml(_bundle_file(path).read_text(encoding="utf-8"))


def micado_bundle_path(url: str) -> str | None:
    """The bundled path serving a micado-scale/tosca URL, or None if the URL is not one."""
    match = _MICADO_URL.match(url.strip())
    if not match:
        return None
    return f"{BUNDLED_ROOT}/{match.group('file').replace('.yml', '.yaml')}"


def micado_release(url: str) -> str | None:
    """The branch or tag a micado-scale/tosca URL names (v0.7.2, develop, ...), or None."""
    match = _MICADO_URL.match(url.strip())
    return match.group("ref") if match else None


def import_target(entry: Any) -> str | None:
    """The file named by one `imports` entry (string, {file: x} or {name: {file: x}})."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        if isinstance(entry.get("file"), str):
            return entry["file"]
        if len(entry) == 1:
            (value,) = entry.values()
            if isinstance(value, str):
                return value
            if isinstance(value, dict) and isinstance(value.get("file"), str):
                return value["file"]
    return None


class ImportResolver:
    """Loads imported definition files once each, in dependency order."""

    def __init__(self, problems: Problems, base_dir: Path | None) -> None:
        self._problems = problems
        self._base_dir = base_dir
        self._seen: set[Source] = set()
        self.files: list[LoadedFile] = []

    def load_normative(self) -> None:
        self._load(Source(True, NORMATIVE_FILE), ("imports",))

    def resolve(self, imports: Any, path: tuple[PathPart, ...], origin: Source | None) -> None:
        """Load every entry of an `imports` list; `origin` is the importing file (None: the ADT)."""
        if imports is None:
            return
        if not isinstance(imports, list):
            self._problems.error(path, "must be a list of files to import")
            return
        for index, entry in enumerate(imports):
            source = self._locate(entry, (*path, index), origin)
            if source is not None:
                self._load(source, (*path, index))

    def _locate(
        self, entry: Any, path: tuple[PathPart, ...], origin: Source | None
    ) -> Source | None:
        target = import_target(entry)
        if target is None:
            self._problems.error(path, "an import must be a file name or URL, or {file: ...}")
            return None
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", target):
            bundled = micado_bundle_path(target)
            if bundled is None:
                self._problems.error(
                    path,
                    f"cannot import {target!r}: only MiCADO's type files (micado-scale/tosca, any "
                    "branch or tag) are served offline, and nothing is fetched from the network; "
                    "download the file and import it by a relative path",
                )
                return None
            return Source(True, bundled)
        if origin is not None and origin.bundled:
            joined = PurePosixPath(origin.path).parent / target
            return Source(True, str(PurePosixPath(*_normalise(joined.parts))))
        base = Path(origin.path).parent if origin is not None else self._base_dir
        if base is None:
            self._problems.error(
                path, f"cannot import {target!r}: the ADT was not read from a file, so a relative "
                "import has no directory to be relative to",
            )
            return None
        return Source(False, str((base / target).resolve()))

    def _load(self, source: Source, path: tuple[PathPart, ...]) -> None:
        if source in self._seen:
            return
        self._seen.add(source)
        try:
            if source.bundled:
                document = _bundled_document(source.path)
            else:
                document = load_yaml(Path(source.path).read_text(encoding="utf-8"))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            what = "MiCADO type file" if source.bundled else "file"
            self._problems.error(path, f"{what} {source.path!r} not found")
            return
        except (OSError, UnicodeDecodeError) as exc:
            self._problems.error(path, f"cannot read {source.path!r}: {exc}")
            return
        except yaml.YAMLError as exc:
            reason = describe_yaml_error(exc)
            self._problems.error(path, f"{source.label} is not valid YAML: {reason}")
            return
        if not isinstance(document, dict):
            self._problems.error(path, f"{source.label} is not a TOSCA definitions document")
            return
        # imports first, so that the types a file derives from are registered before it
        self.resolve(document.get("imports"), path, source)
        self.files.append(LoadedFile(source, document))


def _normalise(parts: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for part in parts:
        if part == "..":
            if out:
                out.pop()
        elif part not in (".", ""):
            out.append(part)
    return out
