"""The seed's routing table (``celeryconfig.py``) and AMQP exchange semantics, without RabbitMQ.

Redis has no exchanges, so the table is resolved on the client: a task name gives a queue
(``queue_for``), a routing key gives the queues bound to it (``queues_for_key``). Users can
point the project at their own celeryconfig with ``PIPELINE_CELERYCONFIG`` and keep their queues.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from shared.errors import ConfigError, config_error

#: A module name or a ``.py`` path: the routing table in force instead of the seed's.
CELERYCONFIG_ENV = "PIPELINE_CELERYCONFIG"
COMPUTE_TASK = "tasks.compute"
HANDLE_RESULT_TASK = "tasks.handle_result"
#: Where the seed's tasks go under a user's table that does not route them by these names.
_SEED_QUEUES = {COMPUTE_TASK: "compute", HANDLE_RESULT_TASK: "result"}


def topic_matches(binding_key: str, routing_key: str) -> bool:
    """AMQP topic matching: words split on ``.``; ``*`` is exactly one word, ``#`` zero or more."""
    pattern = binding_key.split(".")
    words = routing_key.split(".")
    # reachable[j]: the first i pattern words can match the first j words.
    reachable = [True] + [False] * len(words)
    for token in pattern:
        if token == "#":
            for j in range(1, len(words) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            for j in range(len(words), 0, -1):
                reachable[j] = reachable[j - 1] and (token == "*" or token == words[j - 1])
            reachable[0] = False
    return reachable[len(words)]


@dataclass(frozen=True)
class Binding:
    queue: str
    binding_key: str


@dataclass(frozen=True)
class Route:
    """Where one task is published: a queue, a routing key, or both (as in ``CELERY_ROUTES``)."""

    queue: str | None
    routing_key: str | None


@dataclass(frozen=True)
class RoutingTable:
    exchange: str
    exchange_type: str
    default_queue: str
    default_routing_key: str
    bindings: tuple[Binding, ...]
    routes: Mapping[str, Route] = field(default_factory=dict)

    @property
    def queues(self) -> list[str]:
        return list(dict.fromkeys([self.default_queue, *(b.queue for b in self.bindings)]))

    def _route(self, task_name: str) -> Route | None:
        if task_name in self.routes:
            return self.routes[task_name]
        for pattern, route in self.routes.items():
            if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(task_name, pattern):
                return route
        return None

    def routing_key_for(self, task_name: str) -> str:
        route = self._route(task_name)
        return route.routing_key if route and route.routing_key else self.default_routing_key

    def routes_task(self, task_name: str) -> bool:
        """Whether a route (exact or glob) names this task."""
        return self._route(task_name) is not None

    def queue_for(self, task_name: str, fallback: str | None = None) -> str:
        """The queue a task is consumed from; an unrouted task goes to ``fallback`` if the table
        has that queue (the pipeline's own tasks keep their seed queue under a user's table),
        else to the default queue."""
        route = self._route(task_name)
        if route is None:
            fallback = fallback or _SEED_QUEUES.get(task_name)
            return fallback if fallback in self.queues else self.default_queue
        if route.queue:
            return route.queue
        bound = self.queues_for_key(route.routing_key or self.default_routing_key)
        return bound[0] if bound else self.default_queue

    def routed_queues(self) -> dict[str, str]:
        """Each route (task name or glob) with the queue it sends its tasks to."""
        return {task: self.queue_for(task) for task in self.routes}

    def queues_for_key(self, routing_key: str) -> list[str]:
        """The queues the exchange delivers ``routing_key`` to, in declaration order."""
        if self.exchange_type == "fanout":
            matched = [b.queue for b in self.bindings]
        elif self.exchange_type == "topic":
            matched = [b.queue for b in self.bindings if topic_matches(b.binding_key, routing_key)]
        else:  # direct
            matched = [b.queue for b in self.bindings if b.binding_key == routing_key]
        return list(dict.fromkeys(matched))


#: The seed's ``celeryconfig.py``, as a table.
SEED_TABLE = RoutingTable(
    exchange="tasks",
    exchange_type="topic",
    default_queue="default",
    default_routing_key="task.default",
    bindings=(
        Binding("default", "task.#"),
        Binding("compute", "compute.#"),
        Binding("result", "result.#"),
    ),
    routes={
        COMPUTE_TASK: Route("compute", "compute.a_result"),
        HANDLE_RESULT_TASK: Route("result", "result.handle"),
    },
)

# Celery 5 lowercase setting -> the old uppercase name the seed uses.
_OLD_NAMES = {
    "task_queues": "CELERY_QUEUES",
    "task_routes": "CELERY_ROUTES",
    "task_default_queue": "CELERY_DEFAULT_QUEUE",
    "task_default_exchange": "CELERY_DEFAULT_EXCHANGE",
    "task_default_exchange_type": "CELERY_DEFAULT_EXCHANGE_TYPE",
    "task_default_routing_key": "CELERY_DEFAULT_ROUTING_KEY",
}


def _import_config(module_or_path: str | ModuleType) -> ModuleType:
    """The config module; a ConfigError (one line) if it is missing or fails to run."""
    if isinstance(module_or_path, ModuleType):
        return module_or_path
    path = Path(module_or_path)
    try:
        if path.suffix == ".py" or path.is_file():
            if not path.is_file():
                raise config_error(f"{CELERYCONFIG_ENV}: no celeryconfig file {str(path)!r}")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise config_error(f"{CELERYCONFIG_ENV}: cannot load celeryconfig from {str(path)!r}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(module_or_path)
    except ConfigError:
        raise
    except ImportError as exc:
        message = f"{CELERYCONFIG_ENV}: cannot import celeryconfig {module_or_path!r}: {exc}"
        raise config_error(message) from None
    except Exception as exc:  # the user's module raised while it ran: say which, not where
        reason = (str(exc).splitlines() or [""])[0]
        raise config_error(
            f"{CELERYCONFIG_ENV}: celeryconfig {module_or_path!r} failed: {type(exc).__name__}: {reason}"
        ) from None


def _bindings(queues: Any, default_queue: str) -> tuple[Binding, ...]:
    if not queues:
        return (Binding(default_queue, default_queue),)
    if isinstance(queues, Mapping):
        return tuple(
            Binding(name, (opts or {}).get("binding_key") or (opts or {}).get("routing_key") or name)
            for name, opts in queues.items()
        )
    # kombu.Queue objects (Celery 5 style): duck-typed so kombu stays optional.
    return tuple(Binding(q.name, q.routing_key or q.name) for q in queues)


def _routes(routes: Any) -> dict[str, Route]:
    table: dict[str, Route] = {}
    for mapping in routes if isinstance(routes, list | tuple) else [routes or {}]:
        if not isinstance(mapping, Mapping):
            raise config_error(
                f"{CELERYCONFIG_ENV}: unsupported route entry {mapping!r}: "
                "only dicts of task -> options are read"
            )
        for task, opts in mapping.items():
            queue = opts.get("queue")
            queue = getattr(queue, "name", queue)  # a kombu.Queue is allowed here too
            table[task] = Route(queue, opts.get("routing_key"))
    return table


def load_celeryconfig(module_or_path: str | ModuleType) -> RoutingTable:
    """Read a seed-style (uppercase) or Celery 5 (lowercase) celeryconfig into a RoutingTable."""
    module = _import_config(module_or_path)

    def setting(new: str, default: Any = None) -> Any:
        value = getattr(module, new, None)
        return getattr(module, _OLD_NAMES[new], default) if value is None else value

    default_queue = setting("task_default_queue", "celery")
    return RoutingTable(
        exchange=setting("task_default_exchange") or default_queue,
        exchange_type=setting("task_default_exchange_type", "direct"),
        default_queue=default_queue,
        default_routing_key=setting("task_default_routing_key") or default_queue,
        bindings=_bindings(setting("task_queues"), default_queue),
        routes=_routes(setting("task_routes")),
    )


def active_table() -> RoutingTable:
    """The table in force: ``PIPELINE_CELERYCONFIG`` (a module or a .py path) if set, else the seed's.
    A config is read once per process (every send asks for its task's queue)."""
    config = os.environ.get(CELERYCONFIG_ENV)
    if not config:
        return SEED_TABLE
    table = _loaded.get(config)
    if table is None:
        table = _loaded[config] = load_celeryconfig(config)
    return table


_loaded: dict[str, RoutingTable] = {}
