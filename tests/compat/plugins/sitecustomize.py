"""Loaded by every Python process of a ``make compat`` run (the harness puts this folder first on
PYTHONPATH): redis-py connections to port 6379 on a loopback host go to the run's private
redis-server instead (``COMPAT_REDIS_PORT``).

Dramatiq's and RQ's suites connect to ``localhost:6379`` in many places (``RedisBroker()``,
``Redis()``, ``rqworker -u redis://127.0.0.1:6379/4`` in a subprocess) and flush what they find
there; the shared Redis of this machine must never see one of their commands. Patching the one
class every sync client connects through covers the test process and every Python subprocess it
starts (they inherit the environment), whatever URL or defaults a test passes.
"""

from __future__ import annotations

import os
from typing import Any

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
_SHARED_PORT = 6379


def _redirect(port: int) -> None:
    from redis.connection import Connection

    original = Connection.__init__

    def __init__(self: Connection, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if self.port == _SHARED_PORT and str(self.host) in _LOOPBACK:
            self.port = port

    Connection.__init__ = __init__  # type: ignore[method-assign]


if (_port := os.environ.get("COMPAT_REDIS_PORT")) and _port.isdigit():
    _redirect(int(_port))
