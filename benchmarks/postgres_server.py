"""A private, real PostgreSQL server in a temp dir, in the style of ``shared.embedded``: the
benchmark's SQL result store (``benchmarks.task_stacks``) and the tests' ``postgres_server``.

PostgreSQL refuses to run as root, so as root every server command runs as the ``postgres`` user
(``runuser``) in a dir that user owns. The server listens on 127.0.0.1 only, on a free port, with
trust auth and its unix socket inside the temp dir: it is reachable from this machine only.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from shared.embedded import free_port

SERVER_USER = "postgres"


def find_bindir() -> Path:
    """The dir holding ``initdb`` and ``pg_ctl``: PATH first, else the newest Debian install."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major_version)
    for initdb in reversed(candidates):
        if (Path(initdb).parent / "pg_ctl").exists():
            return Path(initdb).parent
    raise RuntimeError(
        "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin: "
        "apt-get install postgresql"
    )


def _major_version(initdb: str) -> int:
    version = Path(initdb).parent.parent.name
    return int(version) if version.isdigit() else 0


def _run_as() -> list[str]:
    """The prefix that runs a command as a user PostgreSQL accepts (none unless we are root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise RuntimeError(
            f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as"
        ) from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError(f"running as root and no runuser binary to switch to {SERVER_USER!r}")
    return [runuser, "-u", SERVER_USER, "--"]


class PostgresServer:
    """One PostgreSQL cluster in ``directory``, served on 127.0.0.1:``port`` while started."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.bindir = find_bindir()
        self.prefix = _run_as()
        self.directory = directory
        self.data = directory / "data"
        self.log = directory / "postgres.log"
        self.port = port or free_port()
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, timeout: float = 90) -> None:
        try:
            subprocess.run(
                [*self.prefix, str(self.bindir / command[0]), *command[1:]],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.CalledProcessError as error:
            output = (error.stderr or error.stdout or b"").decode(errors="replace").strip()
            log = self.log.read_text(errors="replace")[-500:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed: {output[-500:]} {log}".strip()) from None
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{command[0]} did not finish in {timeout:.0f} s") from None

    def init(self) -> None:
        if self.prefix:
            shutil.chown(self.directory, SERVER_USER, SERVER_USER)
        self.directory.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.directory} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self.running = True  # from here on, stop() tries even if the start fails half-way
        try:
            self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"
            )
        except RuntimeError:
            with suppress(RuntimeError):
                self.stop()
            self.running = False
            raise

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.running = False


@contextmanager
def private_postgres() -> Iterator[PostgresServer]:
    """Start a private PostgreSQL on a free port in a temp dir; stop it and remove the dir after.

    Raises RuntimeError saying why when it cannot (no binaries, no user to run it as)."""
    directory = Path(tempfile.mkdtemp(prefix="pipeline-postgres-"))
    try:
        server = PostgresServer(directory)
        try:
            server.init()
            server.start()
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
