"""Where the declared-task stacks store results during one harness run: the run's Redis, a SQLite
file in a temp dir, or one private PostgreSQL (``benchmarks.postgres_server``), each made on first
use and removed when the run ends (``STORES.session``, entered by ``Harness.run``).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from shared.settings import Settings

if TYPE_CHECKING:
    from benchmarks.postgres_server import PostgresServer

StoreKind = Literal["redis", "sqlite", "postgres"]


class ResultStores:
    """The task stacks' stores for one harness run: a SQLite file in a temp dir and one private
    PostgreSQL (``benchmarks.postgres_server``), each made on first use and removed by ``close``."""

    def __init__(self) -> None:
        self._exit = ExitStack()
        self._dir: Path | None = None
        self._postgres: str | None = None
        self._postgres_server: PostgresServer | None = None
        self._postgres_problem: str | None = None

    def url(self, kind: StoreKind, settings: Settings) -> str:
        if kind == "redis":
            return settings.redis_url
        if kind == "sqlite":
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="bench-sqlite-"))
                self._exit.callback(shutil.rmtree, self._dir, ignore_errors=True)
            return f"sqlite:///{self._dir / 'results.db'}"
        if problem := self.problem(kind):
            raise RuntimeError(problem)
        assert self._postgres is not None
        return self._postgres

    def problem(self, kind: StoreKind) -> str | None:
        """Why the store cannot be had here (PostgreSQL: started now if it is not yet), or None."""
        if kind != "postgres" or self._postgres:
            return None
        if self._postgres_problem is None:
            from benchmarks.postgres_server import private_postgres

            try:
                import psycopg  # noqa: F401

                self._postgres_server = self._exit.enter_context(private_postgres())
                self._postgres = self._postgres_server.url
            except ImportError as exc:
                self._postgres_problem = f"psycopg is not installed (pip install '.[postgres]'): {exc}"
            except RuntimeError as exc:
                self._postgres_problem = f"no private PostgreSQL: {exc}"
        return self._postgres_problem

    def postgres_server(self) -> PostgresServer | None:
        """The run's private PostgreSQL (for a fault to stop and start it), None until one is
        started or when the run was given a PostgreSQL of its own (``session(postgres_url)``)."""
        return self._postgres_server

    def on_close(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` at ``close``, before the stores go (a store's open connections)."""
        self._exit.callback(callback)

    def close(self) -> None:
        """Stop the PostgreSQL and remove the SQLite dir; the next use makes new ones."""
        try:
            self._exit.close()
        finally:
            self._exit = ExitStack()
            self._dir = self._postgres = self._postgres_problem = None
            self._postgres_server = None

    @contextmanager
    def session(self, postgres_url: str | None = None) -> Iterator[ResultStores]:
        """One harness run; ``postgres_url``: use that PostgreSQL instead of starting one."""
        self.close()
        self._postgres = postgres_url
        try:
            yield self
        finally:
            self.close()


STORES = ResultStores()
atexit.register(STORES.close)  # a stack made outside a harness run (its session closes them first)
