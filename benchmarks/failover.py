"""Sentinel failover under load: does a stack lose results when its Redis master dies?

    python -m benchmarks.failover           # (make failover) every scenario, stack and knob setting

Three Redis hosts (a master and two replicas, a sentinel on each, AOF on,
``benchmarks.sentinel_hosts``), compute and result workers on hosts of their own and one compute
worker beside the master, the submitter in the root namespace, all on network namespaces like
``make hosts`` (``rcf-*``, 10.213.8.0/24), every client on
``REDIS_URL=redis+sentinel://<the three sentinels>/mymaster/0``. Per run (``benchmarks.failover_run``):
a fresh set-up, the grid once at full speed (the throughput column), then again with the fault
applied once ``--fault-at`` of it is stored while the submitter is still sending, and every
point checked on the master the sentinels name at the end.

Scenarios: the master SIGKILLed, the master's host cut off, a plain ``SENTINEL FAILOVER``, and
``redis-pipeline switchover`` (writes paused around the same failover, ``shared.switchover``); each
on our two paths per message and chunked with ``PIPELINE_MIN_REPLICAS`` 0 and 1 (the plain
failover also at 2, every replica: what it needs), and on Celery with its Redis broker through
Sentinel (kombu's ``sentinel://``) as the baseline. Writes
``benchmarks/results/latest-failover.json`` (``failover``: one row per run); ``python -m benchmarks
failover-table`` renders it. Needs root and iproute2; exits 77 (SKIPPED) where namespaces cannot be
made. Exits 1 when a run of ours with the knob on (a plain failover: at every replica) loses, doubles or
mixes up a result, needs more than 30 s, or ends with a worker dead or left on the old master.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import failover_report, machine
from benchmarks.failover_run import ALL_REPLICAS, HOSTS, SCENARIOS, Config, FailoverRow, FailoverRun
from benchmarks.netns import SKIPPED, SetupFailed, build_network, cleanup, finish_logs, namespaces_unavailable
from benchmarks.output import RESULTS
from benchmarks.sentinel_hosts import NET, URL, SentinelHosts
from benchmarks.stacks import Stack, select
from shared.settings import Settings
from shared.tasks import Grid

OURS = ("dramatiq ours", "dramatiq chunked", "rq ours", "rq chunked")
BASELINE = "celery-redis seed-defaults"


#: The knob values of a default run; a plain ``SENTINEL FAILOVER`` also runs ``ALL_REPLICAS``.
DEFAULT_KNOBS = (0, 1)


def plan(scenarios: list[str], labels: list[str], knobs: list[int] | None) -> list[tuple[str, Stack, int]]:
    """(scenario, stack, PIPELINE_MIN_REPLICAS) in table order; the baseline runs once, knob 0
    (Celery has no such knob). ``knobs`` None: the default values."""
    runs = []
    for scenario in scenarios:
        chosen = list(knobs) if knobs else list(DEFAULT_KNOBS)
        if not knobs and scenario == "sentinel-failover":
            chosen.append(ALL_REPLICAS)
        for stack in (select([label])[0] for label in labels):
            for knob in chosen if stack.ours else [0]:
                runs.append((scenario, stack, knob))
    return runs


def baseline_problem() -> str | None:
    if importlib.util.find_spec("celery") is None:
        return "celery is not installed (pip install '.[bench]')"
    return None


def line(row: FailoverRow) -> str:
    head = f"{row.scenario} {row.stack} {row.profile} min_replicas={row.min_replicas}"
    result = failover_report.verdict(row.as_json())
    recovery = "-" if row.recovery_s is None else f"{row.recovery_s:.1f} s"
    return (
        f"{head}: lost {row.lost}, doubled {row.doubled}, wrong {row.wrong}, redeliveries "
        f"{row.redeliveries}, recovery {recovery}, {row.throughput} tasks/s, workers alive "
        f"{'yes' if row.workers_alive else 'no'}, followed {'yes' if row.followed else 'no'}: {result}"
        + (f" ({row.note})" if row.note else "")
    )


def describe_machine(logs: Path) -> dict[str, Any]:
    """The machine line of the report, read off a set-up started for it (which also shows, before
    any run, that the servers and sentinels start on these hosts)."""
    cluster = SentinelHosts(logs / "probe")
    try:
        cluster.start()
        return machine.describe(Settings(URL))
    finally:
        cluster.stop()


def _grid(text: str) -> Grid:
    try:
        return Grid.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.failover", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scenario", action="append", choices=list(SCENARIOS), help="repeatable; default all"
    )
    parser.add_argument("--stack", action="append", choices=[*OURS, BASELINE], help="repeatable; default all")
    parser.add_argument(
        "--min-replicas",
        action="append",
        type=int,
        help="PIPELINE_MIN_REPLICAS, repeatable; default 0 and 1 (sentinel-failover: and 2)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="leave Celery out")
    parser.add_argument("--grid", type=_grid, default="50x50", help="WIDTHxHEIGHT (default 50x50)")
    parser.add_argument("--workers-per-host", type=int, default=1, help="compute workers per compute host")
    parser.add_argument("--fault-at", type=float, default=0.3, help="fraction stored at the fault")
    parser.add_argument(
        "--submit-seconds", type=float, default=6.0, help="the fault run's grid is sent over this long"
    )
    parser.add_argument(
        "--submit-before", action="store_true", help="send the whole grid before the fault instead"
    )
    parser.add_argument("--cpu-ms", type=float, default=0.0, help="CPU milliseconds each point burns")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds a run may take after its fault")
    parser.add_argument(
        "--partition-seconds", type=float, default=12.0, help="how long the master is cut off"
    )
    parser.add_argument("--log-dir", type=Path, help="keep logs here (default: kept only on failure)")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest-failover.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    config = Config(
        args.grid,
        args.workers_per_host,
        args.fault_at,
        args.submit_seconds,
        args.submit_before,
        args.cpu_ms,
        args.timeout,
        args.partition_seconds,
    )
    labels = args.stack or [*OURS, BASELINE]
    if BASELINE in labels and (args.no_baseline or baseline_problem()):
        labels.remove(BASELINE)
        if not args.no_baseline:
            print(f"skipped {BASELINE}: {baseline_problem()}", file=sys.stderr)
    runs = plan(args.scenario or list(SCENARIOS), labels, args.min_replicas)
    if reason := namespaces_unavailable(NET.prefix):
        print(f"SKIPPED: {reason}", file=sys.stderr)
        return SKIPPED
    # The task modules read REDIS_URL when imported; make it the sentinels' before they are.
    os.environ["REDIS_URL"] = URL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` cleans up
    logs = args.log_dir or Path(tempfile.mkdtemp(prefix="rcf-failover-"))
    rows: list[dict[str, Any]] = []
    machine_doc: dict[str, Any] = {}
    ok = True
    cleanup(NET.prefix)  # a crashed run's leftovers
    try:
        build_network(HOSTS, NET)
        machine_doc = describe_machine(logs)
        for scenario, stack, knob in runs:
            print(f"{scenario} on {stack.label}, PIPELINE_MIN_REPLICAS={knob} …", file=sys.stderr, flush=True)
            run_logs = logs / f"{scenario}-{stack.stack}-{stack.profile}-{knob}"
            row = FailoverRun(scenario, stack, knob, config, run_logs).execute()
            rows.append(row.as_json())
            print(line(row), flush=True)
            ok = ok and (row.passed or not row.required)
    except SetupFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        ok = False
    except (KeyboardInterrupt, SystemExit):  # SIGTERM too: the rows so far are written
        print(f"interrupted after {len(rows)} of {len(runs)} runs", file=sys.stderr)
        ok = False
    finally:
        cleanup(NET.prefix)
    if rows:
        machine_doc["load_average"] = " / ".join(f"{v:.1f}" for v in os.getloadavg())  # at the end
        doc = {
            "schema": 1,
            "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "grid": str(config.grid),
            "tasks": config.grid.size,
            "settings": {k: v for k, v in vars(config).items() if k != "grid"},
            "machine": machine_doc,
            "complete": len(rows) == len(runs),
            "failover": rows,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        print("\n" + failover_report.readme_table(doc), end="")
    return finish_logs(ok, logs, kept=args.log_dir is not None)


if __name__ == "__main__":
    sys.exit(main())
