"""Redis Sentinel on network-namespace hosts (``benchmarks.hosts``) for ``benchmarks.failover``: a
master (``redis-1``) and two replicas (``redis-2``, ``redis-3``), each with a sentinel beside it
(``redis-server <conf> --sentinel``), AOF on, every server on its host's own address.

Every Redis runs with ``min-replicas-to-write 1`` and ``min-replicas-max-lag 3``: a master takes a
write only while at least one replica has acknowledged its replication stream within the last
3 s (replicas acknowledge every second), else it answers ``NOREPLICAS``. What that does in a
partition: the master cut off from its replicas goes on taking writes from clients on its own
side for those 3 s at most, then refuses them; the sentinels on the other side promote a replica
after ``down-after-milliseconds`` (2 s) and an election, so the two masters overlap for about a
second, and whatever the cut-off one took after the cut is dropped when it comes back as a
replica. It bounds how long the losing side writes; it does not close the window (a write it
acknowledged in those seconds is still lost): ``PIPELINE_MIN_REPLICAS``, a ``WAIT`` on every
write reported as done, does. The price: a master refuses writes while both replicas are down
or more than 3 s behind (a promoted replica, too, until the other one has re-attached to it).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections import Counter
from pathlib import Path

import redis

from benchmarks.hosts import REDIS_PORT
from benchmarks.netns import Host, Net, SetupFailed, in_host, ip, wait_for
from shared.embedded import find_redis_server

NET = Net("rcf-", "10.213.8")
REDIS_HOSTS = tuple(Host(f"redis-{n}", f"redis-{n}", 20 + n, NET) for n in (1, 2, 3))
SENTINEL_PORT = 26379
SERVICE = "mymaster"
QUORUM = 2
DOWN_AFTER_MS = 2000
FAILOVER_TIMEOUT_MS = 10000
MIN_REPLICAS_TO_WRITE = 1
MIN_REPLICAS_MAX_LAG_S = 3
#: What every client of the pipeline is given as ``REDIS_URL``.
URL = "redis+sentinel://" + ",".join(f"{h.address}:{SENTINEL_PORT}" for h in REDIS_HOSTS) + f"/{SERVICE}/0"


def client(host: Host, port: int = REDIS_PORT) -> redis.Redis:
    """One attempt, short timeouts: the harness's own view, never retried behind its back."""
    return redis.Redis(
        host.address, port, socket_timeout=1, socket_connect_timeout=0.5, retry_on_timeout=False
    )


