"""Submitting a long list of calls in slices, so a run can show progress while it submits.

A backend's ``submit_many`` checks every call, then enqueues them in pipelined batches of 1,000;
for 25 M points that is minutes without a sign of life, and every point is held in memory first.
``submit_in_slices`` hands it ``SUBMIT_SLICE`` calls at a time (ten batches) and reports after
each slice. In chunked mode a slice is a whole number of chunks, so the messages are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import TypeVar

T = TypeVar("T")

#: Calls per slice: ten pipelined batches, a few tens of milliseconds of submitting.
SUBMIT_SLICE = 10_000


def slice_size(chunk_size: int | None) -> int:
    """``SUBMIT_SLICE``, rounded to a whole number of chunks of ``chunk_size``."""
    if not chunk_size:
        return SUBMIT_SLICE
    return max(1, SUBMIT_SLICE // chunk_size) * chunk_size


def submit_in_slices(
    submit: Callable[[list[T]], object],
    calls: Iterable[T],
    chunk_size: int | None = None,
    after_slice: Callable[[int], None] | None = None,
) -> int:
    """``submit`` each slice of ``calls`` in order; ``after_slice(calls submitted so far)`` after
    each one. Returns how many calls were submitted."""
    it = iter(calls)
    size = slice_size(chunk_size)
    done = 0
    while part := list(islice(it, size)):
        submit(part)
        done += len(part)
        if after_slice is not None:
            after_slice(done)
    return done


def slice_reporter(
    total: int,
    submitted: Callable[[int, int], None] | None,
    stored: Callable[[int, int], None] | None,
    count: Callable[[], int],
    expected: int,
) -> Callable[[int], None] | None:
    """An ``after_slice`` that moves the submission bar and, with one count, the results bar
    (results are stored while the rest is still being submitted)."""
    if submitted is None and stored is None:
        return None

    def report(done: int) -> None:
        if submitted is not None:
            submitted(done, total)
        if stored is not None:
            stored(count(), expected)

    return report
