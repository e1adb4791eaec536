"""tests/cpu_log.py: with MICADO_TEST_CPU_LOG set, one line per test with its wall time, the
pytest process's CPU time and its reaped children's; without it, nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO

pytest_plugins = ["pytester"]

TESTS = """
import subprocess, sys

def test_a_busy_child():
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(4_000_000))"], check=True)

def test_nothing():
    pass
"""


def test_each_test_appends_its_times_and_the_childrens_cpu(
        pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "cpu.tsv"
    monkeypatch.setenv("MICADO_TEST_CPU_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests"))  # where the plugin is
    pytester.makepyfile(test_work=TESTS)
    pytester.runpytest_subprocess("-p", "cpu_log", "-p", "no:cacheprovider").assert_outcomes(
        passed=2)
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    assert [fields[3] for fields in lines] == ["test_work.py::test_a_busy_child",
                                               "test_work.py::test_nothing"]
    busy, idle = ([float(f) for f in fields[:3]] for fields in lines)
    assert busy[2] > 0.05  # the child's CPU time, reaped within the test
    assert idle[2] == 0.0
    assert all(value >= 0 for value in busy + idle)


def test_nothing_is_written_without_the_variable(
        pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MICADO_TEST_CPU_LOG", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests"))
    pytester.makepyfile(test_work=TESTS)
    pytester.runpytest_subprocess("-p", "cpu_log", "-p", "no:cacheprovider").assert_outcomes(
        passed=2)
    written = [p for p in pytester.path.rglob("*") if p.is_file()
               and "\ttest_work.py::" in p.read_text(errors="replace")]
    assert written == []
