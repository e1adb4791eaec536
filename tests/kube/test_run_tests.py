"""scripts/run-tests, what `make test` runs: the control plane builds (or is reused) in the
background while lanes of pytest runs take the parts of the suite (the `hosts` ones one at a
time), the `cluster` parts once the build is there; a failed build or a failed test in any part
fails the run. Run here on a small suite of its own and a
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
import time
from pathlib import Path

import pytest

def note(what):
    with Path(os.environ["RECORD"]).open("a") as record:
        record.write(f"{what} in lane {os.environ['MICADO_TEST_LANE']}\\n")


def wait_for(name, me):
    record = Path(os.environ["RECORD"])
    deadline = time.monotonic() + 240
    while not (record.parent / name).exists():
        assert time.monotonic() < deadline, f"{name} did not run beside {me}"
        time.sleep(0.1)


def meet(me):
    """Say `me` started; if $MEET names it, wait for the others it names: only when they all run
    at once do they all get past."""
    (Path(os.environ["RECORD"]).parent / me).touch()
    names = os.environ.get("MEET", "").split(",")
    for other in names if me in names else ():
        wait_for(other, me)


def on_the_cluster(me):
    # the build's last line (the directory it made or reused) is in its log by now
    log = Path(os.environ["MICADO_TEST_LOGS"]) / "cluster-bins.log"
    note(f"{me} after {log.read_text().splitlines()[-1]}")
    (Path(os.environ["RECORD"]).parent / "on-the-cluster").touch()


def test_plain():
    meet("plain")
    note("plain")
    assert os.environ.get("PLAIN_FAILS") != "1"


@pytest.mark.beside
def test_beside():
    meet("beside")
    note("beside")
    assert os.environ.get("BESIDE_FAILS") != "1"


@pytest.mark.hosts
def test_hosts():
    meet("hosts")
    if os.environ.get("HOSTS_WAIT") == "1":  # until a cluster test ran in another lane
        wait_for("on-the-cluster", "hosts")
    note("hosts")
    assert os.environ.get("HOSTS_FAILS") != "1"


@pytest.mark.cluster
@pytest.mark.beside
def test_on_the_cluster_beside():
    on_the_cluster("cluster beside")


@pytest.mark.cluster
@pytest.mark.hosts
def test_on_the_cluster_hosts():
    on_the_cluster("cluster hosts")


@pytest.mark.cluster
def test_on_the_cluster():
    on_the_cluster("cluster")
    assert os.environ.get("CLUSTER_FAILS") != "1"
'''
MARKERS = ("cluster", "beside", "hosts", "openstack")


def run_tests(tmp_path: Path, cache: Path, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                                 list[str]]:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n" + "".join(f"    {marker}: a lane\n" for marker in MARKERS))
    (suite / "test_suite.py").write_text(SUITE)
    record = tmp_path / "record"
    record.touch()
    # this run's own lane settings (make test's, or a user's) are not the nested run's
    outer = {k: v for k, v in os.environ.items() if not k.startswith("MICADO_TEST_LANE")}
    done = subprocess.run(
        [str(RUN_TESTS), "-p", "no:cacheprovider", str(suite)], cwd=REPO, capture_output=True,
        text=True, timeout=300, check=False,
        env={**outer, "PYTHON": sys.executable, "MICADO_TEST_LOGS": str(tmp_path / "logs"),
             "MICADO_CLUSTER_BINS_CACHE": str(cache), "RECORD": str(record),
             "GOPROXY": "off", **env})  # no module proxy: a build that is not reused fails
    return done, record.read_text().splitlines()


def lanes(record: list[str]) -> dict[str, str]:
    """What ran -> the lane it ran in."""
    return dict(line.rsplit(" in lane ", 1) for line in record)


@pytest.mark.parametrize(("failing", "status"), [
    ({}, 0), ({"PLAIN_FAILS": "1"}, 1), ({"BESIDE_FAILS": "1"}, 1), ({"HOSTS_FAILS": "1"}, 1),
    ({"CLUSTER_FAILS": "1"}, 1)])
def test_the_lanes_take_the_parts_and_the_cluster_tests_start_once_the_build_is_there(
        tmp_path: Path, failing: dict[str, str], status: int) -> None:
    cache = tmp_path / "cache"
    directory = Path(run(cache, "--dir").stdout.strip())
    fake_build(directory)
    done, record = run_tests(tmp_path, cache, MICADO_TEST_LANES="3", MEET="plain,beside,hosts",
                             HOSTS_WAIT="1", **failing)
    assert done.returncode == status, done.stdout + done.stderr
    ran = lanes(record)
    # the plain, beside and hosts tests ran at once, in three lanes (each waited for the other
    # two to start); a failing test in one part does not stop the others: all count
    assert {ran["plain"], ran["beside"], ran["hosts"]} == {"1", "2", "3"}
    assert set(ran) == {"plain", "beside", "hosts", f"cluster hosts after {directory}",
                        f"cluster beside after {directory}", f"cluster after {directory}"}
    # a cluster test ran while the hosts test was still running (it waited for one), but the
    # cluster's hosts test only after it: one hosts part at a time
    hosts = record.index(f"hosts in lane {ran['hosts']}")
    assert min(i for i, line in enumerate(record) if line.startswith("cluster")) < hosts
    assert record.index(f"cluster hosts after {directory} in lane "
                        f"{ran[f'cluster hosts after {directory}']}") > hosts
    assert f"log: {tmp_path / 'logs' / 'cluster-bins.log'}" in done.stdout
    # the other lanes' output is in the run's own, not only in their logs
    for lane in ("2", "3"):
        lane_log = (tmp_path / "logs" / f"lane-{lane}.log").read_text()
        assert "run-tests: lane " + lane + ": pytest -m" in lane_log
        assert f"log: {tmp_path / 'logs' / f'lane-{lane}.log'}" in done.stdout
        assert lane_log in done.stdout


def test_two_lanes_by_default(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    directory = Path(run(cache, "--dir").stdout.strip())
    fake_build(directory)
    done, record = run_tests(tmp_path, cache, MEET="plain,beside")
    assert done.returncode == 0, done.stdout + done.stderr
    ran = lanes(record)
    assert len(ran) == 6 and {ran["plain"], ran["beside"]} == {"1", "2"}
    assert set(ran.values()) == {"1", "2"}
    assert not (tmp_path / "logs" / "lane-3.log").exists()


@pytest.mark.parametrize("count", ["0", "9", "two", "2 "])
def test_a_bad_number_of_lanes_is_refused_before_anything_runs(tmp_path: Path, count: str) -> None:
    done, record = run_tests(tmp_path, tmp_path / "cache", MICADO_TEST_LANES=count)
    assert done.returncode == 2
    assert done.stderr == ("run-tests: error: MICADO_TEST_LANES must be a number of lanes from 1 "
                           f"to 8 (got '{count}')\n")
    assert record == [] and not (tmp_path / "logs").exists()


def test_a_failed_build_fails_the_run_and_names_its_log(tmp_path: Path) -> None:
    done, record = run_tests(tmp_path, tmp_path / "empty-cache")
    assert done.returncode == 1, done.stdout + done.stderr
    # the other tests ran; the cluster tests had nothing to run on
    assert sorted(lanes(record)) == ["beside", "hosts", "plain"]
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
    assert {"beside", "hosts", "plain"} <= set(lanes(record[1:]))

    failing = tmp_path / "failing"
    failing.mkdir()
    done, record = run_tests(failing, cache, RUN_TESTS_SETUP="exit 3")
    assert done.returncode == 1
    assert "run-tests: error: the setup failed: exit 3" in done.stderr
    assert record == []  # no test ran
