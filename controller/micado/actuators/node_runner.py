"""The VM node-group actuator: runs the `micado.core.scale_nodes` playbook through
ansible-runner, one run per operation, and turns its events into the controller's events.

Why each rule:
- one run per node group at a time: two runs resizing the same group would race on the cloud
  (both create "the missing VMs"); a newer operation of a busy group waits, and supersedes an
  older one that is still waiting (the newest decision is the one that counts);
- a private data dir (0700) per run under the state dir, extravars 0600, credentials only as
  file paths in the environment, and the controller's own environment reduced to a short
  allow-list: ansible-runner writes the whole environment of the run into the `command`
  artefact, so nothing secret may be in it;
- a maximum provisioning time: a run past it is cancelled and its operation fails with that
  reason (a hung cloud call must not block the group forever);
- backoff after a failed run (5 min doubling to 30 min by default): the operation stays pending
  and is retried when the backoff ends, with the reason shown in `micado status`;
- `close` cancels every run (ansible-runner's cancel_callback) and leaves the operations
  pending: the next start runs them again (the playbook makes a group the size it should be,
  so running it again is safe);
- at start, runs left over by a controller that was killed (kill -9: ansible-playbook lives in
  a session of its own and outlives it) are killed before anything runs, so an old run and
  its resumption never race on the cloud;
- Ansible's temp and async dirs are in the run's data dir, not ~/.ansible: an `async` task's
  worker (the role's create calls) daemonizes, and only its command line, naming them, lets a
  cancel or the next start find and kill it;
- the VMs a run reports and its last event are kept in the store too: `micado status` shows
  them after a restart;
- a group of a deleted app has no operation (they go with the app): its removal is a run of
  its own (`remove_group`), retried with backoff like any other, and the group is forgotten
  once the cloud shows none of its VMs.

The run is started like `ansible_runner.run_async` (init_runner, then `Runner.run` in a thread)
with one step in between: the environment is reduced before the run starts.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import psutil
import yaml

from micado.actuators.nodes import NodeResult
from micado.adt.model import NodeGroup, plan_from_dict
from micado.control.config import NodesConfig
from micado.control.store import Operation, Store

log = logging.getLogger("micado.actuators.nodes")

# the only variables of the controller's own environment a run sees
ENV_ALLOW = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "USER", "LOGNAME",
             "ANSIBLE_CONFIG")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
GroupKey = tuple[str, str]


@dataclass
class _Job:
    """One operation while the actuator holds it (queued, backing off or running)."""

    op: Operation
    group: NodeGroup | None
    drop: list[str]
    replace: list[str] = field(default_factory=list)
    detached: bool = False  # no operation in the store: a deleted app's group being removed
    attempt: int = 1
    deadline: float = 0.0
    started: float | None = None  # monotonic, while running
    cancel: str | None = None  # why the run is being cancelled
    stats: dict[str, Any] | None = None
    failure: str | None = None  # the last failed task, as the event said it
    first_task_seen: bool = False
    killed: bool = False
    fatal: bool = False  # the run cannot happen at all: fail, never retry
    data_dir: Path | None = None

    @property
    def key(self) -> GroupKey:
        return (self.op.app_id, self.op.group)


@dataclass
class _GroupState:
    running: _Job | None = None
    waiting: _Job | None = None
    failures: int = 0
    backoff_until: float = 0.0  # monotonic
    backoff_reason: str | None = None
    last_event: str | None = None
    last_event_at: float | None = None
    spec: NodeGroup | None = None  # the last spec seen: a removed group's cloud
    vms: list[dict[str, Any]] | None = None  # the group's VMs as the last run reported them
    threads: list[threading.Thread] = field(default_factory=list)


class AnsibleNodeActuator:
    """Runs node-group operations as ansible-runner jobs; thread-safe (ticks call `start`,
    housekeeping calls `poll`, runs report from their own threads)."""

    name = "ansible-runner"
    configured = True

    def __init__(self, config: NodesConfig, store: Store, state_dir: Path, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.data_dir = config.data_dir or state_dir / "nodes"
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._clock = clock
        self._wall = wall
        self._lock = threading.RLock()
        self._groups: dict[GroupKey, _GroupState] = {}
        self._results: dict[int, NodeResult] = {}
        self._closed = False
        # operations recorded before this: a previous process's, which nobody will `start`
        self._born = wall()
        # ansible-runner runs `ansible-playbook` from $PATH: this one's directory comes first
        self.bin_dir = str(Path(config.ansible_playbook or _default_ansible_playbook()).parent)
        self.first_task_latency: list[float] = []  # seconds from start to the first task
        self._detached_ids = itertools.count(-1, -1)
        self.leftovers_killed = _kill_leftover_runs(str(self.data_dir))

    # ------------------------------------------------------------------ the interface
    def start(self, op: Operation, group: NodeGroup | None, drop: list[str],
              replace: Sequence[str] = ()) -> None:
        with self._lock:
            if self._closed:
                return
            self._enqueue(_Job(op, group, list(drop), list(replace)))
        self._pump()

    def resume(self, op: Operation) -> None:
        """Run a pending operation no run holds (one a killed controller left)."""
        with self._lock:
            self._resume(op)
        self._pump()

    def _resume(self, op: Operation) -> None:
        if self._closed or self._holds(op):
            return
        self._enqueue(_Job(op, self._spec_from_store(op), []))
        why = ("was in flight when the controller stopped" if op.started_at < self._born
               else "had no run")
        try:
            self.store.add_event(op.app_id, "reconcile", f"reconcile: node group {op.group}: "
                                 f"operation {op.op_id} {why}: resumed",
                                 {"target": op.group, "op_id": op.op_id, "action": "resume"})
        except Exception:
            log.exception("could not record the resumption of operation %s", op.op_id)

    def remove_group(self, app_id: str, group: str, spec: NodeGroup) -> None:
        """Remove every VM of a group whose app is gone (no operation records this run)."""
        with self._lock:
            state = self._groups.get((app_id, group))
            if self._closed or (state is not None and (state.running or state.waiting)):
                return
            op = Operation(next(self._detached_ids), app_id, group, "remove", 0, "",
                           self._wall(), None, None, None)
            self._enqueue(_Job(op, spec, [], detached=True))
        self._pump()

    def held_operations(self) -> set[int]:
        """The operations a run holds (running, queued or backing off), or whose run has ended
        and whose result the loop has not collected yet (`poll`)."""
        with self._lock:
            return {j.op.op_id for s in self._groups.values()
                    for j in (s.running, s.waiting) if j is not None} | set(self._results)

    def list_vms(self, spec: NodeGroup) -> list[dict[str, Any]]:
        """Every VM tagged micado.eu/app in the cloud (region, or clouds.yaml cloud) of
        `spec`, through the playbook's list mode; raises RuntimeError when the run fails."""
        run_dir = self.data_dir / "_list" / _SAFE.sub("_", location(spec))
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(mode=0o700, parents=True)
        for parent in (run_dir.parent, run_dir):
            parent.chmod(0o700)
        extravars: dict[str, Any] = {"cloud_node_mode": "list", "cloud_node_cloud": spec.cloud,
                                     "cloud_node_properties": dict(spec.properties)}
        if spec.endpoint:
            extravars["cloud_node_endpoint"] = spec.endpoint
        if self.config.os_cloud:
            extravars["cloud_node_os_cloud"] = self.config.os_cloud
        found: dict[str, Any] = {}
        failures: list[str] = []

        def on_event(event: dict[str, Any]) -> bool:
            data = event.get("event_data") or {}
            if event.get("event") == "playbook_on_stats":
                found.update(data.get("artifact_data") or {})
            elif event.get("event") in ("runner_on_failed", "runner_on_unreachable") \
                    and not data.get("ignore_errors"):
                res = data.get("res") if isinstance(data.get("res"), dict) else {}
                failures.append(f"{data.get('task')}: {str(res.get('msg') or '')[:300]}")
            return True

        status = self._run_playbook(run_dir, extravars, "list", on_event,
                                    lambda: self._closed)
        nodes = found.get("micado_nodes")
        if status != "successful" or not isinstance(nodes, list):
            raise RuntimeError(f"listing the VMs of {location(spec)} failed: "
                               + ("; ".join(failures) or f"the playbook ended {status}"))
        return [n for n in nodes if isinstance(n, dict)]

    def poll(self, op: Operation) -> NodeResult | None:
        with self._lock:
            result = self._results.pop(op.op_id, None)
            if result is not None:
                return result
            if op.started_at < self._born:
                # pending from before a restart: run it again (a newer one gets `start`ed by
                # whoever recorded it, with its nodes to drop)
                self._resume(op)
        self._pump()
        return None

    def describe(self, op: Operation) -> str | None:
        with self._lock:
            state = self._groups.get((op.app_id, op.group))
            if state is None:
                return None
            now = self._clock()
            if state.running is not None and state.running.op.op_id == op.op_id:
                job = state.running
                text = (f"running for {now - (job.started or now):.0f} s (attempt "
                        f"{job.attempt}, at most {self.config.max_provisioning_seconds:g} s)")
                return text + (f"; last: {state.last_event}" if state.last_event else "")
            if state.waiting is not None and state.waiting.op.op_id == op.op_id:
                if state.backoff_until > now:
                    return (f"backing off after a failure, retried in "
                            f"{state.backoff_until - now:.0f} s: {state.backoff_reason}")
                if state.running is not None:
                    return f"waits for operation {state.running.op.op_id} of the group"
                return "starting"
            return None

    def groups(self, app_id: str) -> list[dict[str, Any]]:
        records = {r.group: r for r in self.store.node_groups(app_id) if not r.removing}
        with self._lock:
            now, wall = self._clock(), self._wall()
            out = []
            states = {g: s for (a, g), s in self._groups.items() if a == app_id}
            for group in sorted(set(states) | set(records)):
                state = states.get(group) or _GroupState()
                record = records.get(group)
                if state.last_event is None and record is not None:
                    state.last_event, state.last_event_at = (record.last_event,
                                                             record.last_event_at)
                if state.vms is None and record is not None:
                    state.vms = record.vms
                running = state.running.op.op_id if state.running else None
                backoff = max(0.0, state.backoff_until - now)
                out.append({
                    "group": group, "running_op": running,
                    "waiting_op": state.waiting.op.op_id if state.waiting else None,
                    "last_runner_event": state.last_event,
                    "last_runner_event_at": state.last_event_at,
                    "failures": state.failures,
                    "backoff_until": wall + backoff if backoff else None,
                    # the last failure, until a run succeeds
                    "backoff_reason": state.backoff_reason if state.failures else None,
                    "vms": state.vms,
                })
            return out

    def close(self, timeout: float = 30.0) -> None:
        """Cancel every run and wait for them; their operations stay pending."""
        with self._lock:
            self._closed = True
            threads = []
            for state in self._groups.values():
                if state.running is not None:
                    state.running.cancel = "the controller is stopping"
                threads += state.threads
        end = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))

    # ------------------------------------------------------------------ queueing
    def _holds(self, op: Operation) -> bool:
        # a run that has ended still holds its operation until `poll` hands the result over:
        # in between, the store still says pending and a resume would run it a second time
        if op.op_id in self._results:
            return True
        state = self._groups.get((op.app_id, op.group))
        return state is not None and any(
            j is not None and j.op.op_id == op.op_id for j in (state.running, state.waiting))

    def _enqueue(self, job: _Job) -> None:
        """Wait for the group (the newest operation wins over an older waiting one)."""
        state = self._groups.setdefault(job.key, _GroupState())
        if job.group is not None:
            state.spec = job.group
        if self._holds(job.op):
            return
        old = state.waiting
        if old is not None:
            if old.op.op_id > job.op.op_id:  # an older operation arrived late: superseded
                self._results[job.op.op_id] = _superseded(old.op.op_id)
                return
            self._results[old.op.op_id] = _superseded(job.op.op_id)
        state.waiting = job

    def _pump(self) -> None:
        """Start every waiting operation whose group is free and not backing off."""
        to_start = []
        with self._lock:
            if self._closed:
                return
            now = self._clock()
            for state in self._groups.values():
                job = state.waiting
                if job is None or state.running is not None or state.backoff_until > now:
                    continue
                if not self._still_wanted(job):  # its app was deleted, or submitted again
                    state.waiting = None
                    continue
                state.waiting, state.running = None, job
                job.started = now
                job.deadline = now + self.config.max_provisioning_seconds
                job.cancel, job.stats, job.failure = None, None, None
                thread = threading.Thread(target=self._run, args=(job,), daemon=True,
                                          name=f"micado-nodes-{job.op.op_id}")
                state.threads = [t for t in state.threads if t.is_alive()] + [thread]
                to_start.append(thread)
        for thread in to_start:
            thread.start()

    def _still_wanted(self, job: _Job) -> bool:
        if job.detached:
            return any(r.group == job.op.group and r.removing
                       for r in self.store.node_groups(job.op.app_id))
        stored = self.store.get_operation(job.op.op_id)
        return stored is not None and stored.pending

    def _spec_from_store(self, op: Operation) -> NodeGroup | None:
        """The group's spec as the store last had it (also a group that left its app)."""
        record = next((r for r in self.store.node_groups(op.app_id) if r.group == op.group),
                      None)
        return None if record is None else group_from_spec(op.app_id, record.spec)

    # ------------------------------------------------------------------ one run
    def _run(self, job: _Job) -> None:
        status, error = "failed", None
        try:
            spec = job.group or self._groups[job.key].spec
            if spec is None:
                raise _RunError("the group's cloud is unknown (it left the app before this "
                                "controller ran it)")
            status = self._execute(job, spec)
        except _RunError as exc:
            error, job.fatal = str(exc), True
        except Exception as exc:  # ansible-runner could not even start the run
            log.exception("operation %s: the run could not start", job.op.op_id)
            error = f"ansible-runner could not start the run: {exc}"
        self._finished(job, status, error)

    def _execute(self, job: _Job, spec: NodeGroup) -> str:
        run_dir = self._prepare_dir(job)
        extravars = self._extravars(job, spec)
        return self._run_playbook(run_dir, extravars, f"op{job.op.op_id}-{job.attempt}",
                                  lambda event: self._on_event(job, event),
                                  lambda: self._should_cancel(job))

    def _run_playbook(self, run_dir: Path, extravars: dict[str, Any], ident: str,
                      on_event: Callable[[dict[str, Any]], bool],
                      cancel: Callable[[], bool]) -> str:
        """One ansible-runner run in `run_dir` (private), with the reduced environment."""
        _write_private(run_dir / "env" / "extravars", yaml.safe_dump(extravars))
        _write_private(run_dir / "inventory" / "hosts",
                       f"localhost ansible_connection=local "
                       f"ansible_python_interpreter={sys.executable}\n")
        playbook = self.config.playbook
        project = run_dir / "project"
        project.mkdir(mode=0o700, exist_ok=True)
        if os.path.isabs(playbook):
            project, playbook = Path(playbook).parent, Path(playbook).name
        envvars = {**self._envvars(), **_private_temp(run_dir)}
        runner = ansible_runner.interface.init_runner(
            private_data_dir=str(run_dir), project_dir=str(project), playbook=playbook,
            envvars=envvars, quiet=True, rotate_artifacts=1, ident=ident,
            settings={"pexpect_timeout": 0.5, "suppress_ansible_output": True},
            event_handler=on_event, cancel_callback=cancel)
        # the run's environment: ansible-runner's own additions and ours, not the controller's
        inherited = os.environ
        runner.config.env = {
            **{k: inherited[k] for k in ENV_ALLOW if k in inherited},
            **{k: v for k, v in runner.config.env.items()
               if k not in inherited or inherited[k] != v},
            **envvars,
        }
        path = runner.config.env.get("PATH", os.defpath)
        runner.config.env["PATH"] = os.pathsep.join((self.bin_dir, path))
        try:
            runner.run()
        finally:
            # async job files hold the modules' arguments (a VM's user-data with its join
            # token): none is kept once the run is over, however it ended
            shutil.rmtree(run_dir / "tmp", ignore_errors=True)
        return str(runner.status)

    def _prepare_dir(self, job: _Job) -> Path:
        """A fresh 0700 dir for this run; older runs of the group beyond `keep_runs` go."""
        group_dir = self.data_dir / _SAFE.sub("_", job.op.app_id) / _SAFE.sub("_", job.op.group)
        group_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for parent in (group_dir, group_dir.parent):
            parent.chmod(0o700)
        run_dir = group_dir / f"op{job.op.op_id}-{job.attempt}"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(mode=0o700)
        for sub in ("env", "inventory", "project"):
            (run_dir / sub).mkdir(mode=0o700)
        runs = sorted((p for p in group_dir.iterdir() if p.is_dir() and p != run_dir),
                      key=lambda p: p.stat().st_mtime)
        for old in runs[:max(0, len(runs) - (self.config.keep_runs - 1))]:
            shutil.rmtree(old, ignore_errors=True)
        job.data_dir = run_dir
        return run_dir

    def _extravars(self, job: _Job, spec: NodeGroup) -> dict[str, Any]:
        """The contract of `micado.core.scale_nodes` (README "Node groups (VMs)")."""
        op, cfg = job.op, self.config
        context = spec.contextualisation
        extravars: dict[str, Any] = {
            "cloud_node_app": op.app_id,
            "cloud_node_group": op.group,
            "cloud_node_cloud": spec.cloud,
            "cloud_node_properties": dict(spec.properties),
            "cloud_node_desired": op.desired,
            "cloud_node_drop": list(job.drop),
            "cloud_node_replace": list(job.replace),
            "cloud_node_labels": dict(spec.node_labels) or {
                "micado.eu/node_type": op.group, "micado.eu/app": op.app_id},
            "cloud_node_operation": op.op_id,
            "cloud_node_kubeconfig": str(cfg.kubeconfig),
            "cloud_node_server_url": cfg.server_url,
            "cloud_node_ready_timeout": cfg.ready_timeout,
            "cloud_node_drain_timeout": cfg.drain_timeout,
        }
        if spec.endpoint:
            extravars["cloud_node_endpoint"] = spec.endpoint
        if context.cloud_config:
            extravars["cloud_node_user_data"] = context.cloud_config
            extravars["cloud_node_user_data_mode"] = context.mode
        if cfg.os_cloud:
            extravars["cloud_node_os_cloud"] = cfg.os_cloud
        return extravars

    def _envvars(self) -> dict[str, str]:
        """Where the credentials are (paths only) and where the collection is."""
        cfg = self.config
        env = {"ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_RETRY_FILES_ENABLED": "False"}
        for name, value in (("OS_CLIENT_CONFIG_FILE", cfg.clouds_yaml),
                            ("AWS_SHARED_CREDENTIALS_FILE", cfg.aws_credentials_file),
                            ("AWS_ENDPOINT_URL", cfg.aws_endpoint_url),
                            ("ANSIBLE_COLLECTIONS_PATH", cfg.collections_path)):
            if value is not None:
                env[name] = str(value)
        return env

    # ------------------------------------------------------------------ callbacks
    def _should_cancel(self, job: _Job) -> bool:
        """ansible-runner asks this about twice a second while the run is alive."""
        with self._lock:
            if job.cancel is None and self._clock() > job.deadline:
                job.cancel = (f"cancelled: the run took longer than the maximum provisioning "
                              f"time ({self.config.max_provisioning_seconds:g} s)")
            cancel, kill = job.cancel is not None, job.cancel is not None and not job.killed
            job.killed = job.killed or kill
        if kill and job.data_dir is not None:
            _kill_tree(str(job.data_dir / "inventory"))
            _kill_detached(str(job.data_dir / "tmp"))  # its `async` workers (daemons)
        return cancel

    def _on_event(self, job: _Job, event: dict[str, Any]) -> bool:
        """Runner events -> the controller's events (play, task, host results, failures)."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        op = job.op
        if kind == "playbook_on_stats":
            job.stats = data.get("artifact_data") or {}
            return True
        host = data.get("host") or data.get("remote_addr") or ""
        task = data.get("task") or ""
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        message = None
        event_kind = "runner"
        if kind == "playbook_on_play_start":
            message = f"play: {data.get('play') or data.get('name') or ''}"
        elif kind == "playbook_on_task_start":
            message = f"task: {task}"
            if job.started is not None and not job.first_task_seen:
                job.first_task_seen = True
                self.first_task_latency.append(self._clock() - job.started)
        elif kind in ("runner_on_failed", "runner_on_unreachable"):
            if kind == "runner_on_failed" and data.get("ignore_errors"):
                return True
            why = "unreachable" if kind == "runner_on_unreachable" else "failed"
            detail = str(res.get("msg") or "").strip()
            if res.get("_ansible_no_log") or res.get("censored"):
                detail = "(output hidden: no_log)"
            message = f"{host} {why}: {task}" + (f": {detail[:500]}" if detail else "")
            job.failure = message
            event_kind = "runner_failed"
        elif kind == "runner_on_ok" and res.get("changed"):
            message = f"{host} changed: {task}"
        if message is None:
            return True
        text = f"node group {op.group}: operation {op.op_id}: {message}"
        with self._lock:
            state = self._groups.get(job.key)
            if state is not None:
                state.last_event, state.last_event_at = message, self._wall()
        try:
            self.store.save_group_event(op.app_id, op.group, message)
            self.store.add_event(op.app_id, event_kind, text,
                                 {"target": op.group, "op_id": op.op_id, "runner_event": kind,
                                  "host": host or None, "task": task or None,
                                  "attempt": job.attempt})
        except Exception:
            log.exception("could not record a runner event of operation %s", op.op_id)
        return True

    def _finished(self, job: _Job, status: str, error: str | None) -> None:
        op = job.op
        event: tuple[str, str] | None = None
        with self._lock:
            state = self._groups[job.key]
            state.running = None
            reported = _result_of(job.stats)
            if reported.error is None:  # a failed run reports the group's VMs too
                state.vms = reported.instances
                self._save_vms(op, reported.instances)
            if job.cancel == "the controller is stopping":
                return  # pending in the store: the next start runs it again
            if job.detached:
                event = self._finished_removal(job, state, status, error, reported)
            elif job.fatal:
                self._results[op.op_id] = NodeResult(None, error)
            elif job.cancel is not None:  # past the maximum provisioning time
                self._results[op.op_id] = NodeResult(None, job.cancel)
                self._back_off(state, job.cancel)
            elif self.store.get_operation(op.op_id) is None:
                return  # its app was deleted while it ran: nobody polls for the result
            elif error is None and status == "successful":
                result = _result_of(job.stats)
                self._results[op.op_id] = result
                if result.error is None:
                    state.failures, state.backoff_until, state.backoff_reason = 0, 0.0, None
                else:
                    self._back_off(state, result.error)
            else:
                event = self._retry(job, state, error or job.failure
                                    or f"the playbook ended {status}")
        if event is not None:
            try:
                self.store.add_event(op.app_id, event[0], event[1],
                                     {"target": op.group,
                                      "op_id": None if job.detached else op.op_id})
            except Exception:
                log.exception("could not record the failure of operation %s", op.op_id)
        self._pump()

    def _retry(self, job: _Job, state: _GroupState, reason: str) -> tuple[str, str]:
        """After a failed run: back off, then run it again unless a newer one waits."""
        op = job.op
        delay = self._back_off(state, reason)
        if state.waiting is None:  # retried after the backoff unless superseded
            job.attempt += 1
            state.waiting = job
        elif not job.detached:
            self._results[op.op_id] = _superseded(state.waiting.op.op_id, reason)
        what = "operation " + str(op.op_id) if not job.detached else "removal"
        return ("action_failed", f"node group {op.group}: {what} attempt "
                                 f"{job.attempt - (state.waiting is job)} failed: {reason}; "
                                 f"backing off {delay:g} s")

    def _finished_removal(self, job: _Job, state: _GroupState, status: str,
                          error: str | None, reported: NodeResult) -> tuple[str, str]:
        """A deleted app's group: forgotten once its VMs are gone, else tried again."""
        op = job.op
        if error is None and status == "successful" and reported.nodes == 0:
            state.failures, state.backoff_until, state.backoff_reason = 0, 0.0, None
            self.store.forget_node_group(op.app_id, op.group)
            return ("action", f"node group {op.group}: its VMs are removed (the app is "
                              "deleted)")
        if job.fatal:
            return ("action_failed", f"node group {op.group}: removal failed: {error}")
        return self._retry(job, state, error or reported.error or job.failure
                           or f"the playbook ended {status}")

    def _save_vms(self, op: Operation, vms: list[dict[str, Any]]) -> None:
        try:
            self.store.save_group_vms(op.app_id, op.group, vms)
        except Exception:
            log.exception("could not record the VMs of group %s", op.group)

    def _back_off(self, state: _GroupState, reason: str) -> float:
        cfg = self.config
        state.failures += 1
        delay = min(cfg.backoff_seconds * 2 ** (state.failures - 1), cfg.backoff_max_seconds)
        state.backoff_until = self._clock() + delay
        state.backoff_reason = reason
        return delay


