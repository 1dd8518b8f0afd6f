"""A user's own task module, declared once and run on both backends by the integration tests."""

from __future__ import annotations

import os
import time
from typing import Any

from shared.pipeline import task


@task
def simulate(seed: int, scale: float) -> float:
    """A float computation."""
    return round((seed * 7919 % 1000) * scale, 6)


@task(queue="compute")
def label(name: str, *, upper: bool = False, tags: tuple[str, ...] = ()) -> dict[str, Any]:
    """Strings, keyword arguments, a dict back."""
    text = name.upper() if upper else name
    return {"label": text, "tags": list(tags), "n": len(text)}


@task(queue="compute", retries=2)
def flaky(n: int, marker_dir: str) -> int:
    """Fails on its first attempt per n (a marker file says it ran), then succeeds."""
    marker = os.path.join(marker_dir, f"flaky-{n}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError(f"first attempt of {n} fails on purpose")
    return n * 2


@task(queue="compute", timeout=30, retries=0)
def slow(seconds: float) -> float:
    """Longer than the seed's 10 s job timeout."""
    time.sleep(seconds)
    return seconds
