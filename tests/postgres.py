"""The tests' private PostgreSQL: the benchmark harness's own (``benchmarks.postgres_server``)."""

from __future__ import annotations

from benchmarks.postgres_server import SERVER_USER, PostgresServer, find_bindir, private_postgres

__all__ = ["SERVER_USER", "PostgresServer", "find_bindir", "private_postgres"]
