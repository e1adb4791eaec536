"""Loaded at start by every process of the OpenStack test cloud (PYTHONPATH, see
openstack_fixture.py): SQLite transactions begin with BEGIN IMMEDIATE.

oslo.db starts each SQLite transaction with a plain (deferred) BEGIN. Several processes write
to one file (Nova's API, conductor and scheduler), and in WAL mode a deferred transaction that
read first and then writes after another process committed gets "database is locked" at once:
SQLite does not wait (the busy timeout does not apply, or the two would deadlock). Nova then
fails the build ("Unexpected build failure, not rescheduling") and the server stays in BUILD.
BEGIN IMMEDIATE takes the write lock at the start, so a transaction waits its turn (up to the
busy timeout in the database URL) instead, which is SQLAlchemy's documented recipe for SQLite.
"""

from typing import Any

try:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
except ImportError:  # not a Python of the OpenStack venv
    pass
else:
    @event.listens_for(Engine, "before_cursor_execute", retval=True)
    def _begin_immediate(conn: Any, cursor: Any, statement: str, parameters: Any,
                         context: Any, executemany: bool) -> tuple[str, Any]:
        if conn.dialect.name == "sqlite" and statement.strip().upper() == "BEGIN":
            return "BEGIN IMMEDIATE", parameters
        return statement, parameters
