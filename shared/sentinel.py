"""Redis Sentinel in ``REDIS_URL``: ``redis+sentinel://[[user]:password@]s1:26379,s2:26379/mymaster/0``.

A client of such a URL asks the sentinels where the master of the service (``mymaster``) is each
time it connects (redis-py's ``Sentinel.master_for``), so the retry policy of every client of the
pipeline (``shared.connection``) follows a failover without a restart: a connection to the old
master fails (closed by the switch, or ``READONLY`` on its next write, which redis-py turns into a
ConnectionError), and the retry reconnects to whichever master the sentinels name then.

- the user and password are the master's AUTH, as in ``redis://``; ``?sentinel_password=`` is the
  sentinels' own (``requirepass`` in their sentinel.conf), none by default;
- ``rediss+sentinel://`` speaks TLS to the sentinels and to the master (``ssl_*`` query options as
  for ``rediss://``);
- a sentinel without a port is on 26379; the database defaults to 0; other query options are
  redis-py's (``socket_timeout=``, …) and apply to the master.

Writes the old master accepted after the sentinels promoted another are lost with it (Redis
replicates asynchronously): a failover under load can cost messages or results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.connection import SSLConnection, parse_url
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelManagedConnection

#: Sentinel schemes and the plain scheme of their master.
SCHEMES = {"redis+sentinel": "redis", "rediss+sentinel": "rediss"}
DEFAULT_PORT = 26379
SENTINEL_PASSWORD = "sentinel_password"
#: Errors from a master on its way out: retried as a lost connection (``FailoverConnection``).
NOT_THE_MASTER_NOW = ("UNBLOCKED", "NOREPLICAS")
#: A sentinel silent this long is passed over for the next one (each is asked in turn).
SENTINEL_TIMEOUT = 2.0
EXAMPLE = "redis+sentinel://host:26379,host:26379/mymaster/0"

R = TypeVar("R", bound=redis.Redis)


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    #: Connection options of the master: db, AUTH, TLS and redis-py's query options.
    master: dict[str, Any]
    #: Connection options of each sentinel: its AUTH and TLS.
    sentinel: dict[str, Any]


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SCHEMES


def parse(url: str) -> SentinelUrl:
    """The parts of a sentinel URL; a ValueError with a one-line reason (never the password)."""
    parts = urlsplit(url)
    plain = SCHEMES[parts.scheme.lower()]
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if not hosts:
        raise ValueError(f"no sentinel host ({EXAMPLE})")
    sentinels = tuple(_address(text) for text in hosts.split(","))
    service, _, db = unquote(parts.path).strip("/").partition("/")
    if not service:
        raise ValueError(f"no service name: the master's name goes after the sentinels ({EXAMPLE})")
    if db and not db.isdigit():
        raise ValueError(f"the database {db!r} is not a number ({EXAMPLE})")
    query = parse_qsl(parts.query, keep_blank_values=True)
    # The master's options as redis-py reads them from the same URL with one host: the same checks.
    netloc = f"{userinfo}@localhost" if userinfo else "localhost"
    rest = urlencode([(k, v) for k, v in query if k != SENTINEL_PASSWORD])
    master = parse_url(urlunsplit((plain, netloc, f"/{db or 0}", rest, "")))
    for key in ("host", "port", "connection_class"):
        master.pop(key, None)
    sentinel: dict[str, Any] = {}
    if passwords := [v for k, v in query if k == SENTINEL_PASSWORD]:
        sentinel["password"] = passwords[-1]
    tls = plain == "rediss"
    if tls:
        sentinel.update({k: v for k, v in master.items() if k.startswith("ssl_")}, ssl=True)
    master["connection_class"] = FailoverSSLConnection if tls else FailoverConnection
    return SentinelUrl(sentinels, service, master, sentinel)


def _address(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":") if ":" in text else (text, "", "")
    if text.startswith("[") and "]" in text:  # [IPv6]:port
        host, _, after = text[1:].partition("]")
        colon, port = (":", after[1:]) if after.startswith(":") else ("", "")
    if not host:
        raise ValueError(f"a sentinel without a host: {text!r} ({EXAMPLE})")
    if not colon:
        return host, DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"sentinel {host}: port {port!r} is not a number in 1-65535")
    return host, int(port)


def sentinel_url_problem(url: str) -> str | None:
    """Why ``url`` is no usable sentinel URL (one line, no password), or None."""
    try:
        parse(url)
    except ValueError as exc:
        return (str(exc).splitlines() or [type(exc).__name__])[0]
    return None


class FailoverConnection(SentinelManagedConnection):
    """redis-py's connection to the master, made to follow a failover on every retry.

    redis-py asks the sentinels only when the pool hands out a connection: a connection dropped
    in a command is reconnected to the address it had, the old master (redis/redis-py#3874), and
    retried against it for as long as the retry policy allows (redis/redis-py#3560). Here every
    attempt to open the socket asks them first, so each retry goes where they say now.

    It also takes ``UNBLOCKED`` and ``NOREPLICAS`` as the lost connection they are: what a blocked
    command may get when its server is made a replica (7.0 here answers ``READONLY``, which
    redis-py handles itself), and what a master cut off from its replicas answers a write under
    ``min-replicas-to-write`` while the sentinels promote one of them: retried, the write goes to
    whichever master they name.
    """

    def _connect(self) -> Any:
        if self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        return super()._connect()

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except redis.ResponseError as error:
            if not str(error).startswith(NOT_THE_MASTER_NOW):
                raise
            self.disconnect()
            raise redis.ConnectionError(f"the master is being replaced: {error}") from None


class FailoverSSLConnection(FailoverConnection, SSLConnection):
    pass


class _SentinelNode(redis.Redis):
    """One sentinel; remembers why it last failed to answer, for the error that names them all."""

    address = ""
    failure: str | None = None

    def sentinel_masters(self) -> Any:
        try:
            found = super().sentinel_masters()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            cause = error.__cause__ or error.__context__
            reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else None
            self.failure = reason or (str(error).splitlines() or [type(error).__name__])[0].rstrip(".")
            raise
        self.failure = None
        return found


class PipelineSentinel(Sentinel):
    """redis-py's ``Sentinel`` whose "no master" error says why in one line: no sentinel answered
    (and each one's reason), or none of those that did knows the service's master as up."""

    def __init__(self, sentinels: tuple[tuple[str, int], ...], sentinel_kwargs: dict[str, Any]) -> None:
        super().__init__([], sentinel_kwargs=sentinel_kwargs)
        self.nodes = [_SentinelNode(host, port, **sentinel_kwargs) for host, port in sentinels]
        for node, (host, port) in zip(self.nodes, sentinels, strict=True):
            node.address = f"{host}:{port}"
        self.sentinels = list(self.nodes)  # asked in turn; discovery moves the one that answers first

    def discover_master(self, service_name: str) -> tuple[str, int]:
        try:
            return super().discover_master(service_name)
        except MasterNotFoundError:
            raise MasterNotFoundError(self._no_master(service_name)) from None

    def _no_master(self, service: str) -> str:
        nodes = self.nodes
        if all(n.failure for n in nodes):
            return "no sentinel answered (" + "; ".join(f"{n.address}: {n.failure}" for n in nodes) + ")"
        answered = ", ".join(n.address for n in nodes if not n.failure)
        return f"no sentinel ({answered}) knows a master {service!r} that is up"


def master_client(url: str, redis_class: type[R], **options: Any) -> R:
    """A ``redis_class`` client of the master the sentinels of ``url`` name, found again on every
    connection. ``options``: connection options of the master; the URL's own win, as in
    ``Redis.from_url``. A lookup asks the sentinels in turn, each once and without retries: the
    retry policy in ``options`` retries the connection, lookup included."""
    found = parse(url)
    sentinel_options = {
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_connect_timeout": SENTINEL_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
        **found.sentinel,
    }
    sentinel = PipelineSentinel(found.sentinels, sentinel_options)
    return sentinel.master_for(found.service, redis_class=redis_class, **{**options, **found.master})


def client_from_url(url: str, **options: Any) -> redis.Redis:
    """``redis.Redis.from_url`` that also takes a sentinel URL (a one-off client: no retry policy)."""
    if is_sentinel_url(url):
        return master_client(url, redis.Redis, **options)
    return redis.Redis.from_url(url, **options)
