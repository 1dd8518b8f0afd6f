"""Where the results of declared tasks are stored "at the other end": one value per task and call.

A store keeps, per task name and call key (``shared.arguments``: the call's canonical JSON, or
a key the task gives), the first value delivered and how many times it was delivered. Writing
is insert-or-ignore: a redelivered message stores nothing new and counts one more delivery, so
every store is exactly-once under at-least-once delivery.

``PIPELINE_RESULTS_URL`` picks the store (default: ``REDIS_URL``):

- ``redis://…`` / ``rediss://…`` / ``redis+sentinel://…``: hashes ``pipeline:results:<task>``
  (key -> value JSON) and ``pipeline:deliveries:<task>`` (key -> count). In a worker the write
  goes in the same script as the message's ack (``PUT_ROW_LUA``);
- ``sqlite:///path.db``, ``postgresql://…``: one table (``shared.sql_store``), committed before
  the message is acked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import redis

from shared.arguments import dumps
from shared.errors import ConfigError, config_error
from shared.settings import Settings, redact_url
from shared.store import ScriptRow, put_script_rows
from shared.verification import Verification

RESULTS_URL_ENV = "PIPELINE_RESULTS_URL"
KEY_PREFIX = "pipeline"

#: (task name, call key, value): one result as a store writes it.
Row = tuple[str, str, Any]


class StoreError(ConfigError):
    """A results URL no store can open; the message names it (password redacted)."""


class Store(Protocol):
    """What the result worker writes to and ``verify`` reads from."""

    url: str

    def put_many(self, rows: Sequence[Row]) -> int:
        """Store ``rows`` in one transaction (insert-or-ignore, one more delivery each); returns
        how many were new."""

    def values(self, task: str) -> dict[str, Any]:
        """Every stored value of ``task`` by call key."""

    def deliveries(self, task: str) -> dict[str, int]:
        """How many times each stored call key of ``task`` was delivered."""

    def count(self, task: str | None = None) -> int:
        """Results stored for ``task`` (for every task if None)."""

    def clear(self, task: str) -> None:
        """Forget every result of ``task`` (what a run stored for itself)."""

    def prepare(self) -> None:
        """Get ready to write (connect, create what is missing) before the first result arrives;
        one attempt: a store that is down now is retried by the first write."""


class RedisStore:
    """Results in two hashes per task; writes can join a worker's ack script (``script_rows``)."""

    def __init__(self, client: redis.Redis, url: str = "") -> None:
        self.client = client
        self.url = redact_url(url)
        #: On the broker's own Redis: a worker may write rows with its message's ack.
        self.is_broker = False

    @staticmethod
    def results_key(task: str) -> str:
        return f"{KEY_PREFIX}:results:{task}"

    @staticmethod
    def deliveries_key(task: str) -> str:
        return f"{KEY_PREFIX}:deliveries:{task}"

    def script_rows(self, rows: Iterable[Row]) -> list[ScriptRow]:
        """The arguments ``PUT_ROW_LUA`` needs to store ``rows`` as ``put_many`` does."""
        return [(self.results_key(t), self.deliveries_key(t), key, dumps(v)) for t, key, v in rows]  # type: ignore[misc]

    def put_many(self, rows: Sequence[Row]) -> int:
        return put_script_rows(self.client, self.script_rows(rows))

    def values(self, task: str) -> dict[str, Any]:
        raw: dict[bytes, bytes] = self.client.hgetall(self.results_key(task))  # type: ignore[assignment]
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def deliveries(self, task: str) -> dict[str, int]:
        raw: dict[bytes, bytes] = self.client.hgetall(self.deliveries_key(task))  # type: ignore[assignment]
        return {k.decode(): int(v) for k, v in raw.items()}

    def count(self, task: str | None = None) -> int:
        if task is not None:
            return int(self.client.hlen(self.results_key(task)))
        keys = self.client.scan_iter(match=self.results_key("*"), count=1000)
        return sum(int(self.client.hlen(k)) for k in keys)

    def clear(self, task: str) -> None:
        self.client.delete(self.results_key(task), self.deliveries_key(task))

    def prepare(self) -> None:
        """Nothing to do: the worker's own Redis client is connected already."""


