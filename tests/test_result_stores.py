"""Every results store (Redis, SQLite, PostgreSQL) keeps the first value and counts every delivery.

Real servers only: the session's private redis-server, a SQLite file per test and a private
PostgreSQL (skipped with the reason when this machine cannot run one).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from shared.results import RedisStore, Store, StoreError
from shared.sql_store import TABLE, SqlStore
from tests.postgres import PostgresServer

SECRET = "s3cr3t-pw"


@pytest.fixture(params=["redis", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """One empty store of each kind (the Redis db is flushed, the PostgreSQL table dropped)."""
    if request.param == "redis":
        client = request.getfixturevalue("client")
        yield RedisStore(client, request.getfixturevalue("redis_server").url)
        return
    if request.param == "sqlite":
        sql = SqlStore(f"sqlite:///{tmp_path / 'results.db'}")
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        sql = SqlStore(server.url)
        with sql.engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
    yield sql
    sql.close()


def test_redelivery_keeps_the_first_value(store: Store) -> None:
    assert store.put_many([("t", "a", 1), ("t", "b", 2)]) == 2
    assert store.put_many([("t", "a", 99)]) == 0
    assert store.put_many([("t", "a", 7), ("t", "c", 3)]) == 1
    assert store.values("t") == {"a": 1, "b": 2, "c": 3}
    assert store.deliveries("t") == {"a": 3, "b": 1, "c": 1}


def test_a_key_twice_in_one_batch_is_one_new_and_one_redelivery(store: Store) -> None:
    batch = [("t", "k", "first"), ("t", "k", "second"), ("t", "j", 0)]
    assert store.put_many(batch) == 2
    assert store.values("t") == {"k": "first", "j": 0}
    assert store.deliveries("t") == {"k": 2, "j": 1}
    assert store.put_many(batch) == 0
    assert store.values("t") == {"k": "first", "j": 0}
    assert store.deliveries("t") == {"k": 4, "j": 2}


def test_an_empty_batch_stores_nothing(store: Store) -> None:
    assert store.put_many([]) == 0
    assert store.count() == 0


VALUES: dict[str, Any] = {
    "float": 0.1,
    "tiny": 1e-300,
    "negative": -2.5,
    "big-int": 2**63 + 1,
    "string": 'naïve "quoted" \\ ✓',
    "empty": "",
    "list": [1, 2.5, "three", None, True],
    "dict": {"b": [1, {"c": None}], "a": False},
    "null": None,
}


def test_json_values_round_trip(store: Store) -> None:
    assert store.put_many([("t", key, value) for key, value in VALUES.items()]) == len(VALUES)
    assert store.values("t") == VALUES


def test_count_per_task_and_in_total_and_clear(store: Store) -> None:
    store.put_many([("one", str(i), i) for i in range(3)] + [("two", str(i), i) for i in range(5)])
    assert (store.count("one"), store.count("two"), store.count(), store.count("none")) == (3, 5, 8, 0)
    store.clear("one")
    assert (store.count("one"), store.count("two"), store.count()) == (0, 5, 5)
    assert store.values("one") == {}
    assert store.deliveries("one") == {}
    assert store.put_many([("one", "0", "again")]) == 1
    assert store.values("one") == {"0": "again"}
    assert store.deliveries("one") == {"0": 1}


def test_sqlite_is_shared_with_other_connections_and_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    first, second = SqlStore(url), SqlStore(url)
    try:
        assert first.put_many([("t", "a", 1)]) == 1
        assert second.values("t") == {"a": 1}
        # The first store holds a read transaction open; WAL lets a writer in another process
        # commit meanwhile (a rollback journal would make it fail "database is locked").
        reader = first.engine.raw_connection()
        try:
            cursor = reader.cursor()
            cursor.execute("BEGIN")
            cursor.execute(f"SELECT count(*) FROM {TABLE}")
            assert cursor.fetchone() == (1,)
            writer = "import sys; from shared.sql_store import SqlStore; print(SqlStore(sys.argv[1]).put_many"
            writer += "([('t', 'a', 2), ('t', 'b', 3)]))"
            done = subprocess.run(
                [sys.executable, "-c", writer, url], capture_output=True, text=True, check=True, timeout=120
            )
            assert done.stdout.strip() == "1"
            cursor.execute("ROLLBACK")
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone() == ("wal",)
        finally:
            reader.close()
        assert first.values("t") == second.values("t") == {"a": 1, "b": 3}
        assert second.deliveries("t") == {"a": 2, "b": 1}
    finally:
        first.close()
        second.close()


def test_postgres_alias_and_bare_scheme_use_psycopg(postgres_server: PostgresServer) -> None:
    store = SqlStore(postgres_server.url)
    alias = SqlStore(postgres_server.url.replace("postgresql://", "postgres://", 1))
    try:
        assert store.engine.dialect.driver == alias.engine.dialect.driver == "psycopg"
        store.clear("alias")
        assert store.put_many([("alias", "a", [1])]) == 1
        assert alias.values("alias") == {"a": [1]}
        store.clear("alias")
    finally:
        store.close()
        alias.close()


def test_postgres_restart_in_the_middle_of_a_put(postgres_server: PostgresServer) -> None:
    store = SqlStore(postgres_server.url)
    store.clear("restart")
    assert store.put_many([("restart", "a", 1)]) == 1  # the pool now holds a live connection
    failed = threading.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "unreachable" in record.getMessage():
                failed.set()

    seen = Seen()
    logging.getLogger("shared.sql_store").addHandler(seen)
    outcome: dict[str, Any] = {}

    def put() -> None:
        try:
            outcome["new"] = store.put_many([("restart", "a", 10), ("restart", "b", 2)])
        except Exception as error:
            outcome["error"] = error

    postgres_server.stop()
    try:
        thread = threading.Thread(target=put, daemon=True)
        thread.start()
        # Only once the write has met the server down is the server started again.
        assert failed.wait(60), "the write never saw the server down"
    finally:
        postgres_server.start()
    thread.join(120)
    try:
        assert not thread.is_alive()
        assert outcome == {"new": 1}
        assert store.values("restart") == {"a": 1, "b": 2}
        assert store.deliveries("restart") == {"a": 2, "b": 1}
    finally:
        logging.getLogger("shared.sql_store").removeHandler(seen)
        store.clear("restart")
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+nosuchdriver://user:{SECRET}@127.0.0.1:5432/db",  # unknown driver
        f"postgresql+pg8000://user:{SECRET}@127.0.0.1:5432/db",  # a driver that is not installed
        f"mysql://user:{SECRET}@127.0.0.1/db",  # a database no store speaks
        f"postgresql://user:{SECRET}@127.0.0.1:notaport/db",
        "sqlite+nosuchdriver:///results.db",
    ],
)
def test_a_bad_url_is_one_line_without_the_password(url: str) -> None:
    with pytest.raises(StoreError) as raised:
        SqlStore(url)
    message = str(raised.value)
    assert SECRET not in message
    assert "\n" not in message
    assert message.startswith("cannot open results store ")
    if SECRET in url:
        assert "user:***@" in message


def test_the_url_attribute_is_redacted() -> None:
    store = SqlStore(f"postgresql://user:{SECRET}@127.0.0.1:5432/db")  # opens no connection yet
    assert store.url == "postgresql://user:***@127.0.0.1:5432/db"
    assert store.engine.dialect.driver == "psycopg"
    store.close()
