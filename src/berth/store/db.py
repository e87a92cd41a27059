"""The database: one store per process, short transactions, no I/O inside them.

SQLite (the default) runs in WAL mode: readers never wait, and one writer at a time holds the
write lock. The writers of this process queue for it on an asyncio lock, in arrival order,
before they take a connection. Without the queue, concurrent writers each waited inside
SQLite's busy handler, which polls with naps of up to 100 ms and gives up after the timeout:
under load, unlucky writers lost the race for seconds and then failed with "database is
locked". Another process's writer (`berth admin`) is waited for in `_while_busy`, asleep on
the loop. `BERTH_DATABASE_URL` may point at PostgreSQL instead, whose row locks need no queue.

On a SQLite file every statement runs on the event loop (`store.inline_sqlite`), not on
aiosqlite's thread: SQLite answers from the page cache in microseconds, far less than the
thread hand-offs aiosqlite makes for every call, and a write transaction that waited for the
loop at each of its statements held the write lock for as long as the loop was busy (tens of
milliseconds under load, so queued writers waited seconds). Reading connections are
`query_only`; `Store.read` runs the API's hot reads as prepared statements (`store.reads`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, TypeVar

from sqlalchemy import event, literal, make_url, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import greenlet_spawn

from berth.store.checkpoints import Checkpointer
from berth.store.errors import StoreUnavailable, is_transient, unavailable
from berth.store.inline_sqlite import inline_connector, open_inline
from berth.store.migrate import upgrade
from berth.store.reads import (
    AnySelect,
    ConnectionReader,
    Params,
    PreparedAsyncpgReader,
    PreparedSqliteReader,
    PreparedStatements,
    Reader,
    Row,
)

T = TypeVar("T")

READ_BUSY_TIMEOUT_MS = 250
"""How long an inline reader may wait for SQLite's lock (it blocks the loop meanwhile). In
WAL mode a reader waits only in rare cases (another connection recovering the WAL after a
crash), so this bounds a stall rather than being a normal wait."""

_PING: AnySelect = select(literal(1))
"""The statement of `Store.ping`."""


class Store:
    """Owns the engine; `transaction()` yields a session committed on success."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = 10_000,
        pool_size: int = 32,
        pool_overflow: int = 10,
    ) -> None:
        self.url = url
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._sqlite_path = sqlite_file(url)
        self._prepared_reader: PreparedSqliteReader | None = None
        self._writer_queue: AbstractAsyncContextManager[object] = nullcontext()
        self.checkpointer: Checkpointer | None = None
        self._asyncpg_statements: PreparedStatements | None = None
        if self._sqlite_path is None:
            # A connection opened per request costs PostgreSQL a process and berth the
            # statements it prepares anew on it: the pool keeps enough for a busy replica.
            options: dict[str, Any] = {}
            if is_postgresql(url):
                options = {"pool_size": pool_size, "max_overflow": pool_overflow}
            cache_size = make_url(url).query.get("prepared_statement_cache_size")
            asyncpg = make_url(url).get_driver_name() == "asyncpg"
            if asyncpg and cache_size is None:
                # More than the ORM's distinct statements, so none is prepared twice.
                options["connect_args"] = {"prepared_statement_cache_size": 1000}
            self.engine: AsyncEngine = create_async_engine(url, **options)
            self.reader: AsyncEngine = self.engine
            if is_postgresql(url):
                # Reads need no transaction there: under READ COMMITTED each statement sees
                # what was committed when it began, in a transaction or not, and without
                # one a read session saves a round trip each for BEGIN and ROLLBACK.
                self.reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if asyncpg and cache_size != "0":
                # (`?prepared_statement_cache_size=0`, for a pooler that cannot keep
                # prepared statements, also keeps the hot reads on SQLAlchemy's path.)
                self._asyncpg_statements = PreparedStatements(self.engine.dialect)
        else:
            # Writers wait for another process's lock in `_begin_write`, asleep on the loop,
            # never inside SQLite (busy timeout 0), since they run on the loop's thread.
            self.engine = create_async_engine(
                url, async_creator=inline_connector(self._sqlite_path, busy_timeout_ms=0)
            )
            self.reader = create_async_engine(
                url,
                async_creator=inline_connector(
                    self._sqlite_path, busy_timeout_ms=READ_BUSY_TIMEOUT_MS
                ),
                pool_size=8,
                max_overflow=32,
            )
            event.listen(self.reader.sync_engine, "connect", _sqlite_reader_pragmas)
            event.listen(self.reader.sync_engine, "begin", _sqlite_begin)
            self.checkpointer = Checkpointer(self._sqlite_path)
        writer = self.engine
        if is_sqlite(url):
            self._writer_queue = asyncio.Lock()
            event.listen(self.engine.sync_engine, "connect", self._sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
            writer = self.engine.execution_options(berth_write=True)
        # Reading sessions never flush: a change made while planning under a read must not
        # turn the read into a write (SQLite would refuse the upgrade under concurrency).
        self._sessions = async_sessionmaker(self.reader, expire_on_commit=False, autoflush=False)
        self._snapshot_sessions = self._sessions
        if is_postgresql(url):
            snapshot = self.engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            self._snapshot_sessions = async_sessionmaker(
                snapshot, expire_on_commit=False, autoflush=False
            )
        self._write_sessions = async_sessionmaker(writer, expire_on_commit=False)

    @property
    def shared(self) -> bool:
        """Whether several berth processes may serve from this database (PostgreSQL); an
        SQLite file is served by one process only (see docs/operations.md)."""
        return self._sqlite_path is None

    async def create_schema(self) -> None:
        """Bring the database to the newest schema (idempotent; runs the migrations)."""
        async with self._writer_queue:
            await self._while_busy(lambda: upgrade(self.engine))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A read-write transaction; on SQLite it waits for this process's earlier writers
        (see the module's docstring), then takes the write lock up front (`BEGIN IMMEDIATE`)
        so it never fails on an upgrade from read to write. Transactions must not nest."""
        async with self._writer_queue:
            try:
                session = await self._while_busy(self._begin_write)
            except Exception as error:
                if is_transient(error, connecting=True):
                    raise unavailable(error) from error
                raise
            try:
                yield session
            except BaseException as error:
                await _quietly(session.rollback())
                await _quietly(session.close())
                if isinstance(error, Exception) and is_transient(error):
                    raise unavailable(error) from error
                raise
            try:
                await session.commit()
            except Exception as error:
                await _quietly(session.rollback())
                if is_transient(error, connecting=True):
                    raise unavailable(error) from error
                raise
            finally:
                await session.close()
        if self.checkpointer is not None:
            self.checkpointer.after_commit()

    async def _begin_write(self) -> AsyncSession:
        """A session holding the write lock; closed by `transaction()` itself rather than by
        `async with` (see `reading`)."""
        session = self._write_sessions()
        try:
            await session.connection()  # BEGIN (IMMEDIATE on SQLite) at once
        except BaseException:
            await session.close()
            raise
        return session

    async def _while_busy(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()`, again while SQLite answers that another process holds the write lock,
        for up to the busy timeout, sleeping on the loop in between (1 ms, doubling to 50)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_timeout_ms / 1000
        pause = 0.001
        while True:
            try:
                return await attempt()
            except OperationalError as error:
                if "database is locked" not in str(error) or loop.time() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    @asynccontextmanager
    async def reading(self, *, snapshot: bool = False) -> AsyncIterator[AsyncSession]:
        """A session for reads only, never to write with: on SQLite its connection is
        `query_only` and its statements share one read transaction (one snapshot); on
        PostgreSQL it runs without a transaction (each statement sees what was committed
        when it began), where a write would be committed at once, unless `snapshot` asks
        for one REPEATABLE READ, READ ONLY transaction (statements that must agree, such as
        a report's totals, at the price of its BEGIN and ROLLBACK)."""
        if self._sqlite_path is None:
            sessions = self._snapshot_sessions if snapshot else self._sessions
            async with sessions() as session:
                try:
                    yield session
                except Exception as error:
                    if is_transient(error, connecting=True):
                        raise unavailable(error) from error
                    raise
            return
        # Closed directly: `async with` closes an AsyncSession in a task of its own (so that a
        # cancellation cannot cut the close short), which costs the request a trip through
        # the loop's queue, behind every other ready request. Inline, a close never waits.
        session = self._sessions()
        try:
            yield session
        finally:
            await session.close()

    async def read(self, queries: Callable[[Reader], T], *, snapshot: bool = True) -> T:
        """Run `queries` (synchronous calls of a `Reader` with `select()` statements built
        once) and return its result.

        The path of the API's hot reads (see `store.reads`): on a SQLite file the statements
        run prepared on one plain connection on the event loop, with no hand-over at all, in
        one read transaction (one snapshot); on PostgreSQL they run prepared on the asyncpg
        connection in one REPEATABLE READ, READ ONLY transaction (one snapshot too, so a
        view's workload row and its runs agree). Nothing is committed; `queries` must only
        read, and cannot await. With `snapshot=False` (statements that need not agree with
        one another, such as a permission check and the one row it guards) PostgreSQL runs
        them without the transaction, saving its BEGIN and COMMIT."""
        if self._sqlite_path is not None:
            inline = self._prepared(self._sqlite_path)
            inline.begin()
            try:
                return queries(inline)
            finally:
                inline.end()
        return await self._read_elsewhere(queries, snapshot=snapshot)

    async def ping(self, *, within: float) -> None:
        """Return once the database answers a trivial statement; raise `StoreUnavailable`
        if it cannot be reached or does not answer within `within` seconds (a readiness
        check: a hung server must fail it, not hold it; the connection of a statement cut
        short is dropped, see `_read_elsewhere`). A SQLite file is read in-process, where
        `within` cannot interrupt the read (it answers from the page cache)."""
        try:
            async with asyncio.timeout(within):
                await self.read_first(_PING, {})
        except TimeoutError as error:
            raise unavailable(error) from error

    async def read_first(self, statement: AnySelect, params: Params) -> Row | None:
        """`Store.read` of one statement's first row: a single statement is its own snapshot,
        so it runs without a transaction around it (no BEGIN and ROLLBACK or COMMIT)."""
        if self._sqlite_path is not None:
            return self._prepared(self._sqlite_path).first(statement, params)
        return await self._read_elsewhere(
            lambda reader: reader.first(statement, params), snapshot=False
        )

    async def _read_elsewhere(self, queries: Callable[[Reader], T], *, snapshot: bool) -> T:
        """`read` on a database other than a SQLite file (`snapshot`: inside one read-only
        REPEATABLE READ transaction on PostgreSQL, else each statement on its own)."""
        try:
            async with self.reader.connect() as connection:
                if self._asyncpg_statements is None:
                    return await connection.run_sync(lambda sync: queries(ConnectionReader(sync)))
                raw = await connection.get_raw_connection()
                driver: Any = raw.driver_connection
                reader = PreparedAsyncpgReader(driver, self._asyncpg_statements)
                try:
                    if not snapshot:
                        return await greenlet_spawn(queries, reader)
                    return await _in_snapshot(driver, lambda: greenlet_spawn(queries, reader))
                except asyncio.CancelledError:
                    # A statement cut short (a timeout, a caller gone) may still be running
                    # on a server that does not answer: its connection is aborted (no I/O,
                    # where asyncpg's own close would first wait for the server to confirm
                    # the cancellation) and dropped, not handed to the next caller.
                    driver.terminate()
                    with contextlib.suppress(Exception):
                        await connection.invalidate()
                    raise
                except Exception as error:
                    if not (is_transient(error, connecting=True) or reader.connection_lost()):
                        raise
                    # SQLAlchemy did not see the driver fail: a statement through it lets
                    # it find a broken connection and do what it does then (the
                    # connection is dropped, and the pool's older ones, which a restarted
                    # server dropped too, are replaced as they are next checked out).
                    with contextlib.suppress(Exception):
                        await connection.exec_driver_sql("SELECT 1")
                    raise unavailable(error) from error
        except StoreUnavailable:
            raise
        except Exception as error:
            if is_transient(error, connecting=True):
                raise unavailable(error) from error
            raise

    def data_version(self) -> int | None:
        """A number that changes whenever any connection, of this process or another, commits
        to the database; None where the database offers no such number (then nothing may be
        reused). For reusing what was read: a result read after seeing version v is still
        current while the version is v. SQLite's `PRAGMA data_version`, asked of the prepared
        reads' connection, which never writes itself."""
        if self._sqlite_path is None:
            return None
        version: int = self._prepared(self._sqlite_path).data_version()
        return version

    def _prepared(self, path: str) -> PreparedSqliteReader:
        if self._prepared_reader is None:
            raw = open_inline(path, busy_timeout_ms=READ_BUSY_TIMEOUT_MS)
            raw.execute("PRAGMA query_only=ON")
            self._prepared_reader = PreparedSqliteReader(raw, self.reader.dialect)
        return self._prepared_reader

    async def close(self) -> None:
        if self.checkpointer is not None:
            await self.checkpointer.close()
        if self._prepared_reader is not None:
            self._prepared_reader.connection.close()
            self._prepared_reader = None
        if self.reader is not self.engine:
            await self.reader.dispose()
        await self.engine.dispose()

    def _sqlite_pragmas(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, see below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if self._sqlite_path is None:  # an in-memory database on aiosqlite's thread
            cursor.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        else:  # checkpoints run on a thread (`store.checkpoints`), never inside a commit
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


async def _quietly(step: Awaitable[None]) -> None:
    """Roll back or close after a failure, without hiding the failure: on a connection that
    is gone, these fail too, and the error that matters is the first."""
    with contextlib.suppress(Exception):
        await step


async def _in_snapshot(driver: Any, queries: Callable[[], Awaitable[T]]) -> T:
    """`queries()` inside one REPEATABLE READ, READ ONLY transaction on an asyncpg
    connection. Begun and ended by hand, not with `async with driver.transaction()`: that
    one's exit sends a ROLLBACK even when the task was cancelled, which waits, with no limit,
    for a server that stopped answering; a cancellation here leaves the transaction to the
    caller, which aborts the connection."""
    transaction = driver.transaction(isolation="repeatable_read", readonly=True)
    await transaction.start()
    try:
        result = await queries()
    except asyncio.CancelledError:
        raise
    except BaseException:
        with contextlib.suppress(Exception):  # (a lost connection cannot roll back)
            await transaction.rollback()
        raise
    await transaction.commit()
    return result


def is_sqlite(url: str) -> bool:
    """Whether `url` names a SQLite database (any driver)."""
    return url.startswith("sqlite")


def is_postgresql(url: str) -> bool:
    """Whether `url` names a PostgreSQL database (asyncpg or psycopg)."""
    return url.startswith("postgresql")


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for an in-memory or URI-style database
    (whose readers then share the writers' engine) and for any other database."""
    if not is_sqlite(url):
        return None
    parsed = make_url(url)
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:") or parsed.query:
        return None
    return database


def _sqlite_reader_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={READ_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    if conn.get_execution_options().get("berth_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")
