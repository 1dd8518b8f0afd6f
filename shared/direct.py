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
    conn = client.connection
    if conn is None:
        raise ValueError("call_script needs a client with a single connection (single_connection_client)")
    commands = [("EVALSHA", script.sha, len(keys), *keys, *args)]
    if first is not None:
        commands.insert(0, tuple(first))
    if replicas > 0:
        commands.append(replication.wait_command(replicas))
    packed = conn.pack_commands(commands)
    replies: list[Any] = []

    def send() -> Any:
        replies.clear()
        conn.send_packed_command(packed)
        if first is not None:
            replies.append(conn.read_response())
        try:
            reply = conn.read_response()
        except redis.ResponseError:
            if replicas > 0:
                conn.read_response()  # the WAIT's reply: the connection stays in step
            raise
        if replicas > 0:
            replication.check(conn.read_response(), replicas)
        return reply

    try:
        reply = conn.retry.call_with_retry(send, lambda _: conn.disconnect())
    except redis.exceptions.NoScriptError:  # load it and call again (``first`` is done)
        client.script_load(script.script)
        reply = call_script_after(client, None, script, keys, args, replicas)[1]
    return (replies[0] if replies else None), reply
