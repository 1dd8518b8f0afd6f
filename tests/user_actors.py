"""A user's plain Dramatiq actors on the pipeline's broker (``dramatiq_impl.tasks`` makes it the
default), each noting in Redis when it runs: Dramatiq's own features, on our broker, with the
middleware a user adds (Results on the same Redis, CurrentMessage)."""

from __future__ import annotations

import time
from typing import Any

import dramatiq
import redis
from dramatiq.middleware import CurrentMessage, Middleware, TimeLimitExceeded
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from dramatiq_impl.sends import flush_sends
from dramatiq_impl.tasks import broker
from shared.settings import Settings

QUEUE = "user-actors"
#: A second queue, for actors of two priorities.
PRIORITY_QUEUE = "user-priority"
#: The names of the actors' runs, in the order they ran.
RAN = "test:user-actors:ran"
#: Generous bound for what an actor waits for (a loaded 2-core machine meets it).
WAIT_SECONDS = 60.0

#: No read timeout: redis-py 8 gives a client a 5 s one, which a blocking ``get_result`` outwaits.
RESULTS = RedisBackend(client=redis.Redis.from_url(Settings.from_env().redis_url, socket_timeout=None))


class SeeWorker(Middleware):
    """Keeps this process's Worker: an actor can see how many messages it has prefetched."""

    worker: Any = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        SeeWorker.worker = worker


# Before the actors: ``store_results`` is an actor option only once Results is on the broker.
broker.add_middleware(Results(backend=RESULTS))
broker.add_middleware(CurrentMessage())
broker.add_middleware(SeeWorker())


def _note(name: str) -> None:
    broker.client.rpush(RAN, name)


def _ran() -> list[str]:
    names: list[bytes] = broker.client.lrange(RAN, 0, -1)  # type: ignore[assignment]
    return [name.decode() for name in names]


def _wait(predicate: Any) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def note(name: str) -> None:
    _note(name)


@dramatiq.actor(queue_name=QUEUE, max_retries=1, min_backoff=300, max_backoff=300)
def fail_once(name: str) -> None:
    """Fails its first run; its retry (a delayed message, 300 ms backoff) notes ``name``."""
    if broker.client.incr(f"test:user-actors:tries:{name}") == 1:
        raise RuntimeError("first try fails")
    _note(name)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, store_results=True)
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


@dramatiq.actor(queue_name=QUEUE, max_retries=0, store_results=True)
def fails() -> None:
    raise ValueError("no result")


@dramatiq.actor(queue_name=QUEUE, max_retries=0, store_results=True)
def ask(x: int) -> int:
    """Sends ``double(x)`` and waits for its result (Results middleware) before it returns."""
    result: int = double.send(x).get_result(block=True, timeout=30_000)
    return result


@dramatiq.actor(queue_name=QUEUE, max_retries=0, store_results=True)
def ask_pipeline(x: int) -> int:
    """Runs ``double(x) | double()`` and waits for the last step: a message this actor never sent."""
    pipe = double.message(x) | double.message()  # type: ignore[call-arg]  # x: the first's result
    pipe.run()
    result: int = pipe.get_result(block=True, timeout=30_000)
    return result


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def flush_then_wait(name: str) -> None:
    """Sends ``note(name)``, writes it now (``flush_sends``), and waits until it has run."""
    note.send(name)
    _note(f"flushed:{flush_sends()}")
    _note(f"saw:{name}" if _wait(lambda: name in _ran()) else f"missed:{name}")


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def whoami() -> None:
    message = CurrentMessage.get_current_message()
    _note(f"current:{message.message_id if message else None}")


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=1_000)
def overrun() -> None:
    """Runs until TimeLimit interrupts it."""
    _note("overrun:started")
    try:
        while True:
            time.sleep(0.05)
    except TimeLimitExceeded:
        _note("overrun:interrupted")
        raise


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def block_until_prefetched(count: int) -> None:
    """Keeps this worker's only thread busy until ``count`` messages wait in its work queue (or
    ``WAIT_SECONDS``), as Dramatiq's priority test pauses its worker while it prefetches."""
    _note("blocking")
    work_queue = SeeWorker.worker.work_queue
    _wait(lambda: work_queue.qsize() >= count)
    _note(f"prefetched:{work_queue.qsize()}")


@dramatiq.actor(queue_name=PRIORITY_QUEUE, max_retries=0, priority=0)
def hi() -> None:
    _note("hi")


@dramatiq.actor(queue_name=PRIORITY_QUEUE, max_retries=0, priority=10)
def lo() -> None:
    _note("lo")
