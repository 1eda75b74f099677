"""Core statements on the per-update path, run straight on the session's driver connection.

Every update runs the same few statements (its claim with the person, the day's room, the
conversation's upsert), and on PostgreSQL SQLAlchemy's execution around each cost more CPU
than the driver's own work: about 110 µs a statement (the session's bookkeeping, a greenlet,
the cache key of the statement, the execution context, the result object) against about 70 µs
for asyncpg's whole round trip. Here such a statement is compiled once by SQLAlchemy for the
engine's dialect, with its bind and result processors, and then run with asyncpg's `fetch` in
the session's transaction: the same SQL, the same conversions, the same connection.

What stays SQLAlchemy's: the connection (checked out of the pool by the session), the
transaction (begun by the adapter SQLAlchemy uses, committed or rolled back by the session) and
errors (translated and wrapped as SQLAlchemy wraps them, so `bot/transient.py` and the pool's
invalidation of a dead connection see what they always saw). On SQLite the statement makes one
short trip on the event loop's thread, in the transaction that already holds the write lock
(`storage.sqlite_driver.run_here`); with any other driver it simply goes through
`session.execute`.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

_Processor = Callable[[Any], Any] | None


class _Compiled(NamedTuple):
    sql: str
    names: tuple[str, ...]  # the bind parameters in their positional order
    defaults: Mapping[str, Any]  # values bound in the statement itself
    binds: tuple[_Processor, ...]
    keys: tuple[str, ...]  # result columns
    results: tuple[_Processor, ...]
    row: type[tuple[Any, ...]]


class Direct:
    """One Core statement, compiled once per dialect (the first time it runs)."""

    __slots__ = ("_by_dialect", "stmt")

    def __init__(self, stmt: Executable) -> None:
        self.stmt = stmt
        self._by_dialect: dict[int, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(id(dialect))
        if found is None:
            found = self._by_dialect[id(dialect)] = _compile(self.stmt, dialect)
        return found


def _compile(stmt: Executable, dialect: Dialect) -> _Compiled:
    c: Any = stmt.compile(dialect=dialect)
    if c.literal_execute_params or c.post_compile_params or c.escaped_bind_names:
        raise ValueError("a direct statement takes plain bound parameters only")
    names = tuple(c.positiontup or ())
    defaults = {n: b.effective_value for n, b in c.binds.items() if not b.required}
    binds = tuple(c._bind_processors.get(n) for n in names)
    columns = c._result_columns
    keys = tuple(str(col.keyname) for col in columns)
    results = tuple(col.type._cached_result_processor(dialect, None) for col in columns)
    row = namedtuple("Row", keys, rename=True) if keys else tuple  # type: ignore[misc]
    return _Compiled(c.string, names, defaults, binds, keys, results, row)  # type: ignore[arg-type]


async def fetch(s: AsyncSession, statement: Direct, params: Mapping[str, Any]) -> Sequence[Any]:
    """The statement's rows (named tuples, values converted as SQLAlchemy converts them), run
    in the session's transaction."""
    dialect = s.sync_session.get_bind().dialect
    if dialect.driver not in ("asyncpg", "aiosqlite"):
        return await _through_sqlalchemy(s, statement, params)
    conn, adapted = await _connection(s)
    if dialect.driver == "aiosqlite":
        # Imported here: a PostgreSQL process never loads sqlite3 and aiosqlite (memory, issue 11).
        from storage.sqlite_driver import OneTripConnection, run_here

        if not isinstance(adapted, OneTripConnection):
            return await _through_sqlalchemy(s, statement, params)  # SQLAlchemy's own adapter
    c = statement.compiled(dialect)
    args = []
    for name, process in zip(c.names, c.binds, strict=True):
        value = params[name] if name in params else c.defaults[name]
        args.append(process(value) if process is not None and value is not None else value)
    sync = conn.sync_connection
    if sync._has_events or sync.engine._has_events:
        # Whoever watches the statements sent (a test counting round trips) still sees these.
        for listener in sync.dispatch.before_cursor_execute:
            listener(sync, None, c.sql, tuple(args), None, False)
    try:
        if dialect.driver == "asyncpg":
            if adapted._transaction is None:
                await adapted._start_transaction()  # the BEGIN SQLAlchemy's adapter would send
            records: Sequence[Any] = await adapted._connection.fetch(c.sql, *args)
        else:
            # SQLite: on the loop's thread, in the transaction begun (BEGIN IMMEDIATE, the write
            # lock taken) when the session took the connection (`storage.sqlite_driver.run_here`).
            async with adapted._execute_mutex:
                records = run_here(adapted, c.sql, args)
    except Exception as error:
        raise await _wrapped(conn, adapted, c.sql, error) from error
    if not c.keys:
        return []
    make, results = c.row, c.results
    return [
        make(*(p(v) if p is not None else v for p, v in zip(results, record, strict=True)))
        for record in records
    ]


async def _through_sqlalchemy(s: AsyncSession, statement: Direct, params: Mapping[str, Any]) -> Sequence[Any]:
    result = await s.execute(statement.stmt, dict(params))
    try:
        return result.all()
    except exc.ResourceClosedError:  # a statement without rows (no RETURNING)
        return []


_HELD = "direct_connection"


async def _connection(s: AsyncSession) -> tuple[Any, Any]:
    """The session's connection and its driver adapter, looked up once per transaction (each
    lookup is a trip through SQLAlchemy's greenlet).

    The transaction is held by weak reference: it refers to the session, and a strong one kept
    in `session.info` closed a cycle (session, info, transaction, session) that kept each
    update's session, connection, transactions and their event dispatchers (about 45 objects)
    alive until the cyclic collector found them, usually in an older generation."""
    tx = s.sync_session.get_transaction()
    held = s.info.get(_HELD)
    if held is not None and tx is not None and held[0]() is tx and tx.is_active:
        return held[1], held[2]
    conn = await s.connection()
    # Checked out by now, so reading the driver's connection needs no trip through a greenlet
    # (`AsyncConnection.get_raw_connection` makes one).
    adapted = conn.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
    s.info[_HELD] = (weakref.ref(s.sync_session.get_transaction()), conn, adapted)
    return conn, adapted


async def _wrapped(conn: Any, adapted: Any, sql: str, error: Exception) -> Exception:
    """The error as SQLAlchemy would have raised it: the driver's translated to the DB-API's,
    wrapped in `sqlalchemy.exc.DBAPIError`, and a lost connection invalidated in the pool."""
    dialect = conn.dialect
    try:
        adapted._handle_exception(error)
    except Exception as translated:
        dbapi_error: Exception = translated
    else:  # pragma: no cover - the adapter always raises
        dbapi_error = error
    if not isinstance(dbapi_error, dialect.loaded_dbapi.Error):
        return dbapi_error
    lost = dialect.is_disconnect(dbapi_error, adapted, None)
    if lost:
        await conn.invalidate(dbapi_error)
    return exc.DBAPIError.instance(
        sql,
        None,
        dbapi_error,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=lost,
        dialect=dialect,
        ismulti=False,
    )
