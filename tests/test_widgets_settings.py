"""Issue 12, item 7: every widget and figure function answers any setting with a result or a
message (a ``str``), never a traceback, and within a time bound; sizes are bounded and the
bound is said. Property tests (hypothesis) over the settings, plus the cases of the issue."""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

pytest.importorskip("matplotlib.pyplot")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cnn_lib.model import seed_network  # noqa: E402
from cnn_lib.teaching.widgets import common, conv, draw, mlp  # noqa: E402

SECONDS = 15          # per call, on a loaded 2-core machine; typical calls take well under 1 s
DIGIT = np.clip(np.random.default_rng(0).random((28, 28)) * 1.5 - 0.5, 0, 1)
M6 = np.arange(36.0).reshape(6, 6) / 35

# Any value a slider, a text box or a careless caller can give.
anything = st.one_of(
    st.integers(-3, 40), st.integers(-2 ** 70, 2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308, 0.5, 2.0]),
    st.none(), st.booleans(), st.text(max_size=3), st.tuples(st.integers(-1, 4), st.integers(-1, 4)),
)
# no shrinking: drawing figures is slow, and the failing example is printed anyway
SETTINGS = settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def answered(call):
    """Runs ``call``; asserts a result or a non-empty message, within SECONDS; closes figures."""
    start = time.perf_counter()
    result = call()
    elapsed = time.perf_counter() - start
    try:
        if isinstance(result, str):
            assert result.strip(), "an empty message"
        else:
            assert isinstance(result, (Figure, FuncAnimation, dict)), type(result)
            if isinstance(result, FuncAnimation):
                result._draw_was_started = True        # not shown here: no "deleted without rendering" warning
        assert elapsed < SECONDS, f"took {elapsed:.1f} s"
    finally:
        plt.close("all")
    return result


# --------------------------------------------------------------------------- the cases
def test_named_cases_give_messages():
    cases = {
        "step": lambda: conv.explorer_figure(DIGIT, 10, 3, 2, 1, 1, step=float("nan")),
        "window": lambda: conv.scan_animation(M6, None, op="max"),
        "seed": lambda: conv.grad_input_figure(seed=-1),
        "NaN": lambda: draw.predict_drawing(seed_network(0), np.where(DIGIT > 0.9, np.nan, DIGIT)),
    }
    for word, call in cases.items():
        result = answered(call)
        assert isinstance(result, str) and word in result, (word, result)


def test_descent_view_with_an_enormous_learning_rate_draws_the_divergence():
    fig = answered(lambda: mlp.descent_view(lr=1e308))
    assert isinstance(fig, Figure) and "diverged" in fig.axes[1].get_title()


def test_scan_animation_with_huge_padding_is_refused_quickly():
    start = time.perf_counter()
    result = answered(lambda: conv.scan_animation(M6, np.ones((3, 3)), padding=100))
    assert isinstance(result, str) and str(conv.SCAN_MAX_SIDE) in result
    assert time.perf_counter() - start < 2


def test_explorer_figure_is_bounded():
    result = answered(lambda: conv.explorer_figure(DIGIT, 512, 3, 1, 512))
    assert isinstance(result, str) and "at most" in result


def test_valid_settings_still_draw():
    assert isinstance(answered(lambda: conv.scan_animation(M6, (2, 2), op="max", stride=2)), FuncAnimation)
    assert isinstance(answered(lambda: conv.explorer_figure(DIGIT, 10, 3, 2, 1, step=5)), Figure)
    assert isinstance(answered(lambda: conv.explorer_figure(DIGIT, 10, 3, 2, 1, step=10 ** 6)), Figure)
    assert isinstance(answered(lambda: conv.grad_input_figure(seed=3)), Figure)
    assert isinstance(answered(lambda: mlp.descent_view(lr=50)), Figure)      # diverges, drawn


# --------------------------------------------------------------------------- the shared helpers
@given(value=anything)
@settings(max_examples=200, deadline=None)
def test_whole_number_and_finite_number(value):
    v, msg = common.whole_number(value, "X", 0, 10)
    assert (v is None) != (msg is None)
    if v is not None:
        assert isinstance(v, int) and 0 <= v <= 10 and not isinstance(value, (bool, str))
    else:
        assert isinstance(msg, common.Message) and msg.startswith("X ")
    f, msg = common.finite_number(value, "Y", -1, 1)
    assert (f is None) != (msg is None)
    if f is not None:
        assert np.isfinite(f) and -1 <= f <= 1


# --------------------------------------------------------------------------- property tests
@SETTINGS
@given(n=anything, k=anything, s=anything, p=anything, d=anything, step=anything)
def test_explorer_figure_any_setting(n, k, s, p, d, step):
    answered(lambda: conv.explorer_figure(DIGIT, n, k, s, p, d, step))


@SETTINGS
@given(K=st.one_of(anything, st.just(np.ones((2, 2)))), b=anything, stride=anything, padding=anything,
       op=st.sampled_from(["conv", "max", "avg", "min"]))
def test_scan_animation_any_setting(K, b, stride, padding, op):
    answered(lambda: conv.scan_animation(M6, K, b, stride=stride, padding=padding, op=op))


@SETTINGS
@given(k=anything, s=anything, n=anything, seed=anything)
def test_grad_input_figure_any_setting(k, s, n, seed):
    answered(lambda: conv.grad_input_figure(k, s, n, seed))


@SETTINGS
@given(window=anything, stride=anything, bias=anything, size=anything, kc=anything)
def test_pool_feature_flip_param_figures_any_setting(window, stride, bias, size, kc):
    answered(lambda: conv.pool_figure(DIGIT, window, stride))
    answered(lambda: conv.feature_map_figure(DIGIT, "blur", bias))
    answered(lambda: conv.flip_figure(None, size))
    answered(lambda: conv.param_count_figure(kc))


@SETTINGS
@given(lr=anything, w1=anything, w2=anything, steps=anything)
def test_descent_view_any_setting(lr, w1, w2, steps):
    answered(lambda: mlp.descent_view(lr, w1, w2, steps))


@SETTINGS
@given(n_hidden=anything, temperature=anything, label=anything, max_shown=anything)
def test_mlp_views_any_setting(n_hidden, temperature, label, max_shown):
    answered(lambda: mlp.approximation_view(n_hidden))
    answered(lambda: mlp.softmax_view("2, 1, 0.1", temperature, label))
    answered(lambda: mlp.architecture_view("784-128-10", max_shown))


@pytest.fixture(scope="module")
def model():
    return seed_network(0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(pixel=st.floats(allow_nan=True, allow_infinity=True), row=st.integers(0, 27), col=st.integers(0, 27))
def test_predict_drawing_any_pixel(model, pixel, row, col):
    ink = DIGIT.copy()
    ink[row, col] = pixel
    result = answered(lambda: draw.predict_drawing(model, ink))
    if not np.isfinite(pixel):
        assert isinstance(result, str) and "NaN or infinite" in result
    elif isinstance(result, dict):
        assert np.isfinite(result["probs"]).all()
