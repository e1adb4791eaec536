"""The ansible-runner node actuator, running a real playbook through real ansible-runner:
tests/data/nodes/scale_nodes.yml honours the scale_nodes extravars/set_stats contract on
localhost and is told, through files, to fail or to sleep.

Covers: the node count from set_stats; runner events in the event store; failure -> an error
event, backoff with its reason, then a retry; the maximum provisioning time; shutdown; one run
per group while two groups run at once; private modes; no secret in any artefact; a killed
controller's detached `async` call killed at the next start, nothing of a run in ~/.ansible.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import REPO
from micado.actuators.node_runner import AnsibleNodeActuator
from micado.actuators.nodes import NodeResult
from micado.adt.model import Contextualisation, NodeGroup
from micado.control.config import NodesConfig
from micado.control.store import Operation, Store

PLAYBOOK = REPO / "tests" / "data" / "nodes" / "scale_nodes.yml"
WAIT = 120.0  # an upper bound for a wait, never an assertion about speed
SECRET = "s3cr3t-key-do-not-leak"
ENV_SECRET = "env-s3cr3t-do-not-leak"

# mostly waiting on ansible-runner, no test bed: make test runs it beside the others
pytestmark = [pytest.mark.integration, pytest.mark.beside]


def group_spec(name: str) -> NodeGroup:
    return NodeGroup(name=name, type="tosca.nodes.MiCADO.EC2.Compute", cloud="ec2",
                     provisioning_available=True, interface=None,
                     properties={"image_id": "ami-1", "instance_type": "t3.small",
                                 "region_name": "eu-west-1"},
                     min_instances=0, max_instances=5,
                     contextualisation=Contextualisation(
                         mode="append", cloud_config="runcmd:\n  - echo hi\n"),
                     node_labels={"micado.eu/node_type": name, "micado.eu/app": "app"})


@dataclass
class Bed:
    root: Path
    store: Store
    actuator: AnsibleNodeActuator

    def op(self, group: str, desired: int) -> Operation:
        key = f"{group}-{desired}-{time.monotonic_ns()}"
        op = self.store.get_operation(self.store.begin_operation("app", group, "resize",
                                                                 desired, key))
        assert op is not None
        return op

    def result(self, op: Operation) -> NodeResult:
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            result = self.actuator.poll(op)
            if result is not None:
                return result
            time.sleep(0.1)
        raise AssertionError(f"operation {op.op_id} did not finish")

    def wait(self, what: str, predicate: object) -> None:
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def log(self) -> list[str]:
        path = self.root / "log"
        return path.read_text().splitlines() if path.exists() else []

    def events(self, kind: str | None = None) -> list[str]:
        return [e.message for e in self.store.events("app", limit=1000)
                if kind is None or e.kind == kind]


def sleeping() -> list[psutil.Process]:
    """The playbook's `sleep` processes (under this test process)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.cmdline()[:1] == ["sleep"]:
                found.append(process)
        except psutil.Error:
            continue
    return found


