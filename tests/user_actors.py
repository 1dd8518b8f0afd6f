"""A user's plain Dramatiq actors on the pipeline's broker (``dramatiq_impl.tasks`` makes it the
default), each noting in Redis when it runs: Dramatiq's own features, on our broker."""

from __future__ import annotations

import dramatiq

import dramatiq_impl.tasks  # noqa: F401  (the pipeline's broker becomes the default broker)

QUEUE = "user-actors"
#: The names of the actors' runs, in the order they ran.
RAN = "test:user-actors:ran"


def _note(name: str) -> None:
    dramatiq.get_broker().client.rpush(RAN, name)  # type: ignore[attr-defined]


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def note(name: str) -> None:
    _note(name)


@dramatiq.actor(queue_name=QUEUE, max_retries=1, min_backoff=300, max_backoff=300)
def fail_once(name: str) -> None:
    """Fails its first run; its retry (a delayed message, 300 ms backoff) notes ``name``."""
    client = dramatiq.get_broker().client  # type: ignore[attr-defined]
    if client.incr(f"test:user-actors:tries:{name}") == 1:
        raise RuntimeError("first try fails")
    _note(name)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def double(x: int) -> int:
    _note(f"double:{x}")
    return 2 * x


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def record(x: int) -> None:
    """A pipeline's second step: gets the first step's result."""
    _note(f"record:{x}")


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def succeeded(message_data: dict[str, object], result: object) -> None:
    """An ``on_success`` callback (Dramatiq's Callbacks middleware)."""
    _note(f"succeeded:{message_data['actor_name']}:{result}")
