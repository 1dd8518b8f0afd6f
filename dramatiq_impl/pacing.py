"""How many messages a consumer may hold: no more CPU-bound work than its process can run.

Dramatiq's consumer holds up to ``prefetch`` messages (2 x threads: 16). That suits I/O-bound
actors, which the threads run side by side. A CPU-bound actor runs one thread at a time (the GIL),
so a process holding 16 such messages finishes the 16th sixteen run-times later, while a worker
that fetched a moment later may find the queue empty and sit idle: at the end of a batch, one core
works and the other waits. Chunked mode makes it worse (1,000 points are 4 chunks of 250, and the
first process to fetch takes all 4).

``MessageCpu`` measures the CPU time each message's actor used on its worker thread (an average
per queue), and ``window`` lets a consumer hold only about ``HOLD_CPU_SECONDS`` of that work beyond
the message it runs: all of the prefetch for the seed's microsecond tasks, for 5 ms ones, or for
actors that wait on I/O (they use little CPU); 2 messages for 80 ms ones, 1 for a chunk that takes
a second. In a worker, a consumer starts at 1 until its queue's first message is measured, so its
first fetch never takes a whole batch of heavy chunks. (A window of a few messages also means a round trip per
message and no group commit; the default prefetch pays for itself on short messages.)

Where a smaller window would change what runs first, the feature wins: actor ``priority``. Stock
Dramatiq puts every message its consumers prefetched into one priority queue per worker process,
ordered by its actor's ``priority`` (lowest first; the Redis broker itself is FIFO and a message
carries no priority of its own), so priority reorders exactly what a worker holds. A worker whose
actors (on the queues it consumes, ``-Q``) do not all share one priority therefore holds its whole
prefetch on every queue and fetches whenever it has room, as stock does (``ordered``); where they
all share one, as the pipeline's own and most users' actors do, no order can change and the window
applies. Actors declared after the worker boots count too (``after_declare_actor``). The check
runs at boot and per declaration, never per message.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from dramatiq.common import dq_name
from dramatiq.middleware import Middleware

#: CPU seconds of work a consumer holds (running or waiting for a thread) beyond the first message.
HOLD_CPU_SECONDS = 0.100
#: Weight of the newest message in a queue's average.
SMOOTHING = 0.2


class MessageCpu(Middleware):
    """The average CPU seconds an actor's message costs its worker thread, per queue."""

    def __init__(self) -> None:
        self.per_queue: dict[str, float] = {}
        self._started = threading.local()
        #: Outside a worker nothing is measured: a consumer used on its own holds its prefetch.
        self.in_worker = False
        #: The queues the worker consumes (its ``-Q``; None: every declared queue).
        self.queues: set[str] | None = None
        #: The worker runs actors of more than one priority: every consumer holds its prefetch.
        self.ordered = False

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        self.in_worker = True  # before the worker starts its consumers, whose first fetch counts
        whitelist = getattr(worker, "consumer_whitelist", None)
        self.queues = set(whitelist) if whitelist else None
        self._see_priorities(broker)

    def after_declare_actor(self, broker: Any, actor: Any) -> None:
        if self.in_worker:  # before the boot the worker's queues are unknown, and nothing is paced
            self._see_priorities(broker)

    def _see_priorities(self, broker: Any) -> None:
        """``ordered``: do the actors of the consumed queues have more than one priority?"""
        actors = getattr(broker, "actors", {}).values()
        found = {a.priority for a in actors if self.queues is None or a.queue_name in self.queues}
        self.ordered = len(found) > 1

    def before_process_message(self, broker: Any, message: Any) -> None:
        self._started.cpu = time.thread_time()

    def after_process_message(self, broker: Any, message: Any, **kwargs: Any) -> None:
        spent = time.thread_time() - self._started.cpu
        queue = message.queue_name
        last = self.per_queue.get(queue)
        self.per_queue[queue] = spent if last is None else last + SMOOTHING * (spent - last)

    def window(self, queue_name: str, prefetch: int) -> int:
        """Messages a consumer of ``queue_name`` may hold: 1 to ``prefetch``. A delay queue's
        consumer holds its whole prefetch: its messages wait for their eta in the worker and cost
        no CPU until they are due, and a window of 1 would hold every delayed message (and every
        retry's backoff) behind the one fetched first, however much later that one is due. A worker
        whose actors differ in priority holds its whole prefetch (``ordered``, module docstring)."""
        if self.ordered or queue_name == dq_name(queue_name):
            return prefetch
        cpu = self.per_queue.get(queue_name)
        if cpu is None:
            return 1 if self.in_worker else prefetch
        if cpu * prefetch <= HOLD_CPU_SECONDS:
            return prefetch
        return min(prefetch, 1 + int(HOLD_CPU_SECONDS / cpu))