def by_store(writes: Iterable[tuple[Store, Sequence[Row]]]) -> list[tuple[Store, list[Row]]]:
    """Held-back writes grouped per store, in order: one ``put_many`` (a SQL store: one
    statement) for the rows of many messages."""
    grouped: dict[int, tuple[Store, list[Row]]] = {}
    for store, rows in writes:
        grouped.setdefault(id(store), (store, []))[1].extend(rows)
    return list(grouped.values())


def results_url(settings: Settings | None = None) -> str:
    """``PIPELINE_RESULTS_URL``, else ``REDIS_URL``."""
    return os.environ.get(RESULTS_URL_ENV) or (settings or Settings.from_env()).redis_url


def open_store(url: str | None = None, client: redis.Redis | None = None) -> Store:
    """The store at ``url`` (default ``results_url()``); ``client`` is reused for a Redis URL."""
    url = url or results_url()
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel"):
        if client is None:
            from shared.connection import connect

            client = connect(Settings(url))
        return RedisStore(client, url)
    if scheme.split("+", 1)[0] in ("sqlite", "postgresql", "postgres"):
        from shared.sql_store import SqlStore

        return SqlStore(url)
    raise config_error(
        f"{RESULTS_URL_ENV}={redact_url(url)}: unsupported scheme {scheme!r}; "
        "use redis://, rediss://, redis+sentinel://, sqlite:/// or postgresql://",
        StoreError,
    )


#: ``check(value, *args, **kwargs)``: whether a stored value is right for the call's arguments.
Check = Callable[..., bool]


class Results:
    """The configured store, read by task and call: ``get``, ``count``, ``verify``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, task: Any, *args: Any, **kwargs: Any) -> Any:
        """The stored value of ``task(*args, **kwargs)`` (a Task or its name), or None."""
        found = _task(task)
        return self.store.values(found.name).get(found.call(*args, **kwargs).key)

    def count(self, task_name: str | None = None) -> int:
        return self.store.count(task_name)

    def verify(self, calls: Iterable[Any], check: Check | None = None) -> Verification:
        """Check that every call (``Task.call`` / ``submit`` / ``map`` give them) is stored once,
        nothing else is stored for those tasks, and, with ``check``, that each value is right."""
        by_task: dict[
            str, dict[str, Any]
        ] = {}  # one result per distinct key: a call sent twice is stored once
        for call in calls:
            by_task.setdefault(call.task, {})[call.key] = call
        several = len(by_task) > 1
        report = Verification(expected=sum(map(len, by_task.values())), stored=0)
        for name, task_calls in by_task.items():
            values = self.store.values(name)
            label = (lambda key, name=name: f"{name} {key}") if several else (lambda key: key)
            report.stored += len(values)
            keys = set(task_calls)
            for call in task_calls.values():
                if call.key not in values:
                    report.missing.append(label(call.key))
                elif check is not None and not check(values[call.key], *call.args, **call.kwargs):
                    report.wrong.append((label(call.key), values[call.key]))
            report.unexpected += sorted(label(k) for k in values.keys() - keys)
            for key, n in self.store.deliveries(name).items():
                if n > 1:
                    report.redelivered[label(key)] = n
        return report


def _task(task: Any) -> Any:
    if not isinstance(task, str):
        return task
    from shared.pipeline import get_task

    found = get_task(task)
    if found is None:
        raise LookupError(f"no task named {task!r} is declared here (import its module first)")
    return found


def open_results(url: str | None = None) -> Results:
    """``Results`` over ``open_store(url)``; the Redis store shares the broker's client when it is
    the same Redis (its writes can then join a worker's ack script)."""
    settings = Settings.from_env()
    url = url or results_url(settings)
    cached = _OPEN.get(url)
    if cached is None:
        store = open_store(url)
        if isinstance(store, RedisStore):
            store.is_broker = url == settings.redis_url
        cached = _OPEN[url] = Results(store)
    return cached


_OPEN: dict[str, Results] = {}
