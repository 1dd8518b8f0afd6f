"""The seed's computation and grid, written once.

The seed's tasks are declared in ``shared.seed`` (checked by pydantic there); the hand-written
checks here (``validate_point``, ``validate_result``) serve the benchmark's baselines, which run
the same computation outside the task interface (Celery, the raw-Redis probe).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from shared.arguments import InvalidArguments

#: Arguments are integers in this closed range. Products then stay below 2**53, so every
#: JSON reader (not only Python's) holds them exactly.
ARG_MIN = -1_000_000
ARG_MAX = 1_000_000

Point = tuple[int, int]

#: Milliseconds of CPU each compute burns first (the benchmark's ``cpu`` workload); unset normally.
CPU_COST_ENV = "PIPELINE_CPU_COST_MS"
_CPU_COST_S = float(os.environ.get(CPU_COST_ENV) or 0) / 1000


def validate_arg(name: str, value: object) -> int:
    """Return ``value`` if it is an int in [ARG_MIN, ARG_MAX], else raise naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArguments(f"{name} must be an int, got {type(value).__name__} {value!r:.40}")
    if not ARG_MIN <= value <= ARG_MAX:
        raise InvalidArguments(f"{name}={value} is outside [{ARG_MIN}, {ARG_MAX}]")
    return value


def validate_point(x: object, y: object) -> Point:
    return validate_arg("x", x), validate_arg("y", y)


def compute(x: int, y: int) -> int:
    """The expensive computation of the seed (here: the product)."""
    if _CPU_COST_S:
        burn_cpu(_CPU_COST_S)
    return x * y


def burn_cpu(seconds: float) -> None:
    """Spin until this thread used ``seconds`` of CPU: a fixed cost, whatever the GIL contention."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def validate_result(x: object, y: object, result: object) -> tuple[int, int, int]:
    """Check what ``handle_result`` receives; a wrong product is stored (and reported by verify)."""
    px, py = validate_point(x, y)
    if isinstance(result, bool) or not isinstance(result, int):
        raise InvalidArguments(f"result must be an int, got {type(result).__name__} {result!r:.40}")
    return px, py, result


@dataclass(frozen=True)
class Grid:
    """The ``width`` x ``height`` block of points the seed fires at the workers (50x50 = 2,500)."""

    width: int
    height: int

    @classmethod
    def parse(cls, text: str) -> Grid:
        """Parse ``"50x50"``; raise ValueError with the accepted form otherwise."""
        try:
            w, h = (int(part) for part in text.lower().split("x"))
        except ValueError:
            raise ValueError(f"grid must look like 50x50, got {text!r}") from None
        if w < 1 or h < 1:
            raise ValueError(f"grid sides must be positive, got {text!r}")
        validate_point(w - 1, h - 1)
        return cls(w, h)

    @property
    def size(self) -> int:
        return self.width * self.height

    def points(self) -> Iterator[Point]:
        for x in range(self.width):
            for y in range(self.height):
                yield x, y

    def __contains__(self, point: object) -> bool:
        if not isinstance(point, tuple) or len(point) != 2:
            return False
        x, y = point
        return isinstance(x, int) and isinstance(y, int) and 0 <= x < self.width and 0 <= y < self.height

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"
