"""A private Redis Sentinel set-up for the tests: a master, one replica and three sentinels on free
ports in a temp dir (``redis-server <conf> --sentinel``: no ``redis-sentinel`` binary needed)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis

from shared.embedded import RedisServer, free_port
from tests.helpers import wait_until

SERVICE = "mymaster"
SENTINELS = 3


class SentinelCluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.servers: list[RedisServer] = []
        self.sentinel_ports: list[int] = []
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> None:
        master = self._server("master")
        master.start()
        replica = self._server("replica", ["--replicaof", "127.0.0.1", str(master.port)])
        replica.start()
        # Replicating before the sentinels start: their first look at the master finds the replica.
        assert wait_until(lambda: self.info(replica.port)["master_link_status"] == "up", 30)
        for n in range(SENTINELS):
            self._sentinel(n, master.port)
        assert wait_until(self._ready, 60), "the sentinels did not find each other and the replica"

    def _server(self, name: str, args: list[str] | None = None) -> RedisServer:
        directory = self.directory / name
        directory.mkdir()
        server = RedisServer(directory, args=args or ())
        self.servers.append(server)
        return server

    def _sentinel(self, n: int, master_port: int) -> None:
        directory = self.directory / f"sentinel-{n}"
        directory.mkdir()
        port = free_port()
        conf = directory / "sentinel.conf"  # the sentinel rewrites it: its own file
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 3000\n"
        )
        with (directory / "sentinel.log").open("ab") as log:
            process = subprocess.Popen(
                [self.servers[0].binary, str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
            )
        self.sentinels.append(process)
        self.sentinel_ports.append(port)

    def _ready(self) -> bool:
        try:
            for port in self.sentinel_ports:
                with redis.Redis(port=port, decode_responses=True) as sentinel:
                    state = sentinel.sentinel_master(SERVICE)
                    replicas = sentinel.sentinel_slaves(SERVICE)
                if state["num-other-sentinels"] < SENTINELS - 1 or not _up(state):
                    return False
                if not any(_up(r) and r["master-link-status"] == "ok" for r in replicas):
                    return False
        except (redis.ConnectionError, redis.ResponseError):
            return False
        return True

    def info(self, port: int) -> dict[str, str]:
        with redis.Redis(port=port, decode_responses=True, socket_connect_timeout=1) as client:
            return {k: str(v) for k, v in client.info("replication").items()}

    def master_port(self) -> int:
        """The master's port as every sentinel names it (0 while they disagree)."""
        ports = set()
        for port in self.sentinel_ports:
            with redis.Redis(port=port) as sentinel:
                ports.add(int(sentinel.sentinel_get_master_addr_by_name(SERVICE)[1]))
        return ports.pop() if len(ports) == 1 else 0

    def switch_over(self, timeout: float = 60) -> int:
        """``SENTINEL FAILOVER``: a planned switchover to the replica. Returns once every sentinel
        names the new master and the old one replicates from it (the sentinels demote it ~10 s
        after the switch; until then it still takes writes from clients connected to it)."""
        old = self.master_port()
        with redis.Redis(port=self.sentinel_ports[0]) as sentinel:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    sentinel.execute_command("SENTINEL FAILOVER", SERVICE)
                    break
                except redis.ResponseError:  # NOGOODSLAVE / INPROG a moment after start
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        new = 0

        def switched() -> bool:
            nonlocal new
            new = self.master_port()
            if new in (0, old):
                return False
            info = self.info(old)
            return info["role"] == "slave" and info.get("master_link_status") == "up"

        assert wait_until(switched, timeout, interval=0.2), "the switchover did not complete"
        return new

    def kill(self, port: int) -> None:
        """SIGKILL the server on ``port`` (the master, say): a crash, not a switchover."""
        server = next(s for s in self.servers if s.port == port)
        assert server.process is not None
        server.process.kill()
        server.process.wait()

    def stop(self) -> None:
        for process in self.sentinels:
            if process.poll() is None:
                process.terminate()
        for process in self.sentinels:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for server in self.servers:
            server.stop()


def _up(state: dict[str, object]) -> bool:
    return not (state["is_sdown"] or state["is_odown"] or state["is_disconnected"])


@contextmanager
def sentinel_cluster() -> Iterator[SentinelCluster]:
    """Start the set-up in a temp dir; stop every server of it, also when starting fails."""
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pipeline-sentinel-")))
        cluster = SentinelCluster(directory)
        stack.callback(cluster.stop)
        cluster.start()
        yield cluster
