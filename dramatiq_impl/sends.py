"""An actor that must see a message it sent before it returns: ``flush_sends()``, and ``get_result``.

Our broker holds back the messages an actor sends and writes them in the same script as its ack
(``dramatiq_impl.commit``): a worker that dies mid-actor leaves no half of its work behind, and a
redelivery sends them once. Stock Dramatiq writes a message the moment ``send`` is called. An actor
that waits for a message it sent (``message.get_result(block=True)``, ``pipeline.get_result``,
``group.wait``) would wait for ever, since the message is written only once the actor returns.

So, in an actor:

- ``flush_sends()`` writes what the actor has sent so far now (one round trip, in order; it
  returns once they are in Redis), and later sends are held back again;
- asking the Results middleware's backend for any result (``Message.get_result``, blocking or
  not, and everything built on it) does the same first: ``PipelineBroker.add_middleware`` wraps
  the backend's ``get_result``. A backend not added to our broker (``Results(backend=...)``) is
  not wrapped: call ``flush_sends()`` before asking it.

What this gives up, for the messages written early only: they no longer go with the ack. If the
worker dies after the flush and before the ack, the sent messages exist and run, and the actor's
message is delivered again, so a second run sends them again: a duplicate, exactly as with stock
Dramatiq, whose sends are never tied to the ack. Outside an actor, or with nothing held back, both
do nothing. Actors that do neither pay nothing: the hot path is unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

import dramatiq

#: Marks a backend's ``get_result`` already wrapped (a Results middleware added twice).
_FLUSHES = "_pipeline_flushes_sends"


def flush_sends(broker: dramatiq.Broker | None = None) -> int:
    """From an actor: write the messages it has sent so far now rather than with its ack, and
    return how many. Outside an actor, or on a broker that holds nothing back, 0."""
    flush = getattr(broker or dramatiq.get_broker(), "flush_sends", None)
    return flush() if flush is not None else 0


def flush_before_get_result(broker: Any, backend: Any) -> None:
    """Have ``backend.get_result`` write first what the calling actor holds back on ``broker``.

    Wraps that one backend object (``Message.get_result`` finds it on the broker's Results
    middleware, or is given it as ``backend=``), so an actor can wait for a message it sent."""
    get_result = backend.get_result
    if getattr(get_result, _FLUSHES, False):
        return

    @functools.wraps(get_result)
    def get_result_after_flush(*args: Any, **kwargs: Any) -> Any:
        broker.flush_sends()
        return get_result(*args, **kwargs)

    setattr(get_result_after_flush, _FLUSHES, True)
    backend.get_result = get_result_after_flush
