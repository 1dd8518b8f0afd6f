"""Check every setting before a command starts anything, so a bad one is the only line printed.

``redis-pipeline`` calls ``check_environment`` first: a bad ``REDIS_URL`` or celeryconfig is then
one ``error:`` line and exit 2, before any "which Redis" line, progress bar or worker.
"""

from __future__ import annotations

import os

from shared.backend import BACKEND_ENV, configured_backend
from shared.connection import retry_budget
from shared.results import RESULTS_URL_ENV, open_store
from shared.routing import active_table
from shared.settings import Settings
from shared.versions import SUPPORTED, require


def check_environment() -> None:
    """Raise the ConfigError (or StoreError) of the first setting that cannot be used; opens no
    connection (the Redis and results URLs are parsed, not reached)."""
    for distribution in SUPPORTED:  # the Dramatiq and RQ releases our adapters are tested on
        require(distribution)
    Settings.from_env()  # REDIS_URL
    retry_budget()  # PIPELINE_REDIS_RETRY_SECONDS
    if os.environ.get(BACKEND_ENV):
        configured_backend()
    active_table()  # PIPELINE_CELERYCONFIG
    if url := os.environ.get(RESULTS_URL_ENV):
        open_store(url)
