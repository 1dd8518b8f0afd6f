"""``redis-pipeline env``: the environment under which the plain worker commands run our path.

``rq worker compute result`` takes its worker and connection classes from ``RQ_WORKER_CLASS`` /
``RQ_CONNECTION_CLASS``, and ``dramatiq dramatiq_impl.tasks`` brings our broker with it; both
read ``REDIS_URL`` and the ``PIPELINE_*`` settings. This prints them once, for a shell (``eval``)
or a systemd ``EnvironmentFile=``, so a worker host needs no flags. Registered on the
``redis-pipeline`` group by ``shared.cli``.
"""

from __future__ import annotations

import importlib
import os
import shlex

import click

from shared.backend import BACKEND_ENV, BACKENDS, TASKS_ENV
from shared.connection import RETRY_SECONDS_ENV
from shared.results import RESULTS_URL_ENV
from shared.routing import CELERYCONFIG_ENV
from shared.settings import REDIS_URL_ENV, Settings
from shared.tasks import CPU_COST_ENV

#: Settings a worker reads, carried over when set (``REDIS_URL`` always: its value in force).
CARRIED = (TASKS_ENV, RESULTS_URL_ENV, CELERYCONFIG_ENV, RETRY_SECONDS_ENV, CPU_COST_ENV)


def worker_environment(backend: str) -> dict[str, str]:
    """``REDIS_URL``, the ``PIPELINE_*`` settings that are set, and what backend ``backend``'s plain
    worker command needs (its adapter's ``worker_environment()``, found by name)."""
    env = {REDIS_URL_ENV: Settings.from_env().redis_url}
    env.update({name: value for name in CARRIED if (value := os.environ.get(name))})
    adapter = importlib.import_module(BACKENDS[backend])
    env.update(adapter.worker_environment())
    env[BACKEND_ENV] = backend
    return env


def shell_line(name: str, value: str) -> str:
    return f"export {name}={shlex.quote(value)}"


def systemd_line(name: str, value: str) -> str:
    """``NAME='value'``: systemd's EnvironmentFile takes a single-quoted value verbatim (as a POSIX
    shell does); one holding a single quote is double-quoted, with backslash, double quote, dollar
    and backquote escaped (the escapes both systemd and a shell read back)."""
    if "'" not in value:
        return f"{name}='{value}'"
    escaped = "".join(f"\\{c}" if c in '\\"$`' else c for c in value)
    return f'{name}="{escaped}"'


@click.command()
@click.option("--backend", type=click.Choice(list(BACKENDS)), required=True)
@click.option(
    "--format",
    "form",
    type=click.Choice(["shell", "systemd"]),
    default="shell",
    show_default=True,
    help="shell: export lines for eval; systemd: NAME=value lines for an EnvironmentFile.",
)
def env(backend: str, form: str) -> None:
    """Print the environment under which the plain worker commands run our path:
    'rq worker compute result' (RQ) or 'dramatiq dramatiq_impl.tasks' (Dramatiq).

    eval "$(redis-pipeline env --backend rq)", or --format systemd > /etc/pipeline.env (mode
    0600: it holds REDIS_URL as it is, password included).
    """
    line = shell_line if form == "shell" else systemd_line
    click.echo(f"# redis-pipeline env --backend {backend} --format {form}")
    for name, value in worker_environment(backend).items():
        click.echo(line(name, value))