class _RunError(Exception):
    """A run that cannot happen; its message is the operation's failure reason."""


def _kill_tree(marker: str) -> None:
    """Kill the run's ansible-playbook and everything under it. ansible-runner's cancel kills
    only ansible-playbook's process group, and the local connection runs each module in a
    session of its own: a module's processes (a cloud call, a wait) would outlive the run."""
    root = None
    for child in psutil.Process().children(recursive=True):
        try:
            if marker in child.cmdline():
                root = child
                break
        except psutil.Error:
            continue
    if root is None:
        return
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        tree = [root]
    for process in reversed(tree):  # the deepest first: nothing is orphaned before it dies
        try:
            process.kill()
        except psutil.Error:
            continue


def _kill_leftover_runs(data_dir: str) -> int:
    """Kill ansible-playbook processes of runs under `data_dir` that no process of ours
    started: a killed controller's runs, which would race with their resumption."""
    killed = _kill_detached(data_dir)
    if killed:
        log.warning("killed %d processes of runs left by a previous controller", killed)
    return killed


def _kill_detached(marker: str) -> int:
    """Kill, with their trees, the processes naming `marker` that are not under this one:
    a killed controller's runs, and `async` workers, which daemonize (their parent is pid 1)."""
    mine = {p.pid for p in psutil.Process().children(recursive=True)}
    killed = 0
    for process in psutil.process_iter(["cmdline"]):
        try:
            cmdline = process.info.get("cmdline") or []
            if process.pid in mine or not any(marker in part for part in cmdline):
                continue
            tree = [process, *process.children(recursive=True)]
        except psutil.Error:
            continue
        for each in reversed(tree):
            try:
                each.kill()
                killed += 1
            except psutil.Error:
                continue
    return killed


