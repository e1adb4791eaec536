"""Persistent controller state in SQLite (WAL).

The controller must survive a restart, ``kill -9`` included, with every app resuming without
resubmission and no action performed twice. Everything it needs for that lives here: apps (ADT
source, parameters, compiled plan, status), per-target policy state and the app's shared
``m_userdata``, node-group operations in flight (recorded *before* acting, keyed by an
idempotency key) and an event log with retention.

Design choices:

* stdlib ``sqlite3`` only, WAL journal so readers (API) never block the writer (loop).
* ``synchronous=FULL``: in WAL mode ``NORMAL`` survives a process crash but may lose the last
  commits on power loss or an OS crash. An operation the controller recorded and then acted on
  must never disappear, or a restarted controller would act again; so every commit is fsynced.
* One connection per ``Store`` guarded by a re-entrant lock (``check_same_thread=False``).
  SQLite serialises writers anyway, the controller's write rate is low, and one connection keeps
  transactions simple and avoids ``SQLITE_BUSY`` between threads of one process. Several
  processes may open the same file; ``busy_timeout`` makes them wait for each other.
* Every public write is one ``BEGIN IMMEDIATE`` transaction: all-or-nothing, and the write lock
  is taken up front so a read-then-write (e.g. idempotent ``begin_operation``) cannot race.
* The DB file and its ``-wal``/``-shm`` are mode 0600: ADTs may carry secrets (cloud
  credentials). The file is created 0600 before SQLite opens it (SQLite gives ``-wal``/``-shm``
  the mode of the DB file) and all three are chmodded after opening as a belt and braces. The
  process umask is not touched: it is process-global and racy with other threads.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

APP_STATUSES = ("submitted", "running", "paused", "deleting", "failed")

# Each migration is a list of statements; version N is migrations[N - 1]. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""CREATE TABLE apps (
            app_id TEXT PRIMARY KEY,
            adt_source TEXT NOT NULL,
            params TEXT NOT NULL,
            plan TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in APP_STATUSES)})),
            reason TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE target_state (
            app_id TEXT NOT NULL REFERENCES apps(app_id) ON DELETE CASCADE,
            target TEXT NOT NULL,
            state TEXT NOT NULL,
            last_decision TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (app_id, target)
        )""",
        """CREATE TABLE userdata (
            app_id TEXT PRIMARY KEY REFERENCES apps(app_id) ON DELETE CASCADE,
            data TEXT NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE operations (
            op_id INTEGER PRIMARY KEY AUTOINCREMENT,
            app_id TEXT NOT NULL REFERENCES apps(app_id) ON DELETE CASCADE,
            grp TEXT NOT NULL,
            kind TEXT NOT NULL,
            desired INTEGER NOT NULL,
            idempotency_key TEXT NOT NULL UNIQUE,
            started_at REAL NOT NULL,
            finished_at REAL,
            result TEXT,
            error TEXT
        )""",
        "CREATE INDEX operations_pending ON operations (app_id) WHERE finished_at IS NULL",
        # No foreign key: the log outlives the app (an "app deleted" event must be recordable,
        # and audit history should not vanish with the app); retention bounds it instead.
        """CREATE TABLE events (
            event_id INTEGER PRIMARY KEY AUTOINCREMENT,
            app_id TEXT,
            ts REAL NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL,
            data TEXT
        )""",
        "CREATE INDEX events_app ON events (app_id, event_id)",
        "CREATE INDEX events_ts ON events (ts)",
    ),
    # 2: per-app tick (NULL: the controller's default) and a version bumped by every change
    ("ALTER TABLE apps ADD COLUMN tick_seconds REAL",
     "ALTER TABLE apps ADD COLUMN version INTEGER NOT NULL DEFAULT 1"),
    # 3: which app owns which Kubernetes object (one owner per kind/namespace/name: the claim
    # is the lock that keeps two apps from applying the same object), and what was applied
    (
        """CREATE TABLE app_objects (
            kind TEXT NOT NULL,
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            app_id TEXT NOT NULL REFERENCES apps(app_id) ON DELETE CASCADE,
            manifest TEXT,
            expected TEXT,
            PRIMARY KEY (kind, namespace, name)
        )""",
        "CREATE INDEX app_objects_app ON app_objects (app_id)",
    ),
    # 4: the node groups whose VMs this controller made, with the spec to reach their cloud.
    # No foreign key: a group outlives its app until its VMs are gone (`removing`), so a crash
    # between deleting an app and deleting its VMs never leaks them. `vms`: the group's VMs as
    # the last run or listing saw them (for `micado status`, across restarts).
    (
        """CREATE TABLE node_groups (
            app_id TEXT NOT NULL,
            grp TEXT NOT NULL,
            spec TEXT NOT NULL,
            removing INTEGER NOT NULL DEFAULT 0,
            vms TEXT,
            vms_at REAL,
            last_event TEXT,
            last_event_at REAL,
            PRIMARY KEY (app_id, grp)
        )""",
        # groups of apps stored before this migration
        """INSERT INTO node_groups (app_id, grp, spec)
           SELECT apps.app_id, json_extract(g.value, '$.name'), g.value
           FROM apps, json_each(apps.plan, '$.node_groups') AS g""",
    ),
)


