"""The machine and library versions a report was measured with (a number means nothing without them)."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
import redis

from shared.sentinel import client_from_url
from shared.settings import Settings

LIBRARIES = (
    "celery",
    "kombu",
    "huey",
    "taskiq",
    "taskiq-redis",
    "dramatiq",
    "rq",
    "redis",
    "hiredis",
    "psutil",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _redis_server(settings: Settings) -> str | None:
    try:
        client = client_from_url(settings.redis_url, socket_connect_timeout=2)
        return str(client.info("server")["redis_version"])
    except redis.RedisError:
        return None


def _rabbitmq() -> str | None:
    try:
        from benchmarks.celery_backend import broker_version
    except ImportError:
        return None
    return broker_version()


def describe(settings: Settings) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_server": _redis_server(settings),
        "rabbitmq": _rabbitmq(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        # Other load on the machine skews every row: the 1/5/15-minute load averages say how much.
        "load_average": " / ".join(f"{v:.1f}" for v in os.getloadavg()),
    }
