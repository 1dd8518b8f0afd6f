"""Results in one SQL table (SQLite or PostgreSQL), with the same semantics as ``RedisStore``.

A write is insert-or-ignore: the first value of a (task, key) is kept and every delivery adds one
to ``deliveries``, so a redelivered message stores nothing new. A batch is one transaction,
committed before the worker acks its messages; retrying it after a lost connection is therefore
safe (at worst a delivery is counted twice, never a value overwritten).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    event,
    exc,
    func,
    inspect,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from shared.arguments import dumps
from shared.connection import RECONNECT_SECONDS
from shared.errors import config_error
from shared.results import Row, StoreError
from shared.settings import redact_url

logger = logging.getLogger(__name__)

TABLE = "pipeline_results"
#: PostgreSQL's write: ``upsert`` (below) as one statement over four arrays.
PG_UPSERT = (
    f"INSERT INTO {TABLE} (task, key, value, deliveries) "
    "SELECT * FROM unnest(%(task)s::text[], %(key)s::text[], %(value)s::text[], %(deliveries)s::int[]) "
    f"ON CONFLICT (task, key) DO UPDATE SET deliveries = {TABLE}.deliveries + excluded.deliveries "
    "RETURNING task, key, deliveries"
)
#: SQLite waits this long for another process's write lock instead of failing "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000

_BACKOFF_START, _BACKOFF_CAP = 0.05, 1.0
_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}

T = TypeVar("T")

metadata = MetaData()
results_table = Table(
    TABLE,
    metadata,
    Column("task", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("deliveries", Integer, nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


def engine_url(url: str) -> str:
    """``url`` with a bare ``postgresql://`` / ``postgres://`` given the psycopg 3 driver."""
    scheme, sep, rest = url.partition("://")
    return f"{_DRIVERS.get(scheme.lower(), scheme)}{sep}{rest}"


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets a verifier read while a worker in another process writes; busy_timeout makes
    # two writers queue instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


