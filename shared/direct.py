"""Lua script calls on a client's single connection, without redis-py's per-command machinery.

A worker's hot path is a few script calls per message: Dramatiq's fetch and group commit, RQ's
start and success. Through a client, redis-py 8 spends ~45 µs of CPU on one here (pool checkout
with a readiness poll, the client lock, response callbacks, observability hooks) against ~25 µs
to pack, send and read the same command on a connection. The client is a single-connection one
kept for these calls (Dramatiq: ``PipelineBroker.dedicated_client``, one per thread that calls;
RQ: ``rq_impl.records.Scripts``). What matters from the client path is kept: the connection's
``Retry`` (reconnect and resend through an outage, as every other command of the pipeline does)
and loading the script again if Redis lost it (a restart without persistence of scripts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script


def call_script(
    client: redis.Redis,
    script: Script,
    keys: Sequence[Any],
    args: Sequence[Any],
    first: Sequence[Any] | None = None,
) -> Any:
    """``script(keys, args)`` on ``client``'s single connection; its reply.

    ``first``: a command sent in the same write before the script, whose reply is dropped (the
    Dramatiq consumer's BLPOP: Redis runs the script as soon as it returns, one round trip for both).
    """
    return call_script_after(client, first, script, keys, args)[1]


def call_script_after(
    client: redis.Redis,
    first: Sequence[Any] | None,
    script: Script,
    keys: Sequence[Any],
    args: Sequence[Any],
) -> tuple[Any, Any]:
    """``first`` (a blocking wait, say) and ``script(keys, args)`` in one write; both replies
    (``first``'s is None when there is no ``first``)."""
    conn = client.connection
    if conn is None:
        raise ValueError("call_script needs a client with a single connection (single_connection_client)")
    commands = [("EVALSHA", script.sha, len(keys), *keys, *args)]
    if first is not None:
        commands.insert(0, tuple(first))
    packed = conn.pack_commands(commands)
    replies: list[Any] = []

    def send() -> Any:
        replies.clear()
        conn.send_packed_command(packed)
        if first is not None:
            replies.append(conn.read_response())
        return conn.read_response()

    try:
        reply = conn.retry.call_with_retry(send, lambda _: conn.disconnect())
    except redis.exceptions.NoScriptError:  # Script loads it and calls again (``first`` is done)
        reply = script(keys=keys, args=args, client=client)
    return (replies[0] if replies else None), reply
