"""SQLite through aiosqlite with one trip to its thread per statement.

aiosqlite runs sqlite3 in a thread of its own; SQLAlchemy's adapter makes four trips there for
every statement (open a cursor, execute, fetch the rows, close the cursor), each a hand-over
between the event loop and that thread (a queue, a wake-up of the loop, the GIL changing
hands). On the bot's per-update path that hand-over cost more than the statements themselves,
and with the one connection per process (`storage/db.py`) every other update waits for the
transaction holding it. This cursor does the four in one trip: the statement runs and its rows,
description, row count and last row id come back together.

Server-side cursors (`stream()`) keep SQLAlchemy's own cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import deque
from collections.abc import Callable
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

_Outcome = tuple[Any, int, int | None, list[Any]]


def run_in_thread(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """In aiosqlite's thread: the whole statement, cursor to closed cursor."""
    cur = conn.cursor()
    try:
        if many:
            cur.executemany(operation, parameters)
        elif parameters is None:
            cur.execute(operation)
        else:
            cur.execute(operation, parameters)
        rows = cur.fetchall() if cur.description else []
        return cur.description, cur.rowcount, cur.lastrowid, rows
    finally:
        cur.close()


def run_here(adapted: OneTripConnection, operation: str, parameters: Any) -> list[Any]:
    """A short statement of the update's path (`storage.direct`), run on the event loop's own
    thread instead of a trip to aiosqlite's: the trip, a hand-over each way with the GIL
    changing hands, cost more than such a statement (about 40-50 µs of CPU each, four per
    `/log` update). Safe because it never waits: it runs inside the session's transaction, begun
    with BEGIN IMMEDIATE (which goes to the thread when it has to wait for another writer:
    `OneTripConnection.begin_immediate`), so this connection holds the write lock already; in
    WAL mode nothing else can make it wait.
    The connection is used by one thread at a time: the caller holds its execute mutex, and
    every other use is awaited by the session that holds it (`check_same_thread=False`,
    `storage/db.py`)."""
    adapted.note_bound(parameters, False)
    _, _, _, rows = run_in_thread(adapted._connection._conn, operation, parameters, False)  # type: ignore[attr-defined]
    return rows


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A DB-API cursor whose results are fetched with the statement (what SQLAlchemy's adapter
    does too, in four trips); so fetching and closing need no trip at all."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")
    _awaitable_cursor_close = False

    _adapt_connection: OneTripConnection

    def __init__(self, adapt_connection: OneTripConnection) -> None:
        # No aiosqlite cursor is opened here (that is a trip of its own).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        return None

    async def _trip(self, operation: str, parameters: Any, many: bool) -> None:
        adapted = self._adapt_connection
        async with adapted._execute_mutex:
            adapted.note_bound(parameters, many)
            outcome: _Outcome = await adapted.in_thread(
                run_in_thread, adapted._raw(), operation, parameters, many
            )
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._trip(operation, parameters, False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._trip(operation, seq_of_parameters, True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()


# A transaction that changed at most this many rows, and bound at most this many bytes of text
# and blobs, commits on the loop's thread: writing its few pages to the WAL (no
# fsync with synchronous=NORMAL) cost less than the trip. Anything bigger (an import, a photo
# kept as evidence) commits in aiosqlite's thread.
SMALL_COMMIT_ROWS = 100
SMALL_COMMIT_BYTES = 64 * 1024
# Such commits between two checkpoints of the WAL, which run in aiosqlite's thread (fsyncs and
# copying pages: too long to hold the loop). SQLite's own checkpoint after a commit is off for
# this connection (`PRAGMA wal_autocheckpoint=0`), which left alone would run it inside the
# commit, on the loop's thread.
COMMITS_PER_CHECKPOINT = 100


def commit_and_checkpoint(conn: sqlite3.Connection) -> None:
    """In aiosqlite's thread: a big transaction's commit, or the one that is due to checkpoint."""
    conn.commit()
    with contextlib.suppress(sqlite3.Error):  # committed either way; the next one tries again
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").close()


def bound_size(parameters: Any, many: bool) -> int:
    """Bytes of the text (as SQLite stores it, UTF-8) and blobs bound to a statement."""
    if not parameters:
        return 0
    size = 0
    for row in parameters if many else (parameters,):
        for value in row.values() if isinstance(row, dict) else row:
            if isinstance(value, str):
                # A Chinese character is three bytes; `isascii` is a flag CPython keeps.
                size += len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
            elif isinstance(value, (bytes, bytearray, memoryview)):
                size += memoryview(value).nbytes
    return size


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_abandoned", "_begun_at", "_bound", "_fresh_wal", "_here", "_small_commits")
    _cursor_cls = OneTripCursor

    def __init__(self, dbapi: Any, connection: aiosqlite.Connection) -> None:
        super().__init__(dbapi, connection)
        self._here = False  # commits may run on the loop's thread (in WAL mode only)
        self._begun_at: int | None = None  # the rows SQLite had changed when this transaction began
        self._bound = 0  # text and blobs bound in this transaction (`bound_size`)
        self._small_commits = 0  # since the last checkpoint
        # The next commit may start the WAL over, and SQLite then fsyncs its header: true on a
        # new connection and after each checkpoint, and such a commit goes to the thread.
        self._fresh_wal = True
        # A trip to aiosqlite's thread was cancelled and may still be running there: until a
        # rollback queued behind it has run, nothing uses the connection from the loop's thread.
        self._abandoned = False

    def _raw(self) -> sqlite3.Connection:
        raw: sqlite3.Connection | None = self._connection._connection  # type: ignore[attr-defined]
        if raw is None:
            self._handle_exception(ValueError("no active connection"))
        return raw

    def commit_on_loop(self) -> None:
        """Called once the connection is in WAL mode (storage/db.py): small transactions then
        commit on the loop's thread, and this connection checkpoints the WAL itself."""
        self._raw().execute("PRAGMA wal_autocheckpoint=0").close()
        self._here = True

    def note_bound(self, parameters: Any, many: bool) -> None:
        self._bound += bound_size(parameters, many)

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in aiosqlite's thread. If the caller is cancelled the call may still run
        there: the connection is then marked abandoned (see `rollback`)."""
        try:
            return await self._connection._execute(fn, *args)  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            self._abandoned = True
            raise

    def begin_immediate(self, busy_timeout_ms: int) -> None:
        """BEGIN IMMEDIATE on the loop's thread when the write lock is free, which in a bot
        process it almost always is (one connection per process): a trip to aiosqlite's thread
        cost more than the statement. The busy timeout is off for that one try, so it never
        waits; if another connection holds the lock, BEGIN goes to aiosqlite's thread as before
        and waits there, while the loop goes on."""
        raw = self._raw()
        self._bound = 0
        busy = self._abandoned
        if not busy:
            raw.execute("PRAGMA busy_timeout=0").close()
            try:
                raw.execute("BEGIN IMMEDIATE").close()
            except sqlite3.OperationalError as e:
                if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # BUSY and its extended codes
                    raise
                busy = True
            finally:
                raw.execute(f"PRAGMA busy_timeout={busy_timeout_ms}").close()
        if busy:
            cursor = self.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            cursor.close()
        self._begun_at = raw.total_changes

    def commit(self) -> None:
        """COMMIT on the loop's thread for a small transaction of ours (every update's): in WAL
        mode a commit never waits for another connection, and without the checkpoint it only
        writes those pages to the WAL. A big one, one begun elsewhere, the first after a
        checkpoint and every `COMMITS_PER_CHECKPOINT`-th go to aiosqlite's thread."""
        begun, self._begun_at = self._begun_at, None
        raw = self._raw()
        if not raw.in_transaction and not self._abandoned:
            return None  # nothing to commit, and no trip to learn that
        try:
            if (
                self._here
                and not self._fresh_wal
                and not self._abandoned
                and begun is not None
                and raw.total_changes - begun <= SMALL_COMMIT_ROWS
                and self._bound <= SMALL_COMMIT_BYTES
                and self._small_commits < COMMITS_PER_CHECKPOINT
            ):
                raw.commit()
                self._small_commits += 1
                return None
            if not self._here:
                return super().commit()
            checkpoint = not self._fresh_wal
            await_(self.in_thread(commit_and_checkpoint if checkpoint else sqlite3.Connection.commit, raw))
            self._small_commits = 0
            self._fresh_wal = checkpoint
        except Exception as error:
            self._handle_exception(error)

    def rollback(self) -> None:
        self._begun_at = None
        # The pool rolls back every connection given back, after each update's commit too: with
        # no transaction open there is nothing to do, and no need of a trip to learn that.
        if not self._abandoned and not self._raw().in_transaction:
            return
        super().rollback()  # in aiosqlite's queue, behind whatever a cancelled trip left there
        self._abandoned = False


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def one_trip_dbapi() -> OneTripDBAPI | None:
    """The DB-API module for `create_async_engine(module=...)`; None if this aiosqlite lacks
    the queue this relies on (then SQLAlchemy's own adapter is used)."""
    if not hasattr(aiosqlite.Connection, "_execute"):
        return None
    return OneTripDBAPI(aiosqlite, sqlite3)
