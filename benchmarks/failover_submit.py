"""The failover runs' submitter: ``python -m benchmarks.failover_submit STACK WIDTHxHEIGHT SECONDS``.

A child of ``benchmarks.failover`` in the root namespace, with the run's ``REDIS_URL`` and
``PIPELINE_MIN_REPLICAS`` (read when a broker is made, so one process per run). It sends the
grid through the stack's own ``submit_many``, spread evenly over SECONDS (0: all at once) so that
submissions cross the fault. It is the careful user: a slice whose submit raises is sent again
(a resend costs a counted redelivery, never a wrong result) until it goes through. Prints one JSON
line: when it started and finished (``time.monotonic``, the same clock in every process), the
points submitted, the failed attempts and the first error.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any

#: How long one slice may keep failing before the submitter gives up (exit 1).
GIVE_UP_S = 120.0
#: Per-message slices: one every this many seconds.
SLICE_S = 0.05


def _log(text: str) -> None:
    """To the run's log (stderr), wall-clock stamped like the servers' and workers' logs."""
    print(f"{datetime.now():%H:%M:%S.%f} {text}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m benchmarks.failover_submit STACK WIDTHxHEIGHT SECONDS", file=sys.stderr)
        return 2
    from benchmarks.stacks import select
    from shared.settings import Settings
    from shared.tasks import Grid

    stack = select([argv[0]])[0]
    points = list(Grid.parse(argv[1]).points())
    seconds = float(argv[2])
    backend = stack.make(Settings.from_env())
    chunk = int(getattr(backend, "size", 1))  # a chunked stack: whole chunks per slice
    slices = max(1, round(seconds / SLICE_S)) if seconds > 0 else 1
    size = -(-len(points) // slices // chunk) * chunk  # ceil(points / slices), in whole chunks
    starts = range(0, len(points), size)
    report: dict[str, Any] = {"started": time.monotonic(), "submitted": 0, "errors": 0, "first_error": ""}
    for n, start in enumerate(starts):
        if (pause := report["started"] + n * seconds / len(starts) - time.monotonic()) > 0:
            time.sleep(pause)
        failing_since = None
        while True:
            try:
                report["submitted"] += backend.submit_many(points[start : start + size])
                _log(f"submitted {report['submitted']}")
                break
            except Exception as exc:  # any library's error: resend, as a careful caller would
                _log(f"submit of #{start}-{start + size - 1} failed: {type(exc).__name__}: {exc}"[:300])
                report["errors"] += 1
                report["first_error"] = report["first_error"] or f"{type(exc).__name__}: {exc}"[:300]
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > GIVE_UP_S:
                    print(json.dumps(report), flush=True)
                    return 1
                time.sleep(0.2)
    report["finished"] = time.monotonic()
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
