"""Collect `bench_*.py` files as test modules.

pytest only collects `test_*.py` by default, and the python_files setting in pyproject.toml
covers the whole project; this keeps the benchmark files named for what they are, out of
`make test`, and collected by `make bench` (pytest benchmarks --benchmark-only).
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
