"""Submit a declared-task stack's grid from a fresh process: ``python -m benchmarks.chaos_submit
50x50 [CHUNK_SIZE]``, with ``REDIS_URL`` and the stack's ``PIPELINE_*`` variables in the environment.

A process's task drivers (``dramatiq_impl.driver``, ``rq_impl.driver``) bind to the ``REDIS_URL``
of their first import, for the life of the process. The chaos harness starts a private Redis per
scenario, so it sends a task stack's grid from a child bound to this scenario's Redis
(``benchmarks.chaos.submit_task_grid``) rather than from its own process. Prints the calls sent.
"""

from __future__ import annotations

import sys

from shared.tasks import Grid


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python -m benchmarks.chaos_submit WIDTHxHEIGHT [CHUNK_SIZE]", file=sys.stderr)
        return 2
    grid = Grid.parse(argv[0])
    chunk_size = int(argv[1]) if len(argv) == 2 else None
    from benchmarks.grid_tasks import product  # declares the task on PIPELINE_BACKEND's driver

    print(len(product.map(list(grid.points()), chunk_size)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
