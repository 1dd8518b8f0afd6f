"""The seed's computation declared through the task interface (``shared.pipeline``), as a user would.

The ``task-*`` stacks (``benchmarks.task_stacks``) run the grid through ``product``: compute
workers are the stock CLIs on this module, results are stored by ``store_results`` in the store
``PIPELINE_RESULTS_URL`` names. ``PIPELINE_CPU_COST_MS`` applies as to the seed's ``compute``.
"""

from __future__ import annotations

from shared import tasks
from shared.pipeline import task
from shared.routing import COMPUTE_TASK, active_table

#: The task's name in the store and on the wire.
TASK_NAME = "bench.product"


@task(name=TASK_NAME, queue=active_table().queue_for(COMPUTE_TASK))
def product(x: int, y: int) -> int:
    """``x * y``, through the seed's ``compute`` (and its CPU cost, when one is set)."""
    return tasks.compute(x, y)
