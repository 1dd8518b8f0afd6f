"""A planned Sentinel switchover that loses no acknowledged write: ``redis-pipeline switchover``.

``SENTINEL FAILOVER`` alone promotes a replica while the old master, still up, goes on taking
writes until the sentinels demote it (about ten seconds later here), and a replica still attached
to it answers ``WAIT`` for them; it then resyncs from the new master and drops them
(redis/redis#4819; #13118 asks for a coordinated variant). ``make failover`` measured 250-420
confirmed calls lost that way with ``PIPELINE_MIN_REPLICAS=1`` and two replicas. Redis's own
``FAILOVER`` command (6.2) does what is needed, but Sentinel does not use it. So, as it does:

1. once no sentinel is in a failover of the service, ``CLIENT PAUSE <timeout> WRITE`` on the
   master: clients' writes (and ``WAIT`` answers) wait;
2. wait until every replica has acknowledged the master's whole replication stream;
3. ``SENTINEL FAILOVER``, and wait until the sentinels name the new master;
4. make the old master a replica of it, drop its clients (as the sentinels do when they demote an
   instance), then ``CLIENT UNPAUSE``: the paused writes fail there and the clients' retry
   (``shared.connection``) sends them to the new master.

Writes wait for the few seconds this takes (``paused_s`` in the result); nothing acknowledged
before the pause is missing from the new master, whatever ``PIPELINE_MIN_REPLICAS`` is. If a step
fails or times out, the master is unpaused and the error names the step; once the sentinels have
switched, they demote the old master themselves (as after a plain ``SENTINEL FAILOVER``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis

from shared.sentinel import SENTINEL_TIMEOUT, SentinelUrl, parse

#: Longest a switchover may keep writes paused (the ``CLIENT PAUSE`` timeout: a safety net if this
#: process dies mid-way; a normal switchover unpauses after a few seconds).
DEFAULT_TIMEOUT_S = 30.0
POLL_S = 0.05


class SwitchoverFailed(RuntimeError):
    """One line: which step did not complete, and what was undone."""


@dataclass(frozen=True)
class Switchover:
    service: str
    old: tuple[str, int]
    new: tuple[str, int]
    replicas: int
    #: Seconds from the pause to the unpause: how long writes waited.
    paused_s: float


def switchover(url: str, timeout: float = DEFAULT_TIMEOUT_S) -> Switchover:
    """Switch the master of ``url``'s service (a ``redis+sentinel://`` URL) to a replica, writes
    paused meanwhile; SwitchoverFailed if it cannot (the master is unpaused)."""
    found = parse(url)
    sentinels = [_sentinel(found, host, port) for host, port in found.sentinels]
    master: redis.Redis | None = None
    try:
        old = _agreed_master(sentinels, found.service)
        if old is None:
            raise SwitchoverFailed(f"the sentinels of {found.service!r} do not agree on one master")
        master = redis.Redis(*old, **{"socket_timeout": timeout, **_plain(found.master)})
        replicas = int(master.info("replication").get("connected_slaves", 0))
        if replicas == 0:
            raise SwitchoverFailed(f"{_name(old)} has no replica to switch to")
        deadline = time.monotonic() + timeout
        if not _until(deadline, lambda: not _failing_over(sentinels, found.service)):
            raise SwitchoverFailed(
                f"a failover of {found.service!r} is still in progress after {timeout:g} s"
            )
        master.execute_command("CLIENT", "PAUSE", int(timeout * 1000), "WRITE")
        paused = time.monotonic()
        try:
            if not _until(deadline, lambda: _caught_up(master)):
                raise SwitchoverFailed(f"the replicas of {_name(old)} did not catch up within {timeout:g} s")
            _failover(sentinels, found.service, deadline)
            new = _new_master(sentinels, found.service, old, deadline)
            if new is None:
                raise SwitchoverFailed(f"the sentinels named no new master within {timeout:g} s")
            master.execute_command("REPLICAOF", *new)
            master.execute_command("CLIENT", "KILL", "TYPE", "normal")  # not this connection (SKIPME)
        finally:
            master.execute_command("CLIENT", "UNPAUSE")
            took = time.monotonic() - paused
    finally:
        for client in [*sentinels, *([master] if master is not None else [])]:
            client.close()
    return Switchover(found.service, old, new, replicas, took)


def _new_master(
    sentinels: list[redis.Redis], service: str, old: tuple[str, int], deadline: float
) -> tuple[str, int] | None:
    """The master the sentinels agree on once it is no longer ``old``; None at the deadline."""
    while time.monotonic() <= deadline:
        if (named := _agreed_master(sentinels, service)) not in (None, old):
            return named
        time.sleep(POLL_S)
    return None


def _sentinel(found: SentinelUrl, host: str, port: int) -> redis.Redis:
    return redis.Redis(host, port, socket_timeout=SENTINEL_TIMEOUT, **found.sentinel)


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    """The master's connection options (AUTH, TLS, db) for a plain connection to one address."""
    plain = {k: v for k, v in options.items() if k != "connection_class"}
    if issubclass(options.get("connection_class", redis.Connection), redis.SSLConnection):
        plain["ssl"] = True
    return plain


def _agreed_master(sentinels: list[redis.Redis], service: str) -> tuple[str, int] | None:
    """The master every sentinel that answers names (None if they differ or none answers)."""
    named = set()
    for sentinel in sentinels:
        try:
            address: Any = sentinel.sentinel_get_master_addr_by_name(service)
        except (redis.ConnectionError, redis.TimeoutError):
            continue
        if address is None:
            return None
        host, port = address
        named.add((host.decode() if isinstance(host, bytes) else host, int(port)))
    return named.pop() if len(named) == 1 else None


def _failing_over(sentinels: list[redis.Redis], service: str) -> bool:
    """Whether a sentinel that answers is still in a failover of ``service`` (an earlier one
    finishing: a second started meanwhile could switch the master back)."""
    for sentinel in sentinels:
        try:
            state: Any = sentinel.sentinel_master(service)
            flags = state["flags"]
        except (redis.ConnectionError, redis.TimeoutError):
            continue
        if "failover_in_progress" in (flags if isinstance(flags, str) else ",".join(flags)):
            return True
    return False


def _caught_up(master: redis.Redis) -> bool:
    """Every replica has acknowledged the master's whole stream (acks come every second)."""
    info = master.info("replication")
    offset = info["master_repl_offset"]
    count = int(info.get("connected_slaves", 0))
    return count > 0 and all(info[f"slave{n}"]["offset"] >= offset for n in range(count))


def _failover(sentinels: list[redis.Redis], service: str, deadline: float) -> None:
    """``SENTINEL FAILOVER`` on the first sentinel that takes it (one busy with an earlier
    failover answers INPROG: asked again until the deadline)."""
    errors: list[str] = []
    while time.monotonic() < deadline:
        for sentinel in sentinels:
            try:
                sentinel.execute_command("SENTINEL", "FAILOVER", service)
                return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as error:
                errors.append(str(error).splitlines()[0] if str(error) else type(error).__name__)
        time.sleep(0.2)
    raise SwitchoverFailed(f"no sentinel started the failover: {errors[-1] if errors else 'none answered'}")


def _until(deadline: float, condition: Any) -> bool:
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def _name(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def describe(done: Switchover) -> str:
    """The one line ``redis-pipeline switchover`` prints."""
    return (
        f"{done.service}: master {_name(done.old)} -> {_name(done.new)} "
        f"({done.replicas} replica(s)); writes paused {done.paused_s:.1f} s"
    )
