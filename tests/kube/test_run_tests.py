"""scripts/run-tests, what `make test` runs: the control plane builds (or is reused) in the
background while the tests run in three lanes side by side (the `beside` tests in one, the
`idle` tests in one, the others in the third), each its tests not marked `cluster` first, then,
once the build is there, its `cluster` tests, without waiting for the other lanes; a failed
build or a failed test in any part fails the run. Run here on a small suite of its own and a
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
import sys
import time
from pathlib import Path

import pytest


def note(what):
    with Path(os.environ["RECORD"]).open("a") as record:
        record.write(what + "\\n")


def meet(me, *others):
    """Say `me` started, then wait for `others`: only tests running at once all get past."""
    record = Path(os.environ["RECORD"])
    (record.parent / me).touch()
    deadline = time.monotonic() + 240
    for other in others:
        while not (record.parent / other).exists():
            assert time.monotonic() < deadline, f"{other} did not run beside {me}"
            time.sleep(0.1)


def test_plain():
    meet("plain", "beside", "idle")
    if os.environ.get("NO_BARRIER") == "1":
        # the beside lane starts its cluster tests while this lane is still on its first part
        meet("plain still running", "cluster-beside")
    note("plain")
    assert not sys.dont_write_bytecode  # the run lets Python cache bytecode
    assert os.environ.get("PLAIN_FAILS") != "1"


@pytest.mark.beside
def test_beside():
    meet("beside", "plain", "idle")
    note("beside")
    assert os.environ.get("BESIDE_FAILS") != "1"


@pytest.mark.idle
@pytest.mark.beside  # both: the idle lane's alone
def test_idle():
    meet("idle", "plain", "beside")
    note("idle")
    assert os.environ.get("IDLE_FAILS") != "1"


@pytest.mark.cluster
@pytest.mark.beside
def test_on_the_cluster_beside():
    meet("cluster-beside", "cluster")
    note("cluster beside")


@pytest.mark.cluster
@pytest.mark.idle
def test_on_the_cluster_idle():
    meet("cluster-idle", "cluster")
    note("cluster idle")


@pytest.mark.cluster
def test_on_the_cluster():
    meet("cluster", "cluster-beside", "cluster-idle")
    # the build's last line (the directory it made or reused) is in its log by now
    log = Path(os.environ["MICADO_TEST_LOGS"]) / "cluster-bins.log"
    note("cluster after " + log.read_text().splitlines()[-1])
    assert os.environ.get("CLUSTER_FAILS") != "1"
'''


def run_tests(tmp_path: Path, cache: Path, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                                 list[str]]:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\nmarkers =\n    cluster: on the control plane\n"
                                      "    beside: beside the others\n"
                                      "    idle: beside the others too\n")
    (suite / "test_suite.py").write_text(SUITE)
    record = tmp_path / "record"
    record.touch()
    done = subprocess.run(
        [str(RUN_TESTS), "-p", "no:cacheprovider", str(suite)], cwd=REPO, capture_output=True,
        text=True, timeout=300, check=False,
        env={**os.environ, "PYTHON": sys.executable, "MICADO_TEST_LOGS": str(tmp_path / "logs"),
             "MICADO_CLUSTER_BINS_CACHE": str(cache), "RECORD": str(record),
             # no module proxy: a build that is not reused fails; bytecode off, as on the
             # machines here: the run turns it on
             "GOPROXY": "off", "PYTHONDONTWRITEBYTECODE": "1", **env})
    return done, record.read_text().splitlines()


@pytest.mark.parametrize(("failing", "status"), [
    ({}, 0), ({"PLAIN_FAILS": "1"}, 1), ({"BESIDE_FAILS": "1"}, 1), ({"IDLE_FAILS": "1"}, 1),
    ({"CLUSTER_FAILS": "1"}, 1)])
def test_each_lane_runs_its_cluster_tests_after_its_others_and_the_build(
        tmp_path: Path, failing: dict[str, str], status: int) -> None:
    cache = tmp_path / "cache"
    directory = Path(run(cache, "--dir").stdout.strip())
    fake_build(directory)
    done, record = run_tests(tmp_path, cache, NO_BARRIER="1", **failing)
    assert done.returncode == status, done.stdout + done.stderr
    # the plain, the beside and the idle tests ran side by side (each waited for the others to
    # start); the beside lane went on to its cluster test while the plain test still ran (the
    # plain test waited for it), and the plain lane to its own after; a failing test in one part
    # does not stop the others: all count
    assert sorted(record[:3]) == ["beside", "idle", "plain"]
    assert sorted(record[3:]) == [f"cluster after {directory}", "cluster beside", "cluster idle"]
    assert f"log: {tmp_path / 'logs' / 'cluster-bins.log'}" in done.stdout
    # each background lane's output is in the run's own, not only in its logs
    for lane in ("beside", "idle"):
        other = (tmp_path / "logs" / f"{lane}-other.log").read_text()
        # its one test not on the cluster (the test marked both runs in the idle lane alone)
        assert "1 passed, 5 deselected" in other or "1 failed, 5 deselected" in other, other
        assert f"log: {tmp_path / 'logs' / f'{lane}-other.log'}" in done.stdout
        assert other in done.stdout
        assert (tmp_path / "logs" / f"{lane}-cluster.log").read_text() in done.stdout


def test_a_failed_build_fails_the_run_and_names_its_log(tmp_path: Path) -> None:
    done, record = run_tests(tmp_path, tmp_path / "empty-cache")
    assert done.returncode == 1, done.stdout + done.stderr
    # the other tests ran; the cluster tests had nothing to run on
    assert sorted(record) == ["beside", "idle", "plain"]
    log = tmp_path / "logs" / "cluster-bins.log"
    assert f"the control-plane build failed (exit 1), log: {log}" in done.stderr
    assert "names no module proxy" in log.read_text()


def test_the_setup_runs_once_the_build_has_started_and_its_failure_fails_the_run(
        tmp_path: Path) -> None:
    """make test installs the Debian packages and the virtualenv through RUN_TESTS_SETUP, so a
    cold build of the control plane overlaps them: the build's log is there when it runs."""
    cache = tmp_path / "cache"
    fake_build(Path(run(cache, "--dir").stdout.strip()))
    log = tmp_path / "logs" / "cluster-bins.log"
    setup = (f'for i in $(seq 100); do test -e "{log}" && break; sleep 0.1; done; '
             f'test -e "{log}" && echo "setup after the build started" >> "$RECORD"')
    done, record = run_tests(tmp_path, cache, RUN_TESTS_SETUP=setup)
    assert done.returncode == 0, done.stdout + done.stderr
    assert record[0] == "setup after the build started"
    assert sorted(record[1:4]) == ["beside", "idle", "plain"]

    failing = tmp_path / "failing"
    failing.mkdir()
    done, record = run_tests(failing, cache, RUN_TESTS_SETUP="exit 3")
    assert done.returncode == 1
    assert "run-tests: error: the setup failed: exit 3" in done.stderr
    assert record == []  # no test ran
