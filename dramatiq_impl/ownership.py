"""What a run of ours on Dramatiq would empty, and the fixed keys it may create
(``shared.ownership``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dramatiq_impl.middleware import dead_letter_reasons_key
from shared.ownership import Keys

if TYPE_CHECKING:
    from dramatiq_impl.backend import DramatiqBackend


def occupied(backend: DramatiqBackend, queues: Sequence[str]) -> list[str]:
    """The queues' waiting and delayed messages (what ``purge`` drops)."""
    broker = backend.broker
    pipe = broker.client.pipeline(transaction=False)
    for name in queues:
        pipe.llen(f"{broker.namespace}:{name}")
        pipe.llen(f"{broker.namespace}:{name}.DQ")
    replies = iter(pipe.execute())
    found = []
    for name in queues:
        waiting, delayed = next(replies), next(replies)
        if waiting:
            found.append(f"dramatiq queue {name!r} holds {waiting} message(s)")
        if delayed:
            found.append(f"dramatiq queue {name!r} holds {delayed} delayed message(s)")
    return found


def footprint(backend: DramatiqBackend, queues: Sequence[str]) -> Keys:
    """Per queue its dead letters and wake-up list; the heartbeats zset (the submitter's broker
    and each worker's add to it; Dramatiq never removes a stopped one's). Not here: waiting
    lists and message hashes, which a verified run leaves empty."""
    broker = backend.broker
    ns = broker.namespace
    keys = [f"{ns}:__heartbeats__"]
    for name in queues:
        q = f"{ns}:{name}"
        keys += [f"{q}.XQ", f"{q}.XQ.msgs", dead_letter_reasons_key(ns, name)]
        keys.append(broker.wake_key(name))
    return Keys(keys)
