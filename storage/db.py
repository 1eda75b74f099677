"""Engine, sessions and the portable column types shared by every model."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, event, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite stores naive values; we store UTC and attach the zone on the way out, and refuse
    naive datetimes on the way in so no local time slips into the store.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix):
        return None
    rest = url[len(prefix) :].split("?")[0]
    if not rest or rest == ":memory:":
        return None
    return Path(rest)


class _NoRows(logging.Filter):
    """SQLAlchemy's engine logs each fetched row at DEBUG, which hide_parameters does not cover:
    rows hold names and texts. Statements (INFO, parameters hidden) still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_NO_ROWS = _NoRows()


def make_engine(url: str, *, busy_timeout: float = 30.0, **kw: Any) -> AsyncEngine:
    """`busy_timeout` (SQLite only): how long a writer waits for the lock before the statement
    fails with "database is locked" (which the bot treats as an outage and retries)."""
    # Statements' parameters hold names and texts: never in a log or an exception's message, at
    # any level (SQLAlchemy prints them when its log is on and in every DBAPIError otherwise).
    kw.setdefault("hide_parameters", True)
    for name in ("sqlalchemy.engine", "sqlalchemy.engine.Engine"):
        if _NO_ROWS not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_NO_ROWS)
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # The busy timeout lets a writer wait for another instead of failing at once. The
        # connection is made in aiosqlite's thread and also used from the loop's, one at a time
        # (`storage.sqlite_driver.run_here`).
        own = {"timeout": busy_timeout, "check_same_thread": False}
        kw["connect_args"] = own | kw.get("connect_args", {})
        if path is not None:
            # SQLite has one writer at a time. Several connections in one process would queue on
            # SQLite's busy handler, which sleeps in growing steps; one connection queues them in
            # the pool instead, first come first served, with no idle gaps.
            kw.setdefault("pool_size", int(os.environ.get("DB_POOL_SIZE", "1")))
            kw.setdefault("max_overflow", 0)
        # Imported here: a process on PostgreSQL never loads sqlite3, aiosqlite and SQLAlchemy's
        # SQLite dialect (about 1.3 MB of a bot process's memory; issue 11).
        from storage.sqlite_driver import one_trip_dbapi

        if "module" not in kw and (dbapi := one_trip_dbapi()) is not None:
            kw["module"] = dbapi  # one trip to aiosqlite's thread per statement, not four
        engine = create_async_engine(url, **kw)
        _sqlite_pragmas(engine, busy_timeout)
        return engine
    # A fixed set of connections, none opened beyond it: SQLAlchemy closes an overflow
    # connection as soon as it is given back, so under a steady load above the pool's size every
    # few updates paid for a new connection (about 4 ms of CPU each, a quarter of the checkouts
    # in the throughput benchmark). An update that finds them all in use waits its turn.
    # Ten, not twenty: a bot process's pace is set by its event loop (one core), not by the
    # database, and each connection in use holds its prepared statements and an update in
    # progress: about 2 MB less peak memory under the throughput benchmark's load, its rate in
    # the same range (docs/benchmarks.md, issue 11).
    kw.setdefault("pool_size", int(os.environ.get("DB_POOL_SIZE", "10")))
    kw.setdefault("max_overflow", 0)
    engine = create_async_engine(url, **kw)
    if not kw.get("pool_pre_ping"):
        _ping_when_idle(engine, PING_IDLE_AFTER)
    return engine


# A pooled PostgreSQL connection is pinged on checkout only if it has been idle this long.
PING_IDLE_AFTER = 10.0


