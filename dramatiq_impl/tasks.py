"""The seed's tasks (``shared.seed``) as Dramatiq actors; start workers with
``dramatiq dramatiq_impl.tasks -Q …``.

>>> from dramatiq_impl.tasks import compute
>>> compute.send(6, 7)          # as the seed's compute.delay(6, 7)
>>> compute_chunk.send([[0, 1], [2, 3]])   # chunked mode: many points, one message each way
"""

from __future__ import annotations

from dramatiq_impl.driver import BACKEND_NAME, broker, driver
from shared import seed

__all__ = ["BACKEND_NAME", "broker", "compute", "compute_chunk", "handle_result", "handle_results"]

compute = driver().actor(seed.compute)
handle_result = driver().actor(seed.handle_result)
compute_chunk = driver().actor(seed.compute_chunk)
handle_results = driver().actor(seed.handle_results)