def location(spec: NodeGroup) -> str:
    """Where a group's VMs live: one list run per location."""
    where = spec.properties.get("region_name") or ""
    return f"{spec.cloud}-{where}-{spec.endpoint or 'default'}"


def group_from_spec(app_id: str, spec: dict[str, Any]) -> NodeGroup | None:
    """A stored plan's node group entry as a NodeGroup (None if it does not read back)."""
    try:
        return plan_from_dict({"app_id": app_id, "node_groups": [spec]}).node_groups[0]
    except (KeyError, TypeError, IndexError):
        return None


def _superseded(by: int, why: str | None = None) -> NodeResult:
    return NodeResult(None, f"superseded by operation {by}" + (f" (after: {why})" if why else ""))


def _result_of(stats: dict[str, Any] | None) -> NodeResult:
    """The playbook's set_stats: `micado_node_count` and `micado_nodes`."""
    stats = stats or {}
    count = stats.get("micado_node_count")
    nodes = stats.get("micado_nodes")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        return NodeResult(None, "the playbook did not report micado_node_count (set_stats)")
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        nodes = []
    keep = ("name", "id", "address", "state")
    return NodeResult(count, None, [{k: n.get(k) for k in keep} for n in nodes])


def _write_private(path: Path, text: str) -> None:
    """Create `path` 0600 before writing (never world-readable, not even for a moment)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def _private_temp(run_dir: Path) -> dict[str, str]:
    """Ansible's temp and async dirs inside the run's private dir (0700). By default they are
    under ~/.ansible and ~/.ansible_async: an `async` task's worker daemonizes (its parent is
    pid 1, not the run) and its command line names only its temp dir, so with the defaults
    neither killing the run's process tree nor `_kill_leftover_runs` reaches it, and a killed
    controller's cloud call goes on beside its resumption."""
    dirs = {"ANSIBLE_REMOTE_TEMP": "remote", "ANSIBLE_LOCAL_TEMP": "local",
            "ANSIBLE_ASYNC_DIR": "async"}
    env = {}
    for name, sub in dirs.items():
        path = run_dir / "tmp" / sub
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for each in (path.parent, path):
            each.chmod(0o700)
        env[name] = str(path)
    return env


def _default_ansible_playbook() -> Path:
    """The ansible-playbook installed with the controller (its virtualenv), else $PATH's."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    found = shutil.which("ansible-playbook")
    return beside if beside.exists() or found is None else Path(found)