def _ping_when_idle(engine: AsyncEngine, idle_after: float) -> None:
    """Ping a connection on checkout only when it has sat in the pool for `idle_after` seconds.

    SQLAlchemy's pre-ping pings every checkout, and on asyncpg outside a transaction a ping is
    three round trips (BEGIN, an empty query, ROLLBACK): on the per-update path that was three of
    nine. A connection in steady use needs none: if the server went away since its last use, its
    first statement fails as a lost connection, SQLAlchemy then drops every pooled connection,
    and the update guard's caller retries the update (`bot/transient.py`), as for any outage. A
    connection left idle (where a restart or an idle timeout most likely struck) is still
    checked first, and replaced if dead, with no failure seen at all."""
    sync = engine.sync_engine
    dialect = sync.dialect

    @event.listens_for(sync, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["checked_in"] = time.monotonic()

    @event.listens_for(sync, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in")
        if since is None or time.monotonic() - since < idle_after:
            return  # fresh from connect, or in recent use
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as e:
            if dialect.is_disconnect(e, dbapi_conn, None):
                # As pre-ping does: this and every older pooled connection is replaced.
                raise exc.InvalidatePoolError() from e
            raise


def _sqlite_pragmas(engine: AsyncEngine, busy_timeout: float) -> None:
    busy_ms = round(busy_timeout * 1000)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control so BEGIN IMMEDIATE below is ours, not pysqlite's guess.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        mode = cur.fetchone()
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        if hasattr(dbapi_conn, "commit_on_loop") and mode is not None and mode[0] == "wal":
            # Small commits on the loop's thread, the WAL's checkpoints in aiosqlite's
            # (`storage.sqlite_driver`). Only in WAL mode: otherwise a commit can wait for readers.
            dbapi_conn.commit_on_loop()
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock at BEGIN, so two writers queue on the busy timeout
        # rather than one failing with "database is locked" when it upgrades its read lock.
        try:
            # Straight on the driver: every update begins a transaction, and SQLAlchemy's
            # execution around a statement costs more than this one does.
            dbapi = conn.connection.dbapi_connection
            if hasattr(dbapi, "begin_immediate"):
                dbapi.begin_immediate(busy_ms)  # on the loop's thread if it need not wait
            else:
                cur = dbapi.cursor()
                cur.execute("BEGIN IMMEDIATE")
                cur.close()
        except Exception as e:
            conn._handle_dbapi_exception(e, "BEGIN IMMEDIATE", (), None, None)


# In `Session.info`: async steps to run just before the session commits, by name (each once).
BEFORE_COMMIT = "before_commit"


# In a session's `info` once it has committed anything: the update guard's question whether the
# update's claim is stored (so a retry of the update would skip it).
COMMITTED = "committed"

# Keys of `Session.info` that hold what the current transaction read or means to write (the
# conversations, bot/fsm_storage.py): a rollback voids them. Modules add theirs at import.
TRANSACTION_INFO: set[str] = {BEFORE_COMMIT}


class StoreSession(AsyncSession):
    """An `AsyncSession` that runs the async steps queued under `BEFORE_COMMIT` right before it
    commits. SQLAlchemy's own before-commit event is synchronous: a statement run there goes
    through a greenlet and SQLAlchemy's execution, where a step run here can use the driver
    directly (`storage.direct`, for the conversation written at the end of every update)."""

    async def commit(self) -> None:
        steps = self.info.pop(BEFORE_COMMIT, None)
        if not steps and self._nothing_to_commit():
            return
        for step in (steps or {}).values():
            await step(self)
        await super().commit()
        self.info[COMMITTED] = True

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        if self.sync_session._transaction is None:
            # No connection held, so nothing to give back to the pool: closing forgets the
            # objects, with no task and no greenlet (SQLAlchemy runs every close as a task of
            # its own, so a cancelled caller cannot leave a connection half returned).
            self.sync_session.close()
            return
        await super().__aexit__(type_, value, traceback)

    def _nothing_to_commit(self) -> bool:
        """No transaction begun and no object waiting to be flushed: SQLAlchemy would begin a
        transaction only to end it (an update's guard commits after a handler that already
        did, about 70 µs of CPU for nothing)."""
        sync = self.sync_session
        return (
            sync._transaction is None
            and not sync._new
            and not sync._deleted
            and not sync.identity_map._modified
        )

    async def rollback(self) -> None:
        for key in TRANSACTION_INFO:
            self.info.pop(key, None)
        await super().rollback()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, class_=StoreSession)


def is_sqlite(session_or_engine: AsyncSession | AsyncEngine) -> bool:
    # A session's sync `bind` is a plain attribute; the async session's `bind` property is not
    # (it wraps the engine anew on each access), and this runs on every update.
    if isinstance(session_or_engine, AsyncSession):
        bind: Any = session_or_engine.sync_session.bind
    else:
        bind = session_or_engine
    return bool(bind.dialect.name == "sqlite")


def dialect_insert(dialect: str) -> Any:
    """The dialect's INSERT (the one with ON CONFLICT) for "postgresql" or "sqlite".

    Imported when asked for: a process on SQLite never loads SQLAlchemy's PostgreSQL dialect
    (about 2.4 MB of a bot process's memory; issue 11)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert
