"""The table of stacks one run compares. The harness reads only this table, never a stack's name.

"ours" is the project's per-message path (one message per grid point, as the seed); "chunked" is
the same adapter in chunked mode (``shared.chunks``, ``DEFAULT_CHUNK_SIZE`` points per message).
"task-*" profiles run the grid through a
declared task (``@task``, ``benchmarks.task_stacks``) with results in Redis, SQLite or PostgreSQL.
"Stock" profiles run the same tasks the way a user first tries them: Dramatiq's own RedisBroker
and CLI defaults (one process per core, 8 threads each), and RQ's default forking ``rq worker``
(``--serializer json`` is the one flag added: the jobs are JSON, RQ's default is pickle).
Peer baselines run the seed's compute -> handle_result on the run's Redis: Celery with Redis as
its broker (``celery-redis``) and Huey (``huey``), each as its documentation sets it up by default
(``seed-defaults``) and as its own tuning advice has it (``tuned``); ``taskiq`` is the asyncio
peer (``benchmarks.taskiq_backend``). The ``redis-limit`` probes (``benchmarks.redis_limit``) are
each mode's ceiling: ``probe`` per message, ``chunked`` for the chunked rows (``Stack.limit``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from benchmarks.result_stores import STORES, StoreKind
from dramatiq_impl.broker import BROKER_ENV
from shared.backend import Backend, ChunkingBackend, load_backend, load_chunking_backend
from shared.chunks import DEFAULT_CHUNK_SIZE
from shared.commands import stock_cli
from shared.connection import RedisUnavailable, ping
from shared.settings import Settings
from shared.store import ResultStore
from shared.tasks import Point

#: The row every ratio is computed against, and the probe a per-message row's fraction-of-limit is
#: computed against; a chunked row's is ``CHUNKED_LIMIT``, the probe of its own mode (``Stack.limit``).
BASELINE = ("celery-rabbitmq", "seed-defaults")
LIMIT = ("redis-limit", "probe")
CHUNKED_LIMIT = ("redis-limit", "chunked")


class Wrapped:
    """A backend that forwards everything to ``inner``; a subclass changes one thing."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.settings = inner.settings
        self.store: ResultStore = inner.store

    def submit(self, x: int, y: int) -> None:
        self.inner.submit(x, y)

    def submit_many(self, points: Iterable[Point]) -> int:
        return self.inner.submit_many(points)

    def queue_depths(self) -> dict[str, int]:
        return self.inner.queue_depths()

    def purge(self) -> None:
        self.inner.purge()

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        return self.inner.worker_command(queues)

    def live_workers(self, since: float) -> int:
        return self.inner.live_workers(since)


class WithCommand(Wrapped):
    """A backend whose workers start with another command line (a stock profile of the same tasks)."""

    def __init__(self, inner: Backend, command: Callable[[Sequence[str]], list[str]]) -> None:
        super().__init__(inner)
        self.command = command

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        return self.command(queues)


class Chunked(Wrapped):
    """A backend in chunked mode: the grid goes as ``compute_chunk`` messages of ``size`` points;
    a single submitted point (the latency run) is a chunk of one."""

    def __init__(self, inner: ChunkingBackend, size: int = DEFAULT_CHUNK_SIZE) -> None:
        super().__init__(inner)
        self.chunking = inner
        self.size = size

    def submit(self, x: int, y: int) -> None:
        self.chunking.submit_chunks([(x, y)], self.size)

    def submit_many(self, points: Iterable[Point]) -> int:
        return self.chunking.submit_chunks(points, self.size)


def _dramatiq_stock(settings: Settings) -> Backend:
    return WithCommand(
        load_backend("dramatiq", settings),
        lambda queues: [
            "env",
            f"{BROKER_ENV}=stock",
            stock_cli("dramatiq"),
            "dramatiq_impl.tasks",
            "--queues",
            *queues,
        ],
    )


def _rq_stock(settings: Settings) -> Backend:
    return WithCommand(
        load_backend("rq", settings),
        lambda queues: [stock_cli("rq"), "worker", "--serializer", "json", *queues],
    )


def _chunked(name: str) -> Callable[[Settings], Backend]:
    return lambda settings: Chunked(load_chunking_backend(name, settings))


#: 2,500 points x 2 ms on 2 compute workers: a chunked chaos run lasts a few seconds.
CHUNKED_CHAOS_COST_MS = 2.0


def _peer(module: str, *args: str) -> Callable[[Settings], Backend]:
    """``module.create(settings, *args)``: a baseline's module (and its library) is imported only
    if the stack runs."""

    def make(settings: Settings) -> Backend:
        backend: Backend = importlib.import_module(module).create(settings, *args)
        return backend

    return make


def _celery(profile: str, broker: str = "rabbitmq") -> Callable[[Settings], Backend]:
    return _peer("benchmarks.celery_backend", profile, broker)


def _redis_limit(settings: Settings) -> Backend:
    from benchmarks.redis_limit import create

    return create(settings)


def _redis_limit_chunked(settings: Settings) -> Backend:
    from benchmarks.redis_limit import create_chunked

    return create_chunked(settings)


def _task(path: str, store: StoreKind, chunk_size: int | None = None) -> Callable[[Settings], Backend]:
    def make(settings: Settings) -> Backend:
        from benchmarks.task_stacks import create  # the grid task is declared only if the stack runs

        return create(path, store, settings, chunk_size)

    return make


def _store_problem(store: StoreKind) -> Callable[[Settings], str | None]:
    def problem(settings: Settings) -> str | None:
        return redis_problem(settings) or STORES.problem(store)

    return problem


def redis_problem(settings: Settings) -> str | None:
    try:
        ping(settings)
    except RedisUnavailable as exc:
        return str(exc)
    return None


def needs(package: str, *modules: str) -> Callable[[Settings], str | None]:
    """The problem of a stack on the run's Redis whose library ``package`` provides ``modules``:
    Redis unreachable, or a module that does not import."""

    def problem(settings: Settings) -> str | None:
        if problem := redis_problem(settings):  # every stack stores its results in Redis
            return problem
        try:
            for module in modules:
                importlib.import_module(module)
        except ImportError as exc:
            return f"{package} is not installed (pip install '.[bench]'): {exc}"
        return None

    return problem


def rabbitmq_problem(settings: Settings) -> str | None:
    if problem := needs("celery", "celery")(settings):
        return problem
    from benchmarks.celery_backend import broker_problem

    return broker_problem()


#: The peer stacks on the run's Redis: their library, then Redis.
CELERY_ON_REDIS = needs("celery", "celery", "kombu.transport.redis")
HUEY = needs("huey", "huey")
TASKIQ = needs("taskiq", "taskiq", "taskiq_redis")


@dataclass(frozen=True)
class Stack:
    stack: str
    profile: str
    make: Callable[[Settings], Backend]
    #: Returns why the stack cannot run here (its broker is unreachable), or None.
    problem: Callable[[Settings], str | None] = redis_problem
    #: One of the project's own paths: the chaos scenarios must pass on it (baselines are reported).
    ours: bool = False
    #: CPU ms per point in the chaos runs: a chunked grid is done in well under a second, so each
    #: point burns this much for a fault to land while chunks are being computed, not after.
    chaos_cpu_cost_ms: float = 0.0
    #: Why the latency case cannot time this stack ("": it can); its latency row says so instead.
    latency_unmeasurable: str = ""
    #: Whether a slow warm-up makes it run ``SLICE`` instead of each grid (``Harness._warm_up``).
    sliceable: bool = True
    #: The probe its "of limit" is against: the per-message one, or the chunked one for a stack
    #: that sends ``DEFAULT_CHUNK_SIZE`` points per message.
    limit: tuple[str, str] = LIMIT

    @property
    def key(self) -> tuple[str, str]:
        return self.stack, self.profile

    @property
    def label(self) -> str:
        return f"{self.stack} {self.profile}"


#: Results in SQL: no keyspace event announces a write (``benchmarks.stored_at``).
NO_SQL_LATENCY = "results in SQL, not Redis (latency is timed by Redis keyspace events)"


