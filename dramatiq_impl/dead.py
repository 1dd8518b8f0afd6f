"""Dramatiq's dead letters as ``DeadMessage`` rows: per queue ``q``, the zset ``q.XQ`` (score: when
it was dead-lettered, ms), the bodies ``q.XQ.msgs`` and our reasons ``q.XQ.reasons``
(``dramatiq_impl.middleware.DeadLetterReasons``). One round trip per queue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dramatiq import Message

from dramatiq_impl.middleware import dead_letter_reasons_key
from shared.dead import DeadMessage, iso_utc, one_line

if TYPE_CHECKING:
    from dramatiq_impl.backend import DramatiqBackend


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _task(body: Any) -> str:
    """The actor name, or ``?`` for a body Dramatiq cannot decode (its reason says so)."""
    if body is None:
        return "?"
    try:
        return Message.decode(body).actor_name
    except Exception:
        return "?"


def dead(
    backend: DramatiqBackend, queues: Sequence[str] | None = None, limit: int | None = None
) -> list[DeadMessage]:
    """The dead letters of ``queues`` (all if None), newest first, at most ``limit`` per queue."""
    client, ns = backend.broker.client, backend.broker.namespace
    rows: list[DeadMessage] = []
    for q in queues or backend.queues:
        xq = f"{ns}:{q}.XQ"
        members: list[Any] = client.zrange(xq, 0, (limit or 0) - 1, desc=True, withscores=True)
        if not members:
            continue
        ids = [_text(m) for m, _ in members]
        pipe = client.pipeline(transaction=False)
        pipe.hmget(f"{xq}.msgs", ids)
        pipe.hmget(dead_letter_reasons_key(ns, q), ids)
        bodies, reasons = pipe.execute()
        scores = [float(score) for _, score in members]
        for redis_id, score, body, reason in zip(ids, scores, bodies, reasons, strict=True):
            rows.append(
                DeadMessage(
                    id=redis_id,
                    task=_task(body),
                    queue=q,
                    reason=one_line(None if reason is None else _text(reason)),
                    time=iso_utc(score / 1000),
                )
            )
    return rows
