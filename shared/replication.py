"""``PIPELINE_MIN_REPLICAS=N``: a write we report as done is on N replicas first (Redis ``WAIT``).

Redis replicates asynchronously: a write the master acknowledged and had not yet sent on is gone
when a replica is promoted in its place (a Sentinel failover). With N > 0 the writes that someone
is told are done carry a ``WAIT N`` in the same round trip, on the same connection (``WAIT``
counts the replicas holding everything *that connection* wrote):

- a submission (``Task.submit`` / ``map`` returning, ``compute.send``): the messages;
- a stored result and the ack that goes with it (Dramatiq's group commit, RQ's success script,
  a store's ``put_many``), with whatever the finished task sent on (held back until then).

A ``WAIT`` that sees fewer than N replicas (none connected, or not caught up within
``WAIT_MS``) raises ``NotReplicated``, a ``redis.ConnectionError``: the connection's retry policy
(``shared.connection``) drops the connection, connects again (through a sentinel URL, to whichever
master the sentinels name now) and sends the whole round trip again, until the retry budget is
spent. The writes so confirmed are idempotent or counted (a result is stored once, a resent
message is a counted redelivery), so a resend costs a redelivery, never a wrong or doubled result.

Other writes need no ``WAIT`` because a replica holds a prefix of the master's writes, in order:
a fetch (a message moved to a worker's in-flight set), a heartbeat or a claim that a failover
drops leaves the message where it was before, queued, and it is delivered again; an ack lost with
the master would strand the message in the in-flight set of a worker that is still alive, which
is why the ack travels with the confirmed result. Sentinel promotes the replica with the largest
replication offset, so with N >= 1 and the sentinels able to reach that replica, the promoted one
holds every confirmed write.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from shared.errors import config_error

MIN_REPLICAS_ENV = "PIPELINE_MIN_REPLICAS"
#: How long one ``WAIT`` waits for the replicas before the round trip counts as not replicated.
WAIT_MS = 2000
#: A confirmed script call is built again this many times when the master lacks the script.
NOSCRIPT_ATTEMPTS = 3


class NotReplicated(redis.ConnectionError):
    """``WAIT`` saw fewer replicas than ``PIPELINE_MIN_REPLICAS``: retried like a lost connection."""


def min_replicas() -> int:
    """``PIPELINE_MIN_REPLICAS`` (0 if unset); a ConfigError naming it if it is no number >= 0."""
    text = os.environ.get(MIN_REPLICAS_ENV, "").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise config_error(f"{MIN_REPLICAS_ENV}={text!r}: expected a whole number of replicas >= 0")
    return int(text)


def wait_command(replicas: int) -> tuple[Any, ...]:
    """The ``WAIT`` to send last in a round trip whose writes must reach ``replicas`` replicas."""
    return ("WAIT", replicas, WAIT_MS)


def check(acknowledged: Any, replicas: int) -> None:
    """Raise NotReplicated unless ``acknowledged`` (a ``WAIT`` reply) reaches ``replicas``."""
    if int(acknowledged) < replicas:
        raise NotReplicated(
            f"{MIN_REPLICAS_ENV}={replicas}: only {int(acknowledged)} replica(s) confirmed the write "
            f"within {WAIT_MS} ms"
        )


def _checked_wait(response: Any, **options: Any) -> Any:
    replicas = options.get("min_replicas")
    if replicas is not None:
        check(response, replicas)
    return response


def confirm(pipe: Pipeline, replicas: int | None = None) -> bool:
    """End a non-transactional pipeline with a checked ``WAIT`` if the knob asks for one (its
    reply is the pipeline's last). ``execute()`` then raises NotReplicated *inside* redis-py's
    retry of the pipeline, so the whole pipeline is sent again. True if a ``WAIT`` was queued."""
    replicas = min_replicas() if replicas is None else replicas
    if replicas <= 0:
        return False
    if vars(pipe).get("transaction"):  # the attribute, not Redis.transaction()
        raise ValueError("WAIT inside MULTI confirms nothing: confirm a non-transactional pipeline")
    pipe.response_callbacks["WAIT"] = _checked_wait  # the client's table: plain WAITs pass through
    pipe.execute_command(*wait_command(replicas), min_replicas=replicas)
    return True


def call(client: redis.Redis, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    """``script(keys, args)``, confirmed on replicas as ``PIPELINE_MIN_REPLICAS`` says; its reply.

    Confirmed, it goes in a pipeline with its ``WAIT``, and a pipeline does not load a script the
    master lacks once it has started: a resend after a failover (a new master) or a restart (an
    empty script cache) gets ``NOSCRIPT``, and the pipeline is built again, which loads it."""
    replicas = min_replicas()
    if replicas <= 0:
        return script(keys=keys, args=args, client=client)  # redis-py's Script loads it itself
    for attempt in range(1, NOSCRIPT_ATTEMPTS + 1):
        with client.pipeline(transaction=False) as pipe:
            script(keys=keys, args=args, client=pipe)
            confirm(pipe, replicas)
            try:
                return pipe.execute()[0]
            except NoScriptError:
                if attempt == NOSCRIPT_ATTEMPTS:
                    raise
    raise AssertionError("unreachable")