def _task_stacks(path: str) -> tuple[Stack, ...]:
    """The grid through a declared task on ``path``: results in the run's Redis, in a SQLite file,
    in a private PostgreSQL per message and chunked (``DEFAULT_CHUNK_SIZE`` calls per message).
    Never sliced: the point is the whole 50x50 grid on each store, and a hundred calls per message
    into SQL take a second or so (the warm-up, mostly start-up, can read under ``SLOW_RATE``)."""

    def sql(stack: Stack) -> Stack:
        return replace(stack, latency_unmeasurable=NO_SQL_LATENCY)

    postgres = _store_problem("postgres")
    chunked = _task(path, "postgres", DEFAULT_CHUNK_SIZE)
    return (
        Stack(path, "task-redis", _task(path, "redis"), sliceable=False),
        sql(Stack(path, "task-sqlite", _task(path, "sqlite"), sliceable=False)),
        sql(Stack(path, "task-postgres", _task(path, "postgres"), postgres, sliceable=False)),
        sql(Stack(path, "task-postgres-chunked", chunked, postgres, sliceable=False, limit=CHUNKED_LIMIT)),
    )


#: Why the chunked probe has no latency row: one submitted point is one message in either mode.
CHUNK_OF_ONE = "a latency run sends chunks of one point: the per-message probe's latency is this one's"

STACKS: tuple[Stack, ...] = (
    Stack("celery-rabbitmq", "seed-defaults", _celery("seed-defaults"), rabbitmq_problem),
    Stack("celery-rabbitmq", "tuned", _celery("tuned"), rabbitmq_problem),
    Stack("celery-redis", "seed-defaults", _celery("seed-defaults", "redis"), CELERY_ON_REDIS),
    Stack("celery-redis", "tuned", _celery("tuned", "redis"), CELERY_ON_REDIS),
    Stack("huey", "seed-defaults", _peer("benchmarks.huey_backend", "seed-defaults"), HUEY),
    Stack("huey", "tuned", _peer("benchmarks.huey_backend", "tuned"), HUEY),
    Stack("dramatiq", "ours", lambda s: load_backend("dramatiq", s), ours=True),
    Stack("dramatiq", "stock", _dramatiq_stock),
    Stack(
        "dramatiq",
        "chunked",
        _chunked("dramatiq"),
        ours=True,
        chaos_cpu_cost_ms=CHUNKED_CHAOS_COST_MS,
        limit=CHUNKED_LIMIT,
    ),
    *_task_stacks("dramatiq"),
    Stack("rq", "ours", lambda s: load_backend("rq", s), ours=True),
    Stack("rq", "stock", _rq_stock),
    Stack(
        "rq",
        "chunked",
        _chunked("rq"),
        ours=True,
        chaos_cpu_cost_ms=CHUNKED_CHAOS_COST_MS,
        limit=CHUNKED_LIMIT,
    ),
    *_task_stacks("rq"),
    Stack("taskiq", "seed-defaults", _peer("benchmarks.taskiq_backend", "seed-defaults"), TASKIQ),
    Stack("taskiq", "tuned", _peer("benchmarks.taskiq_backend", "tuned"), TASKIQ),
    Stack("redis-limit", "probe", _redis_limit),
    Stack(*CHUNKED_LIMIT, _redis_limit_chunked, limit=CHUNKED_LIMIT, latency_unmeasurable=CHUNK_OF_ONE),
)


def limit_of(key: tuple[str, str]) -> tuple[str, str]:
    """The probe a row of stack ``key`` is measured against (the per-message one if unknown)."""
    return next((s.limit for s in STACKS if s.key == key), LIMIT)


def select(labels: Iterable[str] | None) -> list[Stack]:
    """Stacks by label (``"rq stock"``) or by stack name (``"rq"``: all its profiles); None: all."""
    if labels is None:
        return list(STACKS)
    wanted = list(labels)
    chosen = [s for s in STACKS if s.label in wanted or s.stack in wanted]
    unknown = [w for w in wanted if not any(w in (s.label, s.stack) for s in STACKS)]
    if unknown:
        raise ValueError(f"unknown stack(s) {unknown}; choose from {[s.label for s in STACKS]}")
    return chosen