class StoreError(RuntimeError):
    """The database cannot be used (e.g. written by a newer controller)."""


ObjectKey = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name


class ObjectClaimed(Exception):
    """Objects an app wants are owned by other apps: `owners` maps each to its owner."""

    def __init__(self, owners: dict[ObjectKey, str]) -> None:
        super().__init__(", ".join(f"{k[0]} {k[1] + '/' if k[1] else ''}{k[2]}: {o}"
                                   for k, o in sorted(owners.items())))
        self.owners = owners


@dataclass(frozen=True)
class AppObject:
    """A Kubernetes object an app owns: the manifest last applied (None until applied) and
    what the server returned for the fields it sets (`expected`), to tell drift from defaults."""

    kind: str
    namespace: str
    name: str
    app_id: str
    manifest: dict[str, Any] | None
    expected: Any

    @property
    def key(self) -> ObjectKey:
        return self.kind, self.namespace, self.name


@dataclass(frozen=True)
class App:
    app_id: str
    adt_source: str
    params: dict[str, Any]
    plan: dict[str, Any]
    status: str
    reason: str | None
    created_at: float
    updated_at: float
    tick_seconds: float | None = None
    version: int = 1  # bumped by every change of the app


@dataclass(frozen=True)
class TargetRecord:
    app_id: str
    target: str
    state: dict[str, Any]
    last_decision: dict[str, Any]
    updated_at: float


@dataclass(frozen=True)
class Operation:
    """A node-group action recorded before it is started; unfinished ones need reconciling."""

    op_id: int
    app_id: str
    group: str
    kind: str
    desired: int
    idempotency_key: str
    started_at: float
    finished_at: float | None
    result: Any
    error: str | None

    @property
    def pending(self) -> bool:
        return self.finished_at is None


@dataclass(frozen=True)
class NodeGroupRecord:
    """A node group this controller makes VMs for; `removing`: its app or the group was
    deleted, its VMs must go (the record goes once they have)."""

    app_id: str
    group: str
    spec: dict[str, Any]
    removing: bool
    vms: list[dict[str, Any]] | None
    vms_at: float | None
    last_event: str | None
    last_event_at: float | None


@dataclass(frozen=True)
class Event:
    event_id: int
    app_id: str | None
    ts: float
    kind: str
    message: str
    data: Any


