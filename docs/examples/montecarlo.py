"""The worked example of "Your own tasks" (README): a float computation of about 20 ms per call.

``estimate_pi(seed, samples)`` throws ``samples`` pseudo-random darts (a generator seeded by
``seed``, so a call always returns the same value) and returns the fraction inside the unit
circle times four. Declared once; which backend runs it is ``PIPELINE_BACKEND``'s choice, where
results go is ``PIPELINE_RESULTS_URL``'s.
"""

from __future__ import annotations

import math
import random

from shared.pipeline import task


#: Chunked mode (``--chunked``): 20 calls of ~20 ms are 0.4 s of work per message, so 200 calls
#: make 10 messages for the compute workers to share (the default, 250, would make one).
@task(chunk_size=20)
def estimate_pi(seed: int, samples: int = 60_000) -> float:
    """Pi by Monte Carlo: ~20 ms of CPU for the default 60,000 samples."""
    rng = random.Random(seed)
    inside = sum(1 for _ in range(samples) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
    return 4.0 * inside / samples


def close_to_pi(value: float, seed: int, samples: int = 60_000) -> bool:
    """``--check``: the stored value is what the call computes, and within 5 % of pi."""
    return value == estimate_pi(seed, samples) and math.isclose(value, math.pi, rel_tol=0.05)
