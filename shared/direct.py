"""Lua script calls on a client's single connection, without redis-py's per-command machinery.

A worker's hot path is a few script calls per message: Dramatiq's fetch and group commit, RQ's
start and success. Through a client, redis-py 8 spends ~45 µs of CPU on one here (pool checkout
with a readiness poll, the client lock, response callbacks, observability hooks) against ~25 µs
to pack, send and read the same command on a connection. The client is a single-connection one
kept for these calls (Dramatiq: ``PipelineBroker.dedicated_client``, one per thread that calls;
RQ: ``rq_impl.records.Scripts``). What matters from the client path is kept: the connection's
``Retry`` (reconnect and resend through an outage, as every other command of the pipeline does)
and loading the script again if Redis lost it (a restart without persistence of scripts).
A call whose writes are reported as done (a group commit, a job's success) can be confirmed on
replicas: ``replicas`` > 0 sends a ``WAIT`` behind the script (``shared.replication``), and a short
count is retried as a lost connection, script and all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script

from shared import replication


def call_script(
    client: redis.Redis,
    script: Script,
    keys: Sequence[Any],
    args: Sequence[Any],
    first: Sequence[Any] | None = None,
    replicas: int = 0,
) -> Any:
    """``script(keys, args)`` on ``client``'s single connection; its reply.

    ``first``: a command sent in the same write before the script, whose reply is dropped (the
    Dramatiq consumer's BLPOP: Redis runs the script as soon as it returns, one round trip for both).
    ``replicas``: confirm the script's writes on that many replicas (``shared.replication``).
    """
    return call_script_after(client, first, script, keys, args, replicas)[1]


def call_script_after(
    client: redis.Redis,
    first: Sequence[Any] | None,
    script: Script,
    keys: Sequence[Any],
    args: Sequence[Any],
    replicas: int = 0,
) -> tuple[Any, Any]:
    """``first`` (a blocking wait, say) and ``script(keys, args)`` in one write; both replies
    (``first``'s is None when there is no ``first``)."""
    head, replies = _call(client, first, script, [(keys, args)], replicas)
    return head, replies[0]


#: One script call's (keys, args).
Call = tuple[Sequence[Any], Sequence[Any]]


def call_scripts(client: redis.Redis, script: Script, calls: Sequence[Call], replicas: int = 0) -> list[Any]:
    """``script`` once per (keys, args) of ``calls``, all in one write; their replies, in order,
    a script's error reply (``redis.ResponseError``) in its place: one call failing does not
    undo the others. A lost connection or a short ``WAIT`` resends them all."""
    return _call(client, None, script, calls, replicas, raise_on_error=False)[1] if calls else []


def _call(
    client: redis.Redis,
    first: Sequence[Any] | None,
    script: Script,
    calls: Sequence[Call],
    replicas: int,
    raise_on_error: bool = True,
) -> tuple[Any, list[Any]]:
    conn = client.connection
    if conn is None:
        raise ValueError("call_script needs a client with a single connection (single_connection_client)")
    commands = [("EVALSHA", script.sha, len(keys), *keys, *args) for keys, args in calls]
    if first is not None:
        commands.insert(0, tuple(first))
    if replicas > 0:
        commands.append(replication.wait_command(replicas))
    packed = conn.pack_commands(commands)
    head: list[Any] = []

    def send() -> list[Any]:
        head.clear()
        conn.send_packed_command(packed)
        if first is not None:
            head.append(conn.read_response())
        replies: list[Any] = []
        error: redis.ResponseError | None = None
        for _ in calls:
            try:
                replies.append(conn.read_response())
            except redis.ResponseError as exc:
                error = error or exc
                replies.append(exc)
        acknowledged = conn.read_response() if replicas > 0 else None  # the WAIT's reply
        if error is not None and raise_on_error:
            raise error
        if replicas > 0:
            replication.check(acknowledged, replicas)
        return replies

    try:
        replies = conn.retry.call_with_retry(send, lambda _: conn.disconnect())
    except redis.exceptions.NoScriptError:  # load it and call again (``first`` is done)
        client.script_load(script.script)
        replies = _call(client, None, script, calls, replicas, raise_on_error)[1]
    if raise_on_error:  # a NOSCRIPT was raised above, and handled there
        return (head[0] if head else None), replies
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, redis.exceptions.NoScriptError)]
    if missing:  # replies in place (``call_scripts``): the calls the script never ran for, again
        client.script_load(script.script)
        again = _call(client, None, script, [calls[i] for i in missing], replicas, raise_on_error)[1]
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    return (head[0] if head else None), replies
