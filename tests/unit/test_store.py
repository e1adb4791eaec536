"""Tests for micado.control.store: every operation, file modes, idempotency, crash durability."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from micado.control.store import MIGRATIONS, ObjectClaimed, Store, StoreError
from micado.policy.engine import TargetState
from micado.policy.limits import LimitState


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Store:
    s = Store(tmp_path / "state.db", clock=clock)
    yield s
    s.close()


PLAN = {"manifests": [{"kind": "Deployment", "metadata": {"name": "web"}}], "groups": {}}


# -- opening, schema, modes -------------------------------------------------------------------


def test_open_sets_wal_full_fk_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as s:
        assert s.schema_version() == len(MIGRATIONS)
        assert s.integrity_check() == "ok"
        conn = s._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    # Reopening is idempotent: migrations are not re-applied, data stays.
    with Store(path) as s:
        assert s.schema_version() == len(MIGRATIONS)
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE schema_version SET version = 999")
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_files_are_0600_even_with_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    old = os.umask(0o000)
    try:
        s = Store(path)
        s.put_app("a", "secret: hunter2", {}, {}, "submitted")  # makes -wal/-shm non-empty
        for suffix in ("", "-wal", "-shm"):
            f = Path(str(path) + suffix)
            assert f.exists(), suffix
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, suffix
        s.close()
    finally:
        os.umask(old)


def test_existing_permissive_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.touch()
    path.chmod(0o644)
    Store(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- apps -------------------------------------------------------------------------------------


def test_app_crud(store: Store, clock: Clock) -> None:
    assert store.get_app("a") is None
    store.put_app("a", "tosca: 1", {"replicas": 2}, PLAN, "submitted")
    app = store.get_app("a")
    assert app is not None
    assert (app.adt_source, app.params, app.plan, app.status) == (
        "tosca: 1",
        {"replicas": 2},
        PLAN,
        "submitted",
    )
    assert app.created_at == app.updated_at == 1000.0

    clock.t = 1010.0
    store.set_app_status("a", "failed", "image pull error")
    app = store.get_app("a")
    assert (app.status, app.reason, app.updated_at) == ("failed", "image pull error", 1010.0)

    clock.t = 1020.0
    store.put_app("a", "tosca: 2", {}, PLAN, "running")  # replace keeps created_at
    app = store.get_app("a")
    assert (app.adt_source, app.status, app.reason) == ("tosca: 2", "running", None)
    assert (app.created_at, app.updated_at) == (1000.0, 1020.0)

    store.put_app("b", "x", {}, {}, "paused")
    assert [a.app_id for a in store.list_apps()] == ["a", "b"]
    assert [a.app_id for a in store.list_apps("paused")] == ["b"]

    assert store.delete_app("a") is True
    assert store.delete_app("a") is False
    assert [a.app_id for a in store.list_apps()] == ["b"]


def test_app_status_validation(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown app status"):
        store.put_app("a", "x", {}, {}, "bogus")
    store.put_app("a", "x", {}, {}, "submitted")
    with pytest.raises(ValueError, match="unknown app status"):
        store.set_app_status("a", "bogus")
    with pytest.raises(KeyError):
        store.set_app_status("nope", "running")
    for status in ("submitted", "running", "paused", "deleting", "failed"):
        store.set_app_status("a", status)
        assert store.get_app("a").status == status


def test_json_columns_are_validated(store: Store) -> None:
    with pytest.raises(ValueError, match="params is not JSON-serialisable"):
        store.put_app("a", "x", {"f": object()}, {}, "submitted")
    with pytest.raises(ValueError, match="plan is not JSON-serialisable"):
        store.put_app("a", "x", {}, {"v": float("nan")}, "submitted")
    with pytest.raises(ValueError, match="must be a dict"):
        store.put_app("a", "x", [], {}, "submitted")
    assert store.get_app("a") is None  # nothing half-written
    store.put_app("a", "x", {}, {}, "submitted")
    with pytest.raises(ValueError, match="target state is not JSON"):
        store.save_target("a", "t", {"s": {1, 2}}, {})
    with pytest.raises(ValueError, match="last decision is not JSON"):
        store.save_target("a", "t", {}, {"x": float("inf")})
    with pytest.raises(ValueError, match="m_userdata is not JSON"):
        store.save_userdata("a", {"x": b"bytes"})
    with pytest.raises(ValueError, match="event data is not JSON"):
        store.add_event("a", "decision", "m", data=object())
    op = store.begin_operation("a", "g", "scale", 1, "k")
    with pytest.raises(ValueError, match="operation result is not JSON"):
        store.finish_operation(op, object())
    assert store.get_operation(op).pending


# -- target state and userdata ----------------------------------------------------------------


def test_target_state_roundtrip_and_cascade(store: Store) -> None:
    store.put_app("a", "x", {}, PLAN, "running")
    ts = TargetState(
        last_count=3,
        stable_since=12.5,
        previous_node_count=2,
        limits=LimitState(last_change=10.0, recommendations=[(1.0, 2), (2.0, 3)]),
    )
    decision = {"desired": 3, "reason": "cpu > 80%", "at": 12.5}
    assert store.load_target("a", "web") is None
    store.save_target("a", "web", asdict(ts), decision)
    rec = store.load_target("a", "web")
    assert rec.last_decision == decision
    restored = TargetState(**{**rec.state, "limits": LimitState(**rec.state["limits"])})
    assert restored.last_count == 3
    assert restored.limits.last_change == 10.0
    assert [tuple(r) for r in restored.limits.recommendations] == [(1.0, 2), (2.0, 3)]

    store.save_target("a", "web", {"last_count": 4}, {"desired": 4})  # overwrite
    store.save_target("a", "workers", {}, {})
    assert store.load_target("a", "web").state == {"last_count": 4}
    assert sorted(store.load_targets("a")) == ["web", "workers"]

    assert store.load_userdata("a") == {}
    store.save_userdata("a", {"counter": 1})
    store.save_userdata("a", {"counter": 2, "seen": ["x"]})
    assert store.load_userdata("a") == {"counter": 2, "seen": ["x"]}

    store.begin_operation("a", "g", "scale", 2, "k1")
    store.add_event("a", "decision", "kept")
    store.delete_app("a")
    assert store.load_target("a", "web") is None
    assert store.load_targets("a") == {}
    assert store.load_userdata("a") == {}
    assert store.pending_operations("a") == []
    assert len(store.events("a")) == 1  # the log outlives the app (retention bounds it)


def test_target_state_needs_existing_app(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.save_target("ghost", "t", {}, {})
    with pytest.raises(sqlite3.IntegrityError):
        store.begin_operation("ghost", "g", "scale", 1, "k")


# -- operations -------------------------------------------------------------------------------


def test_begin_operation_is_idempotent(store: Store, clock: Clock) -> None:
    store.put_app("a", "x", {}, {}, "running")
    op1 = store.begin_operation("a", "workers", "scale", 3, "a/workers/tick-7")
    clock.t += 5
    op2 = store.begin_operation("a", "workers", "scale", 3, "a/workers/tick-7")
    assert op1 == op2
    assert len(store.pending_operations()) == 1
    assert store.get_operation(op1).started_at == 1000.0
    with pytest.raises(ValueError, match="already used"):
        store.begin_operation("a", "workers", "scale", 4, "a/workers/tick-7")
    with pytest.raises(ValueError, match="non-empty"):
        store.begin_operation("a", "workers", "scale", 4, "")
    with pytest.raises(ValueError, match="desired must be an int"):
        store.begin_operation("a", "workers", "scale", 4.0, "k2")

    # A finished op is still found by key: the decision is not re-run.
    assert store.finish_operation(op1, {"nodes": 3}) is True
    assert store.begin_operation("a", "workers", "scale", 3, "a/workers/tick-7") == op1
    assert store.pending_operations() == []


def test_finish_operation(store: Store, clock: Clock) -> None:
    store.put_app("a", "x", {}, {}, "running")
    store.put_app("b", "x", {}, {}, "running")
    o1 = store.begin_operation("a", "g1", "scale", 2, "k1")
    o2 = store.begin_operation("a", "g2", "drain", 1, "k2")
    o3 = store.begin_operation("b", "g1", "scale", 5, "k3")
    assert [o.op_id for o in store.pending_operations()] == [o1, o2, o3]
    assert [o.op_id for o in store.pending_operations("a")] == [o1, o2]
    clock.t = 1100.0
    assert store.finish_operation(o2, None, error="ansible failed: rc=2") is True
    assert store.finish_operation(o2, {"late": True}) is False  # not overwritten
    op = store.get_operation(o2)
    assert (op.finished_at, op.result, op.error, op.pending) == (
        1100.0,
        None,
        "ansible failed: rc=2",
        False,
    )
    assert [o.op_id for o in store.pending_operations("a")] == [o1]
    with pytest.raises(KeyError):
        store.finish_operation(9999, None)
    assert store.get_operation(9999) is None


def test_pending_operations_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as s:
        s.put_app("a", "x", {}, PLAN, "running")
        op = s.begin_operation("a", "workers", "scale", 4, "key-1")
        done = s.begin_operation("a", "workers", "scale", 5, "key-2")
        s.finish_operation(done, {"ok": True})
    with Store(path) as s:
        pending = s.pending_operations()
        assert [(p.op_id, p.group, p.kind, p.desired, p.idempotency_key) for p in pending] == [
            (op, "workers", "scale", 4, "key-1")
        ]
        assert s.get_app("a").plan == PLAN
        assert s.begin_operation("a", "workers", "scale", 4, "key-1") == op


# -- events -----------------------------------------------------------------------------------


def test_events_query(store: Store) -> None:
    ids = [
        store.add_event("a" if i % 2 == 0 else "b", "decision", f"m{i}", {"i": i})
        for i in range(10)
    ]
    store.add_event(None, "error", "controller-level")
    all_ev = store.events()
    assert [e.message for e in all_ev][-1] == "controller-level"
    assert [e.event_id for e in all_ev] == sorted(e.event_id for e in all_ev)  # newest last
    assert [e.message for e in store.events(limit=3)] == ["m8", "m9", "controller-level"]
    assert [e.message for e in store.events("a")] == ["m0", "m2", "m4", "m6", "m8"]
    assert [e.data for e in store.events("b", limit=2)] == [{"i": 7}, {"i": 9}]
    # since_id pages forward without skipping.
    assert [e.message for e in store.events(since_id=ids[2], limit=3)] == ["m3", "m4", "m5"]
    assert [e.message for e in store.events("a", since_id=ids[4])] == ["m6", "m8"]
    assert store.events(limit=0) == []
    assert store.events()[-1].data is None


def test_prune_events(store: Store, clock: Clock) -> None:
    for i in range(10):
        clock.t = 1000.0 + i * 10  # 1000 .. 1090
        store.add_event("a", "decision", f"m{i}")
    clock.t = 1100.0
    assert store.prune_events(max_age_seconds=55) == 5  # ts < 1045 go
    assert [e.message for e in store.events()] == ["m5", "m6", "m7", "m8", "m9"]
    assert store.prune_events(max_rows=2) == 3
    assert [e.message for e in store.events()] == ["m8", "m9"]
    assert store.prune_events(max_age_seconds=1000, max_rows=10) == 0
    assert store.prune_events() == 0
    assert store.prune_events(max_rows=0) == 2
    assert store.events() == []
    with pytest.raises(ValueError):
        store.prune_events(max_age_seconds=-1)
    with pytest.raises(ValueError):
        store.prune_events(max_rows=-1)


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_writers_from_threads(store: Store) -> None:
    store.put_app("a", "x", {}, {}, "running")
    n_threads, n_iter = 8, 40
    errors: list[BaseException] = []
    op_ids: list[list[int]] = [[] for _ in range(n_threads)]
    barrier = threading.Barrier(n_threads)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(n_iter):
                store.add_event("a", "decision", f"t{t}-{i}")
                # Every thread races to record the same decisions: exactly one op per key.
                op_ids[t].append(store.begin_operation("a", "g", "scale", i, f"key-{i}"))
                store.save_target("a", f"target-{t}", {"i": i}, {"desired": i})
                store.put_app(f"app-{t}", "x", {"i": i}, {}, "running")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(store.events(limit=10_000)) == n_threads * n_iter
    assert len(store.pending_operations()) == n_iter
    assert all(ids == op_ids[0] for ids in op_ids)
    assert len(set(op_ids[0])) == n_iter
    for t in range(n_threads):
        assert store.load_target("a", f"target-{t}").state == {"i": n_iter - 1}
        assert store.get_app(f"app-{t}").params == {"i": n_iter - 1}
    assert store.integrity_check() == "ok"


def test_two_stores_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    s1, s2 = Store(path), Store(path)
    try:
        s1.put_app("a", "x", {}, {}, "running")
        op = s2.begin_operation("a", "g", "scale", 1, "k")
        assert s1.begin_operation("a", "g", "scale", 1, "k") == op
        assert s1.pending_operations()[0].op_id == op
    finally:
        s1.close()
        s2.close()


# -- kill -9 durability -----------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from micado.control.store import Store

    s = Store(sys.argv[1])
    big = "x" * 20_000  # spans several pages, so a torn write would show
    i = 0
    while True:
        app = f"app-{i}"
        s.put_app(app, f"adt {i} " + big, {"i": i}, {"i": i, "pad": big}, "running")
        ev = s.add_event(app, "decision", f"event {i}", {"i": i})
        op = s.begin_operation(app, "workers", "scale", i, f"key-{i}")
        s.save_target(app, "web", {"i": i}, {"desired": i})
        if i % 3 == 0:
            s.finish_operation(op, {"i": i})
        print(i, ev, op, flush=True)
        i += 1
    """
)


