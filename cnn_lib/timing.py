"""Timing for the book's speed tables: the fastest of a few runs."""

from __future__ import annotations

import time

__all__ = ["best_time"]


def best_time(fn, repeat=3):
    """Calls ``fn()`` ``repeat`` times; returns ``(seconds, result)``: the fastest call's
    wall-clock time (the least disturbed by whatever else the machine is doing) and the
    result of the last call."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result