def _to_json(value: Any, what: str) -> str:
    """Serialise strictly (no NaN/inf, no arbitrary objects) so what we store always loads."""
    try:
        return json.dumps(value, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from exc


def _from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _require_dict(value: Any, what: str) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a dict, got {type(value).__name__}")


def _chmod_private(path: str) -> None:
    with suppress(FileNotFoundError):
        os.chmod(path, 0o600)


class Store:
    """SQLite-backed controller state; safe to share between threads of one process."""

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = os.fspath(path)
        self._clock = clock
        self._lock = threading.RLock()
        # Create the file 0600 before SQLite does (it would use 0644 & ~umask).
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            os.fchmod(fd, 0o600)  # tighten a pre-existing file too
        finally:
            os.close(fd)
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        try:
            self._conn.execute("PRAGMA busy_timeout = 30000")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot enable WAL (journal_mode={mode})")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            for suffix in ("", "-wal", "-shm"):
                _chmod_private(self.path + suffix)
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, lock taken up front; rolled back on any error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _migrate(self) -> None:
        """Bring the schema to the latest version; a no-op when already there."""
        with self._tx() as c:
            c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = c.execute("SELECT version FROM schema_version").fetchone()
            current = 0 if row is None else int(row[0])
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path}: schema version {current} is newer than this controller "
                    f"supports ({len(MIGRATIONS)})"
                )
            for statements in MIGRATIONS[current:]:
                for sql in statements:
                    c.execute(sql)
            if row is None:
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS),))
            else:
                c.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))

    def schema_version(self) -> int:
        return int(self._read("SELECT version FROM schema_version")[0][0])

    def integrity_check(self) -> str:
        """``ok`` when SQLite finds the file sound."""
        return str(self._read("PRAGMA integrity_check")[0][0])

    # -- apps ---------------------------------------------------------------------------------

    @staticmethod
    def _check_status(status: str) -> None:
        if status not in APP_STATUSES:
            raise ValueError(f"unknown app status {status!r}; expected one of {APP_STATUSES}")

    def put_app(
        self,
        app_id: str,
        adt_source: str,
        params: dict[str, Any],
        plan_dict: dict[str, Any],
        status: str = "submitted",
        tick_seconds: float | None = None,
        claim: Sequence[ObjectKey] = (),
    ) -> None:
        """Create or replace an app (keeps its created_at, target state and operations).

        `claim`: Kubernetes objects the app will own, claimed in the same transaction; when
        another app owns any of them, nothing is written and `ObjectClaimed` says who.
        """
        self._check_status(status)
        _require_dict(params, "params")
        _require_dict(plan_dict, "plan")
        params_s, plan_s = _to_json(params, "params"), _to_json(plan_dict, "plan")
        now = self._clock()
        with self._tx() as c:
            self._check_claims(c, app_id, claim)
            c.execute(
                """INSERT INTO apps (app_id, adt_source, params, plan, status, reason,
                                     created_at, updated_at, tick_seconds)
                   VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?)
                   ON CONFLICT (app_id) DO UPDATE SET
                     adt_source = excluded.adt_source, params = excluded.params,
                     plan = excluded.plan, status = excluded.status, reason = NULL,
                     updated_at = excluded.updated_at, tick_seconds = excluded.tick_seconds,
                     version = apps.version + 1""",
                (app_id, adt_source, params_s, plan_s, status, now, now, tick_seconds),
            )
            self._insert_claims(c, app_id, claim)
            self._record_node_groups(c, app_id, plan_dict.get("node_groups") or [])

    @staticmethod
    def _record_node_groups(c: sqlite3.Connection, app_id: str, groups: list[Any]) -> None:
        """The app's node groups as its plan has them; groups that left it are removing."""
        specs = {g["name"]: g for g in groups if isinstance(g, dict) and g.get("name")}
        c.executemany(
            """INSERT INTO node_groups (app_id, grp, spec) VALUES (?, ?, ?)
               ON CONFLICT (app_id, grp) DO UPDATE SET spec = excluded.spec, removing = 0""",
            [(app_id, name, _to_json(spec, "node group")) for name, spec in specs.items()])
        rows = c.execute("SELECT grp FROM node_groups WHERE app_id = ?", (app_id,)).fetchall()
        c.executemany("UPDATE node_groups SET removing = 1 WHERE app_id = ? AND grp = ?",
                      [(app_id, r[0]) for r in rows if r[0] not in specs])

    @staticmethod
    def _check_claims(c: sqlite3.Connection, app_id: str, keys: Sequence[ObjectKey]) -> None:
        owners: dict[ObjectKey, str] = {}
        for kind, namespace, name in keys:
            row = c.execute("SELECT app_id FROM app_objects WHERE kind = ? AND namespace = ? "
                            "AND name = ?", (kind, namespace, name)).fetchone()
            if row is not None and row[0] != app_id:
                owners[kind, namespace, name] = row[0]
        if owners:
            raise ObjectClaimed(owners)

    @staticmethod
    def _insert_claims(c: sqlite3.Connection, app_id: str, keys: Sequence[ObjectKey]) -> None:
        c.executemany("INSERT OR IGNORE INTO app_objects (kind, namespace, name, app_id) "
                      "VALUES (?, ?, ?, ?)", [(*key, app_id) for key in keys])

    _APP_COLS = ("app_id, adt_source, params, plan, status, reason, created_at, updated_at, "
                 "tick_seconds, version")

    @staticmethod
    def _app(row: tuple[Any, ...]) -> App:
        return App(row[0], row[1], json.loads(row[2]), json.loads(row[3]), *row[4:])

    def get_app(self, app_id: str) -> App | None:
        rows = self._read(f"SELECT {self._APP_COLS} FROM apps WHERE app_id = ?", (app_id,))
        return self._app(rows[0]) if rows else None

    def list_apps(self, status: str | None = None) -> list[App]:
        """All apps (optionally of one status), ordered by id for stable output."""
        if status is None:
            rows = self._read(f"SELECT {self._APP_COLS} FROM apps ORDER BY app_id")
        else:
            self._check_status(status)
            rows = self._read(
                f"SELECT {self._APP_COLS} FROM apps WHERE status = ? ORDER BY app_id", (status,)
            )
        return [self._app(r) for r in rows]

    def set_app_status(self, app_id: str, status: str, reason: str | None = None) -> None:
        self._check_status(status)
        with self._tx() as c:
            cur = c.execute(
                "UPDATE apps SET status = ?, reason = ?, updated_at = ?, version = version + 1 "
                "WHERE app_id = ?",
                (status, reason, self._clock(), app_id),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no app {app_id!r}")

    def delete_app(self, app_id: str) -> bool:
        """Delete an app with its target state, userdata and operations; False if absent.
        Its node groups stay, marked removing, until their VMs are gone."""
        with self._tx() as c:
            c.execute("UPDATE node_groups SET removing = 1 WHERE app_id = ?", (app_id,))
            return c.execute("DELETE FROM apps WHERE app_id = ?", (app_id,)).rowcount > 0

    # -- the Kubernetes objects of an app -----------------------------------------------------

    def app_objects(self, app_id: str) -> dict[ObjectKey, AppObject]:
        """The objects an app owns (claimed, and what was applied once it was)."""
        rows = self._read("SELECT kind, namespace, name, app_id, manifest, expected "
                          "FROM app_objects WHERE app_id = ? ORDER BY kind, namespace, name",
                          (app_id,))
        objects = [AppObject(*r[:4], _from_json(r[4]), _from_json(r[5])) for r in rows]
        return {o.key: o for o in objects}

    def object_owner(self, key: ObjectKey) -> str | None:
        rows = self._read("SELECT app_id FROM app_objects WHERE kind = ? AND namespace = ? "
                          "AND name = ?", key)
        return rows[0][0] if rows else None

    def claim_objects(self, app_id: str, keys: Sequence[ObjectKey]) -> None:
        """Claim objects for an existing app: all of them, or none and `ObjectClaimed`."""
        with self._tx() as c:
            self._check_claims(c, app_id, keys)
            self._insert_claims(c, app_id, keys)

    def record_applied(self, app_id: str,
                       applied: Sequence[tuple[ObjectKey, dict[str, Any], Any]]) -> None:
        """Remember what was applied for objects the app owns: `(key, manifest, expected)`."""
        rows = [(_to_json(manifest, "manifest"), _to_json(expected, "expected fields"),
                 app_id, *key) for key, manifest, expected in applied]
        with self._tx() as c:
            c.executemany("UPDATE app_objects SET manifest = ?, expected = ? "
                          "WHERE app_id = ? AND kind = ? AND namespace = ? AND name = ?", rows)

    def release_objects(self, app_id: str, keep: Sequence[ObjectKey]) -> int:
        """Give up the app's claims on objects not in `keep` (they left the app)."""
        kept = {tuple(k) for k in keep}
        with self._tx() as c:
            rows = c.execute("SELECT kind, namespace, name FROM app_objects WHERE app_id = ?",
                             (app_id,)).fetchall()
            gone = [r for r in rows if tuple(r) not in kept]
            c.executemany("DELETE FROM app_objects WHERE kind = ? AND namespace = ? "
                          "AND name = ?", gone)
            return len(gone)

    # -- per-target state and m_userdata ------------------------------------------------------

    def save_target(
        self,
        app_id: str,
        target: str,
        state_json: dict[str, Any],
        last_decision: dict[str, Any],
    ) -> None:
        """Persist one target's policy state and its last decision (with reason) atomically."""
        _require_dict(state_json, "target state")
        _require_dict(last_decision, "last decision")
        state_s = _to_json(state_json, "target state")
        decision_s = _to_json(last_decision, "last decision")
        with self._tx() as c:
            c.execute(
                """INSERT INTO target_state (app_id, target, state, last_decision, updated_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (app_id, target) DO UPDATE SET
                     state = excluded.state, last_decision = excluded.last_decision,
                     updated_at = excluded.updated_at""",
                (app_id, target, state_s, decision_s, self._clock()),
            )

    def save_tick(
        self,
        app_id: str,
        targets: dict[str, tuple[dict[str, Any], dict[str, Any]]],
        userdata: dict[str, Any] | None,
        events: Sequence[tuple[str, str, Any]] = (),
    ) -> None:
        """One tick of an app in one transaction: target states with their decisions
        (``target: (state, decision)``), ``m_userdata`` and events ``(kind, message, data)``.

        One fsync per app per tick instead of one per row, and a crash leaves either the
        whole tick or none of it.
        """
        rows = []
        for target, (state, decision) in targets.items():
            _require_dict(state, "target state")
            _require_dict(decision, "last decision")
            rows.append((target, _to_json(state, "target state"),
                         _to_json(decision, "last decision")))
        data_s = None if userdata is None else _to_json(userdata, "m_userdata")
        event_rows = [(kind, message, None if data is None else _to_json(data, "event data"))
                      for kind, message, data in events]
        now = self._clock()
        with self._tx() as c:
            if c.execute("SELECT 1 FROM apps WHERE app_id = ?", (app_id,)).fetchone() is None:
                return  # deleted while its tick ran: nothing to keep
            c.executemany(
                """INSERT INTO target_state (app_id, target, state, last_decision, updated_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (app_id, target) DO UPDATE SET
                     state = excluded.state, last_decision = excluded.last_decision,
                     updated_at = excluded.updated_at""",
                [(app_id, t, st, d, now) for t, st, d in rows],
            )
            if data_s is not None:
                c.execute(
                    """INSERT INTO userdata (app_id, data, updated_at) VALUES (?, ?, ?)
                       ON CONFLICT (app_id) DO UPDATE SET
                         data = excluded.data, updated_at = excluded.updated_at""",
                    (app_id, data_s, now),
                )
            c.executemany(
                "INSERT INTO events (app_id, ts, kind, message, data) VALUES (?, ?, ?, ?, ?)",
                [(app_id, now, kind, message, data) for kind, message, data in event_rows],
            )

    def delete_targets(self, app_id: str, keep: set[str]) -> int:
        """Forget the state of targets that left the app (after an update)."""
        with self._tx() as c:
            rows = c.execute("SELECT target FROM target_state WHERE app_id = ?",
                             (app_id,)).fetchall()
            gone = [r[0] for r in rows if r[0] not in keep]
            c.executemany("DELETE FROM target_state WHERE app_id = ? AND target = ?",
                          [(app_id, t) for t in gone])
            return len(gone)

    def load_target(self, app_id: str, target: str) -> TargetRecord | None:
        rows = self._read(
            """SELECT app_id, target, state, last_decision, updated_at FROM target_state
               WHERE app_id = ? AND target = ?""",
            (app_id, target),
        )
        if not rows:
            return None
        r = rows[0]
        return TargetRecord(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4])

    def load_targets(self, app_id: str) -> dict[str, TargetRecord]:
        """Every target of an app, for resuming the whole app after a restart."""
        rows = self._read(
            """SELECT app_id, target, state, last_decision, updated_at FROM target_state
               WHERE app_id = ? ORDER BY target""",
            (app_id,),
        )
        return {
            r[1]: TargetRecord(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4]) for r in rows
        }

    def save_userdata(self, app_id: str, data: dict[str, Any]) -> None:
        """Persist the app's shared ``m_userdata`` (one JSON document per app)."""
        _require_dict(data, "m_userdata")
        data_s = _to_json(data, "m_userdata")
        with self._tx() as c:
            c.execute(
                """INSERT INTO userdata (app_id, data, updated_at) VALUES (?, ?, ?)
                   ON CONFLICT (app_id) DO UPDATE SET
                     data = excluded.data, updated_at = excluded.updated_at""",
                (app_id, data_s, self._clock()),
            )

    def load_userdata(self, app_id: str) -> dict[str, Any]:
        """The app's ``m_userdata``; empty when never saved."""
        rows = self._read("SELECT data FROM userdata WHERE app_id = ?", (app_id,))
        return json.loads(rows[0][0]) if rows else {}

    # -- node-group operations ----------------------------------------------------------------

    _OP_COLS = (
        "op_id, app_id, grp, kind, desired, idempotency_key, started_at, finished_at, result, error"
    )

    @staticmethod
    def _op(r: tuple[Any, ...]) -> Operation:
        return Operation(*r[:8], _from_json(r[8]), r[9])

    def begin_operation(
        self, app_id: str, group: str, kind: str, desired: int, idempotency_key: str
    ) -> int:
        """Record an action before performing it; returns its id.

        The same ``idempotency_key`` (e.g. derived from app, group and decision tick) always
        yields the same operation, so a decision replayed after a crash is never recorded or
        acted on twice. Reusing a key for a different action is a bug and raises ValueError.
        """
        if not idempotency_key:
            raise ValueError("idempotency_key must be a non-empty string")
        if isinstance(desired, bool) or not isinstance(desired, int):
            raise ValueError(f"desired must be an int, got {desired!r}")
        with self._tx() as c:
            row = c.execute(
                f"SELECT {self._OP_COLS} FROM operations WHERE idempotency_key = ?",
                (idempotency_key,),
            ).fetchone()
            if row is not None:
                op = self._op(row)
                if (op.app_id, op.group, op.kind, op.desired) != (app_id, group, kind, desired):
                    raise ValueError(
                        f"idempotency key {idempotency_key!r} already used for "
                        f"{op.kind} {op.app_id}/{op.group} -> {op.desired}"
                    )
                return op.op_id
            cur = c.execute(
                """INSERT INTO operations (app_id, grp, kind, desired, idempotency_key,
                                           started_at)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                (app_id, group, kind, desired, idempotency_key, self._clock()),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def finish_operation(self, op_id: int, result: Any, error: str | None = None) -> bool:
        """Mark an operation done; False (and nothing changed) if it was already finished."""
        result_s = _to_json(result, "operation result")
        with self._tx() as c:
            row = c.execute(
                "SELECT finished_at FROM operations WHERE op_id = ?", (op_id,)
            ).fetchone()
            if row is None:
                raise KeyError(f"no operation {op_id}")
            if row[0] is not None:
                return False
            c.execute(
                "UPDATE operations SET finished_at = ?, result = ?, error = ? WHERE op_id = ?",
                (self._clock(), result_s, error, op_id),
            )
            return True

    def get_operation(self, op_id: int) -> Operation | None:
        rows = self._read(f"SELECT {self._OP_COLS} FROM operations WHERE op_id = ?", (op_id,))
        return self._op(rows[0]) if rows else None

    def pending_operations(self, app_id: str | None = None) -> list[Operation]:
        """Unfinished operations, oldest first: reconcile these after a restart, never re-run."""
        sql = f"SELECT {self._OP_COLS} FROM operations WHERE finished_at IS NULL"
        args: tuple[Any, ...] = ()
        if app_id is not None:
            sql += " AND app_id = ?"
            args = (app_id,)
        return [self._op(r) for r in self._read(sql + " ORDER BY op_id", args)]

    def latest_operations(self, app_id: str) -> dict[str, Operation]:
        """The newest operation of each node group of an app (finished or not)."""
        rows = self._read(
            f"""SELECT {self._OP_COLS} FROM operations WHERE op_id IN
                (SELECT MAX(op_id) FROM operations WHERE app_id = ? GROUP BY grp)""",
            (app_id,),
        )
        return {op.group: op for op in map(self._op, rows)}

    def app_versions(self) -> dict[str, tuple[str, int]]:
        """``app_id: (status, version)`` of every app: a cheap way to notice changes."""
        return {r[0]: (r[1], r[2])
                for r in self._read("SELECT app_id, status, version FROM apps")}

    # -- node groups and their VMs ------------------------------------------------------------

    _GROUP_COLS = "app_id, grp, spec, removing, vms, vms_at, last_event, last_event_at"

    def node_groups(self, app_id: str | None = None) -> list[NodeGroupRecord]:
        """The node groups this controller makes VMs for (removing ones too), by app, group."""
        sql = f"SELECT {self._GROUP_COLS} FROM node_groups"
        args: tuple[Any, ...] = ()
        if app_id is not None:
            sql += " WHERE app_id = ?"
            args = (app_id,)
        return [NodeGroupRecord(r[0], r[1], json.loads(r[2]), bool(r[3]), _from_json(r[4]),
                                *r[5:]) for r in self._read(sql + " ORDER BY app_id, grp", args)]

    def save_group_vms(self, app_id: str, group: str, vms: list[dict[str, Any]]) -> None:
        """The group's VMs as a run or a listing just saw them (no-op for an unknown group)."""
        vms_s = _to_json(vms, "VMs")
        with self._tx() as c:
            c.execute("UPDATE node_groups SET vms = ?, vms_at = ? WHERE app_id = ? AND grp = ?",
                      (vms_s, self._clock(), app_id, group))

    def save_group_event(self, app_id: str, group: str, text: str) -> None:
        """The group's last runner event, for `micado status` after a restart too."""
        with self._tx() as c:
            c.execute("UPDATE node_groups SET last_event = ?, last_event_at = ? "
                      "WHERE app_id = ? AND grp = ?", (text, self._clock(), app_id, group))

    def forget_node_group(self, app_id: str, group: str) -> bool:
        """Drop a removing group whose VMs are gone; False if it is not (or no longer)
        removing: its app was submitted again meanwhile."""
        with self._tx() as c:
            return c.execute("DELETE FROM node_groups WHERE app_id = ? AND grp = ? "
                             "AND removing = 1", (app_id, group)).rowcount > 0

    # -- events -------------------------------------------------------------------------------

    def add_event(self, app_id: str | None, kind: str, message: str, data: Any = None) -> int:
        """Append to the event log (decisions, actions, errors); returns the event id."""
        data_s = None if data is None else _to_json(data, "event data")
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO events (app_id, ts, kind, message, data) VALUES (?, ?, ?, ?, ?)",
                (app_id, self._clock(), kind, message, data_s),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def events(
        self, app_id: str | None = None, since_id: int | None = None, limit: int = 100
    ) -> list[Event]:
        """Events, newest last.

        Without ``since_id``: the latest ``limit``. With it: the first ``limit`` after that id,
        so a follower paging with the last id it saw never skips an event.
        """
        if limit <= 0:
            return []
        where, args = [], []
        if app_id is not None:
            where.append("app_id = ?")
            args.append(app_id)
        if since_id is not None:
            where.append("event_id > ?")
            args.append(since_id)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        order = "ASC" if since_id is not None else "DESC"
        rows = self._read(
            f"SELECT event_id, app_id, ts, kind, message, data FROM events{clause} "
            f"ORDER BY event_id {order} LIMIT ?",
            (*args, limit),
        )
        if since_id is None:
            rows.reverse()
        return [Event(*r[:5], _from_json(r[5])) for r in rows]

    def prune_events(
        self, max_age_seconds: float | None = None, max_rows: int | None = None
    ) -> int:
        """Retention: drop events older than ``max_age_seconds`` and all but the newest
        ``max_rows``; returns how many were deleted."""
        if max_age_seconds is not None and (math.isnan(max_age_seconds) or max_age_seconds < 0):
            raise ValueError(f"max_age_seconds must be >= 0, got {max_age_seconds}")
        if max_rows is not None and max_rows < 0:
            raise ValueError(f"max_rows must be >= 0, got {max_rows}")
        deleted = 0
        with self._tx() as c:
            if max_age_seconds is not None:
                cutoff = self._clock() - max_age_seconds
                deleted += c.execute("DELETE FROM events WHERE ts < ?", (cutoff,)).rowcount
            if max_rows is not None:
                deleted += c.execute(
                    """DELETE FROM events WHERE event_id NOT IN
                       (SELECT event_id FROM events ORDER BY event_id DESC LIMIT ?)""",
                    (max_rows,),
                ).rowcount
        return deleted