def test_kill_9_durability(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    src = str(Path(__file__).resolve().parents[2] / "controller")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    committed: list[tuple[int, int, int]] = []
    deadline = time.monotonic() + 60  # 40 commits, however loaded the machine
    try:
        assert proc.stdout is not None
        while len(committed) < 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed.append(tuple(int(x) for x in line.split()))
        # Kill mid-loop: the child is busy writing the next iteration.
        os.kill(proc.pid, signal.SIGKILL)
        rest, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, err
    # Lines flushed before the kill are committed too; a partial last line is not.
    for line in rest.splitlines():
        parts = line.split()
        if len(parts) == 3:
            committed.append(tuple(int(x) for x in parts))
    assert len(committed) >= 10, f"child too slow or failed: {err}"

    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    with Store(path) as s:
        assert s.integrity_check() == "ok"
        for i, ev, op in committed:
            app = s.get_app(f"app-{i}")
            assert app is not None and app.params == {"i": i}
            assert s.events(since_id=ev - 1, limit=1)[0].message == f"event {i}"
            rec = s.get_operation(op)
            assert (rec.app_id, rec.desired, rec.idempotency_key) == (f"app-{i}", i, f"key-{i}")
            assert rec.pending == (i % 3 != 0)
            assert s.load_target(f"app-{i}", "web").state == {"i": i}
        # Nothing half-written: every row that exists (committed or not yet reported) is whole.
        big = "x" * 20_000
        for app in s.list_apps():
            i = app.params["i"]
            assert app.adt_source == f"adt {i} " + big
            assert app.plan == {"i": i, "pad": big}
        for e in s.events(limit=100_000):
            assert e.message == f"event {e.data['i']}"
        for o in s.pending_operations():
            assert o.idempotency_key == f"key-{o.desired}"
        # The restarted controller sees the unfinished ops and re-recording one is a no-op.
        i, _, op = committed[-1]
        assert s.begin_operation(f"app-{i}", "workers", "scale", i, f"key-{i}") == op


def test_events_json_roundtrip(store: Store) -> None:
    data = {"nested": {"list": [1, 2.5, None, True, "s"]}}
    eid = store.add_event("a", "action", "scaled", data)
    assert store.events()[-1].event_id == eid
    assert store.events()[-1].data == json.loads(json.dumps(data))


# -- object claims: one app per Kubernetes object ---------------------------------------------

WEB = ("Deployment", "default", "web")
SVC = ("Service", "default", "web")


def test_an_object_claimed_by_one_app_cannot_be_claimed_by_another(store: Store) -> None:
    store.put_app("a", "adt", {}, PLAN, claim=[WEB, SVC])
    with pytest.raises(ObjectClaimed) as info:
        store.put_app("b", "adt", {}, PLAN, claim=[("ConfigMap", "default", "b"), WEB])
    assert info.value.owners == {WEB: "a"}
    assert store.get_app("b") is None  # nothing of the refused request was written
    assert store.object_owner(("ConfigMap", "default", "b")) is None
    assert set(store.app_objects("a")) == {WEB, SVC}
    store.put_app("a", "adt v2", {}, PLAN, claim=[WEB])  # its own claims: no conflict


def test_claims_are_released_with_the_app_and_by_release_objects(store: Store) -> None:
    store.put_app("a", "adt", {}, PLAN, claim=[WEB, SVC])
    store.record_applied("a", [(WEB, {"kind": "Deployment"}, {"spec": {"x": 1}})])
    assert store.app_objects("a")[WEB].expected == {"spec": {"x": 1}}
    assert store.app_objects("a")[SVC].manifest is None  # claimed, not applied yet
    assert store.release_objects("a", keep=[WEB]) == 1
    assert store.object_owner(SVC) is None
    store.delete_app("a")
    assert store.object_owner(WEB) is None
    store.put_app("b", "adt", {}, PLAN, claim=[WEB, SVC])
    assert store.object_owner(WEB) == "b"


def test_concurrent_claims_of_one_object_from_two_connections_give_one_owner(
        tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    stores = [Store(path) for _ in range(4)]
    winners: list[str] = []
    refused: list[str] = []
    barrier = threading.Barrier(20)

    def claim(index: int) -> None:
        app_id = f"app-{index}"
        barrier.wait()
        try:
            stores[index % 4].put_app(app_id, "adt", {}, PLAN, claim=[WEB])
            winners.append(app_id)
        except ObjectClaimed as exc:
            refused.append(exc.owners[WEB])

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(winners) == 1 and len(refused) == 19
        assert set(refused) == set(winners)
        assert stores[0].object_owner(WEB) == winners[0]
        assert [a.app_id for a in stores[0].list_apps()] == winners
    finally:
        for s in stores:
            s.close()


# -- node groups --------------------------------------------------------------------------------

def _plan(*groups: str) -> dict:
    return {"app_id": "a", "node_groups": [{"name": g, "cloud": "ec2"} for g in groups]}


def test_node_groups_follow_the_plan_and_outlive_their_app_until_forgotten(
        store: Store) -> None:
    store.put_app("a", "adt", {}, _plan("w", "db"))
    assert [(g.group, g.removing) for g in store.node_groups("a")] == [("db", False),
                                                                        ("w", False)]
    store.save_group_vms("a", "w", [{"name": "w-a-1", "id": "i-1"}])
    store.save_group_event("a", "w", "task: Wait")
    store.put_app("a", "adt", {}, _plan("w"))  # db left the app: its VMs must go
    groups = {g.group: g for g in store.node_groups("a")}
    assert groups["db"].removing and not groups["w"].removing
    assert groups["w"].vms == [{"name": "w-a-1", "id": "i-1"}]
    assert groups["w"].last_event == "task: Wait" and groups["w"].spec["cloud"] == "ec2"
    store.delete_app("a")
    assert [(g.group, g.removing) for g in store.node_groups()] == [("db", True), ("w", True)]
    assert store.forget_node_group("a", "db") is True
    store.put_app("a", "adt", {}, _plan("w"))  # submitted again: w is its group again
    assert store.forget_node_group("a", "w") is False
    assert [(g.group, g.removing) for g in store.node_groups()] == [("w", False)]


def test_the_node_groups_of_apps_stored_before_them_are_recorded_at_migration(
        tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as s:
        s.put_app("a", "adt", {}, _plan("w"))
    with sqlite3.connect(path) as old:  # back to schema 3, as an older controller left it
        old.execute("DROP TABLE node_groups")
        old.execute("UPDATE schema_version SET version = 3")
    with Store(path) as s:
        assert [(g.app_id, g.group, g.removing, g.spec["cloud"]) for g in s.node_groups()] == [
            ("a", "w", False, "ec2")]
