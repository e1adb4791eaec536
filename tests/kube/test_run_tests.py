"""scripts/run-tests, what `make test` runs: the control plane builds (or is reused) in the
background while the tests not marked `cluster` run, then the `cluster` tests run on it; a failed
build or a failed test in either part fails the run. Run here on a small suite of its own and a
build cache of the test's (a finished build made by hand, or none with no module proxy)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from kube.test_build_script import fake_build, run

RUN_TESTS = REPO / "scripts" / "run-tests"
SUITE = '''
import os
from pathlib import Path

import pytest


def note(what):
    with Path(os.environ["RECORD"]).open("a") as record:
        record.write(what + "\\n")


def test_plain():
    note("plain")
    assert os.environ.get("PLAIN_FAILS") != "1"


@pytest.mark.cluster
def test_on_the_cluster():
    # the build's last line (the directory it made or reused) is in its log by now
    log = Path(os.environ["MICADO_TEST_LOGS"]) / "cluster-bins.log"
    note("cluster after " + log.read_text().splitlines()[-1])
    assert os.environ.get("CLUSTER_FAILS") != "1"
'''


def run_tests(tmp_path: Path, cache: Path, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                                 list[str]]:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\nmarkers =\n    cluster: on the control plane\n")
    (suite / "test_suite.py").write_text(SUITE)
    record = tmp_path / "record"
    record.touch()
    done = subprocess.run(
        [str(RUN_TESTS), "-p", "no:cacheprovider", str(suite)], cwd=REPO, capture_output=True,
        text=True, timeout=300, check=False,
        env={**os.environ, "PYTHON": sys.executable, "MICADO_TEST_LOGS": str(tmp_path / "logs"),
             "MICADO_CLUSTER_BINS_CACHE": str(cache), "RECORD": str(record),
             "GOPROXY": "off", **env})  # no module proxy: a build that is not reused fails
    return done, record.read_text().splitlines()


@pytest.mark.parametrize(("failing", "status"), [
    ({}, 0), ({"PLAIN_FAILS": "1"}, 1), ({"CLUSTER_FAILS": "1"}, 1)])
def test_the_cluster_tests_run_after_the_others_and_the_build(
        tmp_path: Path, failing: dict[str, str], status: int) -> None:
    cache = tmp_path / "cache"
    directory = Path(run(cache, "--dir").stdout.strip())
    fake_build(directory)
    done, record = run_tests(tmp_path, cache, **failing)
    assert done.returncode == status, done.stdout + done.stderr
    # a failing plain test does not stop the cluster tests: both results count
    assert record == ["plain", f"cluster after {directory}"]
    assert f"log: {tmp_path / 'logs' / 'cluster-bins.log'}" in done.stdout


def test_a_failed_build_fails_the_run_and_names_its_log(tmp_path: Path) -> None:
    done, record = run_tests(tmp_path, tmp_path / "empty-cache")
    assert done.returncode == 1, done.stdout + done.stderr
    assert record == ["plain"]  # the other tests ran; the cluster tests had nothing to run on
    log = tmp_path / "logs" / "cluster-bins.log"
    assert f"the control-plane build failed (exit 1), log: {log}" in done.stderr
    assert "names no module proxy" in log.read_text()
