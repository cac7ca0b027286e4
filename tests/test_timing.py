"""cnn_lib.timing.best_time: the fastest of several runs, and the result."""

import time

import pytest

from cnn_lib import best_time


def test_best_time_is_the_fastest_call_and_returns_the_result():
    delays = iter([0.05, 0.01, 0.03])
    calls = []

    def fn():
        calls.append(1)
        time.sleep(next(delays))
        return len(calls)

    seconds, result = best_time(fn, repeat=3)
    assert len(calls) == 3 and result == 3          # every call made, the last result returned
    assert 0.01 <= seconds < 0.03                   # the 10 ms call, not the 50 or 30 ms ones


def test_best_time_rejects_no_repeat():
    with pytest.raises(ValueError, match="at least 1"):
        best_time(lambda: None, repeat=0)
