"""One kind of error for a setting nothing can use, and one line for it wherever it surfaces.

``redis-pipeline`` prints a ``ConfigError`` as ``error: <message>`` and exits 2 (``shared.cli``).
The stock worker CLIs (``dramatiq …``, ``rq worker …``) import our modules and would print a deep
traceback of it (Dramatiq from a child process, where no handler of ours runs), so there
``config_error`` prints the line and exits 2 itself. Everywhere else (your own Python) it is an
ordinary exception.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

#: Console scripts that import our modules at start and would show a ConfigError as a traceback.
STOCK_WORKER_CLIS = frozenset({"dramatiq", "dramatiq-gevent", "rq"})
#: The exit status of a configuration error, as click gives a usage error.
CONFIG_EXIT = 2


class ConfigError(ValueError):
    """A setting (environment variable, URL, module, file) that cannot be used: the message is one
    line naming it, with any password redacted. A ValueError, so existing handlers keep working."""


def in_stock_worker_cli() -> bool:
    """Whether this is the main thread of a ``dramatiq`` or ``rq`` console-script process (also its
    forked worker processes, which keep ``sys.argv``)."""
    if threading.current_thread() is not threading.main_thread() or not sys.argv or not sys.argv[0]:
        return False
    script = Path(sys.argv[0])
    name = script.parent.name if script.name == "__main__.py" else script.name
    return name in STOCK_WORKER_CLIS


def config_error(message: str, kind: type[ConfigError] = ConfigError) -> ConfigError:
    """The exception to raise for a bad setting (``raise config_error(...)``); in a stock worker CLI,
    print ``error: <message>`` to stderr and exit 2 instead of letting it become a traceback."""
    if in_stock_worker_cli():
        print(f"error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(CONFIG_EXIT)
    return kind(message)