def marked(marker: str) -> list[psutil.Process]:
    """Every live process with `marker` in its command line, whoever its parent is."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in process.info.get("cmdline") or []) \
                and not gone(process):
            found.append(process)
    return found


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def make_bed(root: Path, **overrides: object) -> Bed:
    (root / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    credentials = root / "aws-credentials"
    credentials.write_text(f"[default]\naws_access_key_id = AKIA1\n"
                           f"aws_secret_access_key = {SECRET}\n")
    credentials.chmod(0o600)
    settings = {"server_url": "https://10.0.0.1:6443", "kubeconfig": root / "kubeconfig",
                "playbook": str(PLAYBOOK), "aws_credentials_file": credentials,
                "backoff_seconds": 1.0, "backoff_max_seconds": 4.0, **overrides}
    store = Store(root / "state.db")
    store.put_app("app", "adt", {}, {"app_id": "app"}, status="running")
    actuator = AnsibleNodeActuator(NodesConfig(**settings), store, root)  # type: ignore[arg-type]
    return Bed(root, store, actuator)


@pytest.fixture
def beds(tmp_path: Path) -> Iterator[Callable[..., Bed]]:
    """make_bed(tmp_path, **settings) for a test; what it made is closed at the end."""
    made: list[Bed] = []

    def make(**overrides: object) -> Bed:
        made.append(make_bed(tmp_path, **overrides))
        return made[-1]

    yield make
    for one in made:
        one.actuator.close()
        one.store.close()


@pytest.fixture
def bed(beds: Callable[..., Bed]) -> Bed:
    return beds()


def test_a_run_reports_the_node_count_and_its_events(bed: Bed,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)  # the controller's own environment
    op = bed.op("workers", 2)
    bed.actuator.start(op, group_spec("workers"), ["app-workers-7"])
    result = bed.result(op)
    assert result == NodeResult(2, None, [
        {"name": "app-workers-0", "id": None, "address": None, "state": None},
        {"name": "app-workers-1", "id": None, "address": None, "state": None}])
    assert (bed.root / "count-app-workers").read_text() == "2"
    runner = bed.events("runner")
    assert any("play: Make a node group the size it should be" in m for m in runner)
    assert any(m.endswith("task: Resize the group") for m in runner)
    assert any("localhost changed: Resize the group" in m for m in runner)
    assert bed.actuator.groups("app")[0]["last_runner_event"] == "task: Record the end of the run"
    assert bed.actuator.first_task_latency  # measured for the benchmark

    run_dirs = list((bed.root / "nodes" / "app" / "workers").iterdir())
    assert len(run_dirs) == 1
    extravars_file = run_dirs[0] / "env" / "extravars"
    extravars = yaml.safe_load(extravars_file.read_text())
    assert extravars["cloud_node_desired"] == 2
    assert extravars["cloud_node_drop"] == ["app-workers-7"]
    assert extravars["cloud_node_cloud"] == "ec2"
    assert extravars["cloud_node_operation"] == op.op_id
    assert extravars["cloud_node_user_data"] == "runcmd:\n  - echo hi\n"
    assert extravars["cloud_node_server_url"] == "https://10.0.0.1:6443"
    assert stat.S_IMODE(extravars_file.stat().st_mode) == 0o600
    for directory in (bed.root / "nodes", run_dirs[0]):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    command = json.loads(next(run_dirs[0].glob("artifacts/*/command")).read_text())
    assert command["env"]["AWS_SHARED_CREDENTIALS_FILE"] == str(bed.root / "aws-credentials")
    assert "AWS_SECRET_ACCESS_KEY" not in command["env"]
    files = [p for p in (bed.root / "nodes").rglob("*") if p.is_file()]
    assert len(files) > 10  # events, stdout, command, env files: the grep below means something
    for path in files:
        content = path.read_bytes()
        assert SECRET.encode() not in content, path
        assert ENV_SECRET.encode() not in content, path


def test_an_ended_run_whose_result_is_not_collected_yet_is_not_resumed(bed: Bed) -> None:
    # The reconciliation resumes pending operations no run holds. Between the end of a run and
    # the loop's next poll, the store still says pending: that operation must not run again.
    op = bed.op("workers", 2)
    bed.actuator.start(op, group_spec("workers"), [])
    bed.wait("the run's end", lambda: any(line.startswith("end ") for line in bed.log()))
    bed.wait("ansible-runner's status", lambda: any((bed.root / "nodes").rglob(
        "artifacts/*/status")))
    end = time.monotonic() + 3.0  # the run's thread records its result right after
    while time.monotonic() < end:
        assert op.op_id in bed.actuator.held_operations()
        bed.actuator.resume(op)
        time.sleep(0.05)
    assert bed.result(op).nodes == 2
    assert [line.split()[0] for line in bed.log()] == ["start", "end"]
    assert bed.events("reconcile") == []


def test_a_failed_run_backs_off_with_its_reason_then_is_retried(beds: Callable[..., Bed]) -> None:
    bed = beds(keep_runs=1)
    (bed.root / "fail-workers").write_text("the cloud refused: quota exceeded")
    op = bed.op("workers", 3)
    bed.actuator.start(op, group_spec("workers"), [])
    bed.wait("the failure event", lambda: bed.events("action_failed"))
    failed = bed.events("action_failed")[0]
    assert "attempt 1 failed" in failed and "quota exceeded" in failed
    assert any("localhost failed: Fail as the test asked: the cloud refused" in m
               for m in bed.events("runner_failed"))
    assert bed.actuator.poll(op) is None  # still pending: it is retried after the backoff
    group = bed.actuator.groups("app")[0]
    assert group["failures"] >= 1
    assert group["backoff_reason"] == ("localhost failed: Fail as the test asked: "
                                       "the cloud refused: quota exceeded")
    (bed.root / "fail-workers").unlink()
    result = bed.result(op)
    assert result.nodes == 3 and result.error is None
    assert bed.actuator.groups("app")[0]["failures"] == 0
    starts = [line.split()[0] for line in bed.log()].count("start")
    assert starts >= 2
    # keep_runs=1: only the last run's private data dir is kept
    assert [p.name for p in (bed.root / "nodes" / "app" / "workers").iterdir()] == [
        f"op{op.op_id}-{starts}"]


def test_status_says_when_a_failed_operation_is_retried_and_why(beds: Callable[..., Bed]) -> None:
    bed = beds(backoff_seconds=600.0, backoff_max_seconds=1800.0)
    (bed.root / "fail-workers").write_text("instance stuck in BUILD")
    op = bed.op("workers", 1)
    bed.actuator.start(op, group_spec("workers"), [])
    bed.wait("the failure event", lambda: bed.events("action_failed"))
    assert "backing off 600 s" in bed.events("action_failed")[0]
    why = bed.actuator.describe(op) or ""
    assert why.startswith("backing off after a failure, retried in "), why
    assert why.endswith("s: localhost failed: Fail as the test asked: instance stuck in "
                        "BUILD"), why
    group = bed.actuator.groups("app")[0]
    assert group["waiting_op"] == op.op_id and group["running_op"] is None
    assert group["backoff_until"] is not None and group["failures"] == 1
    newer = bed.op("workers", 2)  # a newer decision waits for the backoff too
    bed.actuator.start(newer, group_spec("workers"), [])
    assert bed.result(op).error == (f"superseded by operation {newer.op_id}")
    assert (bed.actuator.describe(newer) or "").startswith("backing off after a failure")
    assert [line.split()[0] for line in bed.log()] == ["start"]


def test_a_run_past_the_maximum_provisioning_time_is_cancelled(
        beds: Callable[..., Bed]) -> None:
    # long enough for ansible-playbook to reach its sleep on a loaded machine (15 s was not
    # at load 20)
    bed = beds(max_provisioning_seconds=40.0)
    (bed.root / "sleep-workers").write_text("600")
    op = bed.op("workers", 1)
    bed.actuator.start(op, group_spec("workers"), [])
    sleeps: list[psutil.Process] = []
    end = time.monotonic() + WAIT
    while (result := bed.actuator.poll(op)) is None:
        assert time.monotonic() < end, "the run was never cancelled"
        sleeps += [p for p in sleeping() if p not in sleeps]
        time.sleep(0.1)
    assert sleeps, "the run was cancelled before its sleep task"
    assert result.nodes is None
    assert result.error == ("cancelled: the run took longer than the maximum provisioning "
                            "time (40 s)")
    assert not (bed.root / "count-app-workers").exists()
    status = next((bed.root / "nodes").rglob("artifacts/*/status")).read_text()
    assert status == "canceled"
    assert bed.actuator.groups("app")[0]["backoff_reason"] == result.error
    bed.wait("the run's processes to end", lambda: all(map(gone, sleeps)))


def test_shutdown_cancels_a_running_operation_and_keeps_it_pending(bed: Bed) -> None:
    (bed.root / "sleep-workers").write_text("600")
    op = bed.op("workers", 1)
    bed.actuator.start(op, group_spec("workers"), [])
    bed.wait("the run to sleep", sleeping)
    sleeps = sleeping()
    bed.actuator.close()
    bed.wait("the run's processes to end", lambda: all(map(gone, sleeps)))
    status = next((bed.root / "nodes").rglob("artifacts/*/status")).read_text()
    assert status == "canceled"
    assert bed.actuator.poll(op) is None
    assert bed.store.get_operation(op.op_id).pending  # type: ignore[union-attr]
    assert [line.split()[0] for line in bed.log()] == ["start"]


def test_shutdown_kills_the_runs_detached_async_call(bed: Bed) -> None:
    # An `async` worker daemonizes: it is not under ansible-playbook, whose tree the cancel
    # kills. Left alive, a cancelled create call would race with the retried operation.
    marker = f"micado-async-{uuid.uuid4().hex}"
    (bed.root / "async-workers").write_text(marker)
    op = bed.op("workers", 1)
    bed.actuator.start(op, group_spec("workers"), [])
    try:
        bed.wait("the run's async task", lambda: marked(marker))
        bed.actuator.close()
        bed.wait("the run's async call to end", lambda: not marked(marker))
        assert bed.store.get_operation(op.op_id).pending  # type: ignore[union-attr]
    finally:
        for process in marked(marker):  # a failed test leaves nothing running
            process.kill()


def test_two_groups_run_at_once_but_a_group_never_runs_twice(bed: Bed) -> None:
    for name in ("a", "b"):
        (bed.root / f"sleep-{name}").write_text("2")
    first_a, first_b = bed.op("a", 1), bed.op("b", 1)
    bed.actuator.start(first_a, group_spec("a"), [])
    bed.actuator.start(first_b, group_spec("b"), [])
    older, newer = bed.op("a", 2), bed.op("a", 3)
    bed.actuator.start(older, group_spec("a"), [])
    bed.actuator.start(newer, group_spec("a"), [])
    assert bed.result(older) == NodeResult(None, f"superseded by operation {newer.op_id}")
    assert "waits for operation" in (bed.actuator.describe(newer) or "")
    assert bed.result(first_a).nodes == 1 and bed.result(first_b).nodes == 1
    assert bed.result(newer).nodes == 3
    assert (bed.root / "count-app-a").read_text() == "3"
    log = bed.log()
    running: set[str] = set()
    both = False
    for line in log:
        what, group, _ = line.split()
        if what == "start":
            assert group not in running, log
            running.add(group)
        else:
            running.discard(group)
        both = both or running == {"app/a", "app/b"}
    assert both, log  # the two groups overlapped
    assert [line for line in log if line.startswith("start app/a")] == [
        f"start app/a {first_a.op_id}", f"start app/a {newer.op_id}"]


def test_an_operation_pending_from_before_a_restart_is_run_again(bed: Bed) -> None:
    bed.store.put_app("app", "adt", {}, {"app_id": "app", "node_groups": [{
        "name": "workers", "type": "t", "cloud": "openstack", "provisioning_available": True,
        "interface": None, "properties": {"image_id": "i"}, "min_instances": 0,
        "max_instances": 3, "contextualisation": {}}]}, status="running")
    op = bed.op("workers", 2)  # recorded by a controller that stopped before running it
    assert bed.actuator.poll(op) is None  # not ours: no run holds it
    assert [(g["group"], g["running_op"], g["waiting_op"]) for g in bed.actuator.groups("app")
            ] == [("workers", None, None)]
    bed.actuator.close()
    bed.actuator = AnsibleNodeActuator(bed.actuator.config, bed.store, bed.root)  # restarted
    assert bed.result(op).nodes == 2
    extravars = yaml.safe_load(next((bed.root / "nodes").rglob("env/extravars")).read_text())
    assert extravars["cloud_node_cloud"] == "openstack"


def test_the_operations_of_a_deleted_app_are_dropped(bed: Bed) -> None:
    (bed.root / "sleep-workers").write_text("3")
    running, waiting = bed.op("workers", 1), bed.op("workers", 2)
    bed.actuator.start(running, group_spec("workers"), [])
    bed.actuator.start(waiting, group_spec("workers"), [])
    bed.wait("the run to start", lambda: bed.log())
    bed.store.delete_app("app")  # its operations go with it
    bed.wait("the run to end", lambda: not bed.actuator.groups("app")[0]["running_op"])
    bed.store.put_app("other", "adt", {}, {"app_id": "other"}, status="running")
    other = bed.store.get_operation(bed.store.begin_operation("other", "vms", "resize", 1, "o"))
    assert other is not None
    bed.actuator.start(other, group_spec("vms"), [])
    assert bed.result(other).nodes == 1
    assert [line for line in bed.log() if line.startswith("start")] == [
        f"start app/workers {running.op_id}", f"start other/vms {other.op_id}"]
    assert bed.actuator.groups("app")[0]["waiting_op"] is None


# A controller that starts a run and is then killed with kill -9 by the test below.
KILLED_CONTROLLER = """
import sys, time
from pathlib import Path
sys.path[:0] = sys.argv[2:]
from test_node_actuator import group_spec, make_bed
bed = make_bed(Path(sys.argv[1]))
bed.actuator.start(bed.op("workers", 1), group_spec("workers"), [])
time.sleep(600)
"""


def test_a_killed_controllers_async_call_is_killed_at_the_next_start(
        tmp_path: Path, beds: Callable[..., Bed]) -> None:
    # The cloud_node role's create calls are `async`: Ansible's async worker daemonizes (parent
    # pid 1), so only its command line ties it to its run. Once the controller is killed, the
    # next one must kill it before resuming the operation, else both create VMs.
    marker = f"micado-async-{uuid.uuid4().hex}"
    (tmp_path / "async-workers").write_text(marker)
    home = tmp_path / "home"  # the user's ~: nothing of a run may be left in ~/.ansible
    home.mkdir()
    controller = subprocess.Popen(
        [sys.executable, "-c", KILLED_CONTROLLER, str(tmp_path), str(REPO / "tests"),
         str(REPO / "tests" / "integration")], env={**os.environ, "HOME": str(home)})
    try:
        end = time.monotonic() + WAIT
        while not (workers := marked(marker)):
            assert controller.poll() is None, "the controller ended by itself"
            assert time.monotonic() < end, "the run never reached its async task"
            time.sleep(0.1)
        controller.kill()
        controller.wait()
        assert all(not gone(p) for p in workers)  # the run outlived its controller
        bed = beds()  # the next controller, on the same state dir
        assert bed.actuator.leftovers_killed > 0
        bed.wait("the killed controller's async call to end", lambda: not marked(marker))
        assert [line.split()[0] for line in bed.log()] == ["start"]
        left = [*(home / ".ansible" / "tmp").rglob("*"), *(home / ".ansible_async").rglob("*")]
        assert left == []
        run_tmp = next((tmp_path / "nodes").rglob("op*-1/tmp"))
        assert {p.name for p in run_tmp.iterdir()} == {"remote", "local", "async"}
        for directory in (run_tmp, *run_tmp.iterdir()):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    finally:
        controller.kill()
        controller.wait()
        for process in marked(marker):  # a failed test leaves nothing running
            process.kill()