class SentinelHosts:
    """The three Redis hosts' servers and sentinels, started afresh for every run."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.servers: dict[Host, subprocess.Popen[bytes]] = {}
        self.sentinels: dict[Host, subprocess.Popen[bytes]] = {}
        #: Hosts whose link is down: not asked (each would cost a connect timeout).
        self.cut_off: set[Host] = set()
        binary = find_redis_server()
        if binary is None:
            raise SetupFailed("no redis-server binary")
        self.binary = binary

    def _start(self, host: Host, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        directory = self.directory / f"{host.name}-{name}"
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                in_host(host, [self.binary, *args]),
                cwd=directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self, timeout: float = 60.0) -> None:
        master = REDIS_HOSTS[0]
        for host in REDIS_HOSTS:
            args = ["--bind", host.address, "--port", str(REDIS_PORT), "--protected-mode", "no"]
            args += ["--dir", ".", "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]
            args += ["--min-replicas-to-write", str(MIN_REPLICAS_TO_WRITE)]
            args += ["--min-replicas-max-lag", str(MIN_REPLICAS_MAX_LAG_S)]
            # A replica re-attaching after a failover is sent the data at once, not after the
            # default 5 s spent waiting for others to share the transfer: until it is there, the
            # new master has no replica and refuses writes (min-replicas-to-write).
            args += ["--repl-diskless-sync-delay", "0"]
            if host != master:
                args += ["--replicaof", master.address, str(REDIS_PORT)]
            self.servers[host] = self._start(host, "redis", args)
        # Replicating before the sentinels start: their first look at the master finds the replicas.
        if not wait_for(lambda: self._replicas(master) == len(REDIS_HOSTS) - 1, timeout, 0.1):
            raise SetupFailed(f"the replicas did not attach to {master.name}:\n{self.tail(master, 'redis')}")
        for host in REDIS_HOSTS:
            conf = self.directory / f"{host.name}-sentinel" / "sentinel.conf"
            conf.parent.mkdir(parents=True, exist_ok=True)
            conf.write_text(  # the sentinel rewrites it: its own file
                f"port {SENTINEL_PORT}\nbind {host.address}\nprotected-mode no\ndir {conf.parent}\n"
                f"sentinel monitor {SERVICE} {master.address} {REDIS_PORT} {QUORUM}\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
            )
            self.sentinels[host] = self._start(host, "sentinel", [str(conf), "--sentinel"])
        if not wait_for(self._ready, timeout, 0.2):
            raise SetupFailed(f"the sentinels did not find each other and the replicas:\n{self.tail(master)}")

    def tail(self, host: Host, name: str = "sentinel", lines: int = 10) -> str:
        log = self.directory / f"{host.name}-{name}" / f"{name}.log"
        with contextlib.suppress(OSError):
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _replicas(self, host: Host) -> int:
        info = self.info(host)
        return int(info.get("connected_slaves", 0)) if info.get("role") == "master" else -1

    def _ready(self) -> bool:
        try:
            for host in REDIS_HOSTS:
                with client(host, SENTINEL_PORT) as sentinel:
                    state = sentinel.sentinel_master(SERVICE)
                    replicas = sentinel.sentinel_slaves(SERVICE)
                if state["num-other-sentinels"] < len(REDIS_HOSTS) - 1 or not _up(state):
                    return False
                if sum(_up(r) and r["master-link-status"] == "ok" for r in replicas) < len(REDIS_HOSTS) - 1:
                    return False
        except redis.RedisError:
            return False
        return True

    def info(self, host: Host) -> dict[str, str]:
        """``INFO replication`` of the server on ``host``; {} if it does not answer."""
        if host in self.cut_off:
            return {}
        try:
            with client(host) as server:
                return {k: str(v) for k, v in server.info("replication").items()}
        except redis.RedisError:
            return {}

    def master(self) -> Host | None:
        """The master at least ``QUORUM`` of the sentinels we can reach name; None if they do not agree."""
        named: Counter[str] = Counter()
        for host in REDIS_HOSTS:
            if host in self.cut_off:
                continue
            with contextlib.suppress(redis.RedisError, TypeError), client(host, SENTINEL_PORT) as sentinel:
                named[_text(sentinel.sentinel_get_master_addr_by_name(SERVICE)[0])] += 1
        address, votes = named.most_common(1)[0] if named else ("", 0)
        by_address = {h.address: h for h in REDIS_HOSTS}
        return by_address.get(address) if votes >= QUORUM else None

    def kill(self, host: Host) -> None:
        """SIGKILL the Redis on ``host`` (its sentinel lives on): a crash, not a switchover."""
        process = self.servers[host]
        process.kill()
        process.wait()

    def cut(self, host: Host) -> None:
        """Pull ``host``'s cable: its Redis, its sentinel and whatever else it runs are cut off."""
        ip("link", "set", host.link, "down")
        self.cut_off.add(host)

    def heal(self, host: Host) -> None:
        ip("link", "set", host.link, "up")
        self.cut_off.discard(host)

    def switch_over(self, timeout: float = 30.0) -> None:
        """``SENTINEL FAILOVER`` (planned), asked of a sentinel until one takes it; returns at once."""
        deadline = time.monotonic() + timeout
        while True:
            for host in REDIS_HOSTS:
                try:
                    with client(host, SENTINEL_PORT) as sentinel:
                        sentinel.execute_command("SENTINEL FAILOVER", SERVICE)
                    return
                except redis.RedisError as exc:  # NOGOODSLAVE / INPROG a moment after start
                    if time.monotonic() > deadline:
                        raise SetupFailed(f"SENTINEL FAILOVER refused: {exc}") from None
            time.sleep(0.2)

    def connections(self, host: Host) -> Counter[str]:
        """Client connections on the Redis of ``host`` by source address, not counting replicas
        and sentinels: which hosts' processes talk to it."""
        found: Counter[str] = Counter()
        with contextlib.suppress(redis.RedisError), client(host) as server:
            for c in server.client_list():
                replication = {"S", "M"} & set(c.get("flags", ""))
                if not replication and not c.get("name", "").startswith("sentinel"):
                    found[c["addr"].rsplit(":", 1)[0]] += 1
        return found

    def stop(self) -> None:
        """Kill every server and sentinel (a fresh set each run: nothing to shut down warm)."""
        for process in [*self.sentinels.values(), *self.servers.values()]:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
        for host in list(self.cut_off):
            self.heal(host)


def _up(state: dict[str, object]) -> bool:
    return not (state["is_sdown"] or state["is_odown"] or state["is_disconnected"])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
