"""The main job for any declared task: start workers, submit the calls, wait, verify each is stored once.

``redis-pipeline run --task myproj.tasks:simulate --args calls.jsonl`` drives this: the calls
come one JSON value per line (an array of positional arguments, or an object of keyword
arguments), every call is checked before anything is enqueued, the workers are the stock CLIs
on the task's module, and the run passes only if every call's result is stored exactly once
(and, with a check function, is right).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from shared import ownership
from shared.backend import BACKEND_ENV, TaskBackend
from shared.errors import ConfigError
from shared.pipeline import TASKS_ENV, Call, Task, results, store_results
from shared.results import Check, Verification
from shared.runner import ProgressCallback, RunRefused, wait_for_count, wait_live
from shared.submission import slice_reporter, submit_in_slices
from shared.workers import WorkerGroup


class CallsFileError(ConfigError):
    """An arguments file that cannot be read: the message names the file and the line (one line,
    exit 2 from ``redis-pipeline``, as every configuration error)."""


def read_calls(path: str, stdin: TextIO | None = None) -> list[Any]:
    """One JSON array (positional arguments) or object (keyword arguments) per line; ``-`` reads
    stdin; blank lines are skipped."""
    try:
        stream = (stdin or sys.stdin) if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise CallsFileError(f"cannot read arguments file {path}: {exc.strerror}") from None
    calls = []
    with stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CallsFileError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(item, (list, dict)):
                raise CallsFileError(f"{path}:{number}: expected a JSON array or object of arguments")
            calls.append(item)
    if not calls:
        raise CallsFileError(f"{path}: no calls")
    return calls


def load_check(spec: str) -> Check:
    """``module:function`` taking ``(value, *args, **kwargs)`` and returning whether it is right."""
    module, _, name = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot load check {spec!r}: {exc}") from None
    if not callable(found):
        raise ValueError(f"check {spec!r} is not callable")
    check: Check = found
    return check


@dataclass
class TaskRunResult:
    backend: str
    task: str
    seconds: float
    verification: Verification

    @property
    def ok(self) -> bool:
        return self.verification.ok

    def summary(self) -> str:
        v = self.verification
        rate = v.expected / self.seconds if self.seconds > 0 else 0.0
        line = f"{self.backend}: {self.task}: {v.verified}/{v.expected} calls stored once"
        line += f" in {self.seconds:.2f} s"
        if not self.ok:
            return f"{line}: FAILED, {v.problems()}"
        again = f"; {len(v.redelivered)} delivered more than once, stored once" if v.redelivered else ""
        return f"{line} ({rate:.0f} calls/s){again}"


def run_task(
    backend: TaskBackend,
    task: Task,
    calls: Sequence[Call],
    compute_workers: int = 2,
    log_dir: Path | None = None,
    chunk_size: int | None = None,
    check: Check | None = None,
    replace: bool = False,
    stall_timeout: float = 60.0,
    progress: ProgressCallback | None = None,
    submitted: ProgressCallback | None = None,
) -> TaskRunResult:
    """Run ``calls`` (checked: ``Task.calls``) through workers of ``backend``; results of ``task``
    already in the store refuse the run unless ``replace`` (then they are cleared first).
    ``submitted(calls so far, calls)`` is called per slice of the submission."""
    store = results()
    if held := store.count(task.name):
        if not replace:
            raise RunRefused(
                f"{store.store.url} already holds {held} result(s) of {task.name}; "
                "pass --replace to clear them first"
            )
        store.store.clear(task.name)
    expected = len({c.key for c in calls})
    modules = [task.fn.__module__]
    env = {**os.environ, "REDIS_URL": backend.settings.redis_url, BACKEND_ENV: backend.name}
    env[TASKS_ENV] = ",".join(modules)
    footprint = ownership.footprint(backend, [task.queue, store_results.queue])
    with WorkerGroup(env, log_dir or Path.cwd()) as group:
        roles = [("compute", task.queue)] * compute_workers + [("result", store_results.queue)]
        since = time.time() - 1.0
        for role, queue in roles:
            group.start(role, backend.task_worker_command([queue], modules))
        wait_live(backend, group, since)
        started = time.perf_counter()
        count = partial(store.count, task.name)
        report = slice_reporter(len(calls), submitted, progress, count, expected)
        submit_in_slices(partial(task.send_calls, chunk_size=chunk_size), calls, chunk_size, report)
        wait_for_count(count, expected, group, stall_timeout, progress, interval=0.05, max_interval=0.5)
        seconds = time.perf_counter() - started
    result = TaskRunResult(backend.name, task.name, seconds, store.verify(calls, check))
    if result.ok:  # the results are the task's output and stay; the run's other keys go
        footprint.tidy(keep=True)
    return result