class SqlStore:
    """The ``Store`` protocol on one SQL table, via SQLAlchemy Core."""

    def __init__(self, url: str) -> None:
        try:
            self.url = redact_url(url)
        except ValueError:  # a port that is not a number: the URL fails below, redacted by hand
            self.url = _scrub(url, url)
        self._ready = False
        self._url = url  # only to scrub its password from driver messages
        try:
            parsed = make_url(engine_url(url))
            backend = parsed.get_backend_name()
            if backend not in ("sqlite", "postgresql"):
                raise StoreError(f"unsupported database {backend!r}; use sqlite:/// or postgresql://")
            # No pre-ping (a round trip per checkout): a connection a restart broke fails its
            # statement, is invalidated, and the retry below opens a new one.
            self.engine: Engine = create_engine(parsed)
            #: PostgreSQL writes: connections opened in autocommit (switching a pooled connection
            #: to it and back costs ~0.3 ms of CPU a checkout).
            self.writer: Engine = (
                create_engine(parsed, isolation_level="AUTOCOMMIT")
                if backend == "postgresql"
                else self.engine
            )
        except (exc.ArgumentError, ImportError, ValueError) as error:  # StoreError is a ValueError
            reason = (str(error).splitlines() or [type(error).__name__])[0].replace(url, self.url)
            message = f"cannot open results store {self.url}: {_scrub(reason, url)}"
            raise config_error(message, StoreError) from None
        self.postgres = backend == "postgresql"
        insert = (postgresql.insert if self.postgres else sqlite.insert)(results_table)
        #: Built once: constructing the statement costs more than running it (~1 ms of CPU a call).
        self.upsert = insert.on_conflict_do_update(
            index_elements=[results_table.c.task, results_table.c.key],
            set_={"deliveries": results_table.c.deliveries + insert.excluded.deliveries},
        ).returning(results_table.c.task, results_table.c.key, results_table.c.deliveries)
        if backend == "sqlite":
            event.listen(self.engine, "connect", _set_sqlite_pragmas)

    def _create_table(self) -> None:
        if self._ready:
            return
        try:
            metadata.create_all(self.engine, checkfirst=True)
        except (exc.ProgrammingError, exc.IntegrityError):
            # Another process created it between our check and our CREATE.
            if not inspect(self.engine).has_table(TABLE):
                raise
        self._ready = True

    def _retrying(self, action: Callable[[], T]) -> T:
        """Run ``action`` again on a lost or refused connection (a restart) for RECONNECT_SECONDS."""
        deadline = time.monotonic() + RECONNECT_SECONDS
        delay = _BACKOFF_START
        while True:
            try:
                self._create_table()
                return action()
            except exc.DBAPIError as error:
                transient = isinstance(error, exc.OperationalError) or error.connection_invalidated
                if not transient or time.monotonic() + delay > deadline:
                    raise
                if delay == _BACKOFF_START:
                    reason = _scrub(str(error.orig or error).splitlines()[0], self._url)
                    logger.warning(
                        "Results store %s unreachable (%s); retrying for up to %d s",
                        self.url,
                        reason,
                        RECONNECT_SECONDS,
                    )
            time.sleep(delay)
            delay = min(delay * 2, _BACKOFF_CAP)

    def put_many(self, rows: Sequence[Row]) -> int:
        # One statement row per (task, key): a key twice in the batch is stored once with two
        # deliveries (PostgreSQL refuses to touch a row twice in one ON CONFLICT statement).
        batch: dict[tuple[str, str], dict[str, Any]] = {}
        for task, key, value in rows:
            if (task, key) in batch:
                batch[(task, key)]["deliveries"] += 1
            else:
                batch[(task, key)] = {"task": task, "key": key, "value": dumps(value), "deliveries": 1}
        if not batch:
            return 0
        params = list(batch.values())

        def write() -> int:
            stored: list[Any]
            if self.postgres:
                # The whole batch as one statement over arrays: atomic on its own, so sent in
                # autocommit it is one round trip (not BEGIN, INSERT, COMMIT) whatever its size:
                # ~0.3 ms of client CPU for one row where the executemany form took ~1.2 ms.
                columns = {name: [p[name] for p in params] for name in ("task", "key", "value", "deliveries")}
                try:
                    stored = self._write_postgres(columns)
                except self.writer.dialect.loaded_dbapi.Error as error:  # as SQLAlchemy would wrap it
                    raise exc.DBAPIError.instance(PG_UPSERT, columns, error, Exception) from None
            else:
                with self.engine.begin() as connection:
                    stored = list(connection.execute(self.upsert, params).all())
            # A new row has exactly this batch's deliveries; an old one has more.
            return sum(1 for task, key, total in stored if total == batch[(task, key)]["deliveries"])

        return self._retrying(write)

    def _write_postgres(self, columns: dict[str, list[Any]]) -> list[Any]:
        """``PG_UPSERT`` on a pooled connection, without SQLAlchemy's per-statement bookkeeping
        (~0.2 ms of CPU, as much as the driver's own)."""
        connection: Any = self.writer.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(PG_UPSERT, columns)
            stored: list[Any] = cursor.fetchall()
            cursor.close()
            return stored
        except BaseException:
            connection.invalidate()  # never back to the pool: a restart may have broken it
            raise
        finally:
            connection.close()

    def _select(self, task: str, column: str) -> dict[str, Any]:
        table = results_table
        query = select(table.c.key, table.c[column]).where(table.c.task == task)

        def read() -> dict[str, Any]:
            with self.engine.connect() as connection:
                return {key: found for key, found in connection.execute(query)}

        return self._retrying(read)

    def values(self, task: str) -> dict[str, Any]:
        return {key: json.loads(text) for key, text in self._select(task, "value").items()}

    def deliveries(self, task: str) -> dict[str, int]:
        return {key: int(n) for key, n in self._select(task, "deliveries").items()}

    def count(self, task: str | None = None) -> int:
        query = select(func.count()).select_from(results_table)
        if task is not None:
            query = query.where(results_table.c.task == task)

        def read() -> int:
            with self.engine.connect() as connection:
                return int(connection.execute(query).scalar_one())

        return self._retrying(read)

    def clear(self, task: str) -> None:
        def delete() -> None:
            with self.engine.begin() as connection:
                connection.execute(results_table.delete().where(results_table.c.task == task))

        self._retrying(delete)

    def prepare(self) -> None:
        """Connect and create the table now, not inside the first message (with SQLAlchemy's
        import, ~0.5 s of a fresh worker); a database that is down is logged, and the first
        write retries as it always does."""
        try:
            self._create_table()
            self.writer.connect().close()  # a pooled connection for the first write
        except exc.DBAPIError as error:
            reason = _scrub(str(error.orig or error).splitlines()[0], self._url)
            logger.warning(
                "Results store %s unreachable at start (%s); the first write retries", self.url, reason
            )

    def close(self) -> None:
        """Close every pooled connection (a test, or a worker on its way out)."""
        self.engine.dispose()
        self.writer.dispose()


def _scrub(text: str, url: str) -> str:
    """``text`` without the password of ``url``, as written or URL-decoded (driver messages)."""
    netloc = url.partition("://")[2].split("/", 1)[0]
    userinfo, at, _host = netloc.rpartition("@")
    password = userinfo.partition(":")[2] if at else ""
    for secret in {password, unquote(password)} - {""}:
        text = text.replace(secret, "***")
    return text
