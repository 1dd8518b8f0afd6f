"""A worker's stop budget: how long Redis may hold up a warm shutdown.

While a worker runs, every Redis command retries through an outage (``shared.connection``) and
the Dramatiq group commit retries a failed ack for ever: nothing handed over is dropped. On a stop
that is wrong: a worker whose Redis is paused or gone would outlive systemd's ``TimeoutStopSec``
(60 s in the README's unit) and be SIGKILLed. So once a stop is requested (``begin``, from the
Dramatiq middleware or the RQ worker's signal handler), commands keep retrying only until
``STOP_RETRY_SECONDS`` after it; the first failure past that gives up for the whole process
(``give_up``), and every command after that fails at once (``check``) instead of waiting for
socket timeouts one by one. Worst case with a paused Redis: the budget, plus one attempt's
connect and read timeouts (5 + 10 s), plus a few seconds of teardown: well under 60 s.

Giving up loses nothing: what could not be written stays in Redis as it was (a Dramatiq message
in this worker's ack set, an RQ job in its started registry or hold list) and the dead-worker
recovery of the next worker redelivers it; the result store's ``HSETNX`` keeps one result per key.
A worker that stops with Redis healthy never reaches the budget: its jobs finish as before.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

#: Seconds Redis commands keep retrying once a stop was requested.
STOP_RETRY_SECONDS = 15.0

log = logging.getLogger(__name__)

_requested = threading.Event()
_gave_up = threading.Event()
_deadline = float("inf")


class StopGaveUp(redis.ConnectionError):
    """This process is stopping and has given up on Redis: the command was not sent."""


def begin(seconds: float = STOP_RETRY_SECONDS) -> None:
    """A stop was requested: Redis gets ``seconds`` more (the first call sets the deadline).

    Safe in a signal handler: it sets a float and an Event nothing in that thread waits on."""
    global _deadline
    if not _requested.is_set():
        _deadline = time.monotonic() + seconds
        _requested.set()


def reset() -> None:
    """The worker has stopped: commands retry as before again (a worker run inside a process that
    goes on, as the tests run RQ workers; a worker process exits right after)."""
    global _deadline
    _deadline = float("inf")
    _requested.clear()
    _gave_up.clear()


def requested() -> bool:
    return _requested.is_set()


def wait(seconds: float) -> bool:
    """Sleep ``seconds``, or less if a stop is requested meanwhile (True then)."""
    return _requested.wait(seconds)


def gave_up() -> bool:
    return _gave_up.is_set()


def give_up() -> None:
    if not _gave_up.is_set():
        _gave_up.set()
        log.warning(
            "Redis unreachable while stopping: giving up on it; what is not acked stays in Redis "
            "and is delivered again to the next worker."
        )


def check() -> None:
    """Raise StopGaveUp if this process gave up on Redis (before a command is sent)."""
    if _gave_up.is_set():
        raise StopGaveUp("Redis unreachable while stopping: not retried")


def retry_left(left: float) -> float:
    """``left`` (seconds a failing command may still retry) cut to what the stop allows; 0 (and
    the process gives up) once a stop is requested and its time is up."""
    if not _requested.is_set():
        return left
    stop_left = _deadline - time.monotonic()
    if stop_left <= 0:
        give_up()
        return 0.0
    return min(left, stop_left)
