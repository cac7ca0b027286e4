"""Issue 12, item 1 and 10: training never goes silently non-finite. ``fit`` stops at the first
non-finite loss or update with an error naming the epoch, the step and the reason, and leaves
the model's weights exactly as they were before that step; optimizer settings and schedules are
validated. Small synthetic data and a small network keep this file fast."""

import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn_lib import Adam, SGD, Sequential, evaluate, fit
from cnn_lib.layers import Conv2D, Dense, Flatten, ReLU
from cnn_lib.model import seed_network


def small_net(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(Conv2D(1, 2, 3, rng=rng), ReLU(), Flatten(), Dense(2 * 6 * 6, 3, rng=rng))


def small_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, n)


class Recorder:
    """``log`` callback that keeps a copy of the weights after every step."""

    def __init__(self, model):
        self.model, self.states = model, [model.state_dict()]

    def __call__(self, epoch, step, loss):
        self.states.append(self.model.state_dict())


def assert_state_equal(model, state):
    for k, v in model.params().items():
        assert np.array_equal(v, state[k]), f"{k} changed"


@pytest.mark.parametrize("where", [0, 13, 23])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixel_stops_at_its_step_model_unchanged(where, value):
    x, y = small_data()
    x[where, 0, 3, 4] = value
    model = small_net()
    rec = Recorder(model)
    with pytest.raises(FloatingPointError, match=r"epoch 1.*step \d+.*(NaN|inf)") as e:
        fit(model, x, y, epochs=2, batch_size=4, seed=0, progress=False, log=rec)
    # the failing step is the one whose batch holds the bad image: the weights are those after
    # the previous step, bit for bit
    assert_state_equal(model, rec.states[-1])
    assert "input" in str(e.value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1e-3, 0.0, -math.inf, "fast", None])
def test_bad_lr_schedule_value_is_refused_at_its_epoch(bad):
    x, y = small_data()
    model = small_net()
    rec = Recorder(model)
    schedule = lambda epoch: 1e-3 if epoch < 1 else bad       # noqa: E731
    with pytest.raises((ValueError, TypeError), match=r"lr_schedule\(1\)"):
        fit(model, x, y, epochs=3, batch_size=8, progress=False, lr_schedule=schedule, log=rec)
    assert_state_equal(model, rec.states[-1])
    assert len(rec.states) == 1 + 3                          # the first epoch's three steps ran


@pytest.mark.parametrize("make", [
    lambda p: Adam(p, eps=math.nan), lambda p: Adam(p, eps=math.inf), lambda p: Adam(p, eps=0),
    lambda p: Adam(p, betas=(math.nan, 0.9)), lambda p: Adam(p, betas=(0.9, 1.0)),
    lambda p: Adam(p, lr=math.nan), lambda p: Adam(p, lr=math.inf), lambda p: Adam(p, lr=-1),
    lambda p: SGD(p, momentum=math.nan), lambda p: SGD(p, momentum=math.inf), lambda p: SGD(p, momentum=-0.1),
    lambda p: SGD(p, lr=math.nan), lambda p: Adam(p, lr="0.1"), lambda p: Adam(p, betas=0.9),
])
def test_bad_optimizer_settings_refused_by_the_constructor(make):
    with pytest.raises((ValueError, TypeError)):
        make(small_net().params())


@pytest.mark.parametrize("attr, value", [("lr", math.nan), ("lr", -1.0), ("eps", math.nan),
                                         ("betas", (0.9, math.nan)), ("momentum", math.inf)])
def test_settings_changed_after_construction_are_checked_at_use(attr, value):
    x, y = small_data()
    model = small_net()
    opt = SGD(model.params(), lr=0.01, momentum=0.5) if attr == "momentum" else Adam(model.params())
    before = model.state_dict()
    setattr(opt, attr, value)
    with pytest.raises(ValueError, match=attr.rstrip("s") if attr == "betas" else attr):
        fit(model, x, y, epochs=1, batch_size=8, optimizer=opt, progress=False)
    assert_state_equal(model, before)


def test_overflowing_update_is_caught_and_rolled_back():
    """Finite settings whose update overflows float32 (lr = 3e38): stopped at the first step,
    the weights are the initial ones."""
    x, y = small_data()
    x *= 100
    model = small_net()
    before = model.state_dict()
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 1 .*update"):
        fit(model, x, y, epochs=1, batch_size=8, optimizer=SGD(model.params(), lr=3e38), progress=False)
    assert_state_equal(model, before)


def test_diverging_training_stops_with_the_model_of_the_previous_step():
    """A learning rate far too large: the loss grows until it (or the update) is not finite;
    fit stops there, and the weights are those after the last good step."""
    x, y = small_data()
    x *= 1e3
    model = small_net()
    rec = Recorder(model)
    with pytest.raises(FloatingPointError, match=r"epoch \d+, step \d+"):
        fit(model, x, y, epochs=200, batch_size=8, optimizer=SGD(model.params(), lr=1e10), progress=False, log=rec)
    assert_state_equal(model, rec.states[-1])
    assert all(np.isfinite(v).all() for v in model.params().values())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lr=st.floats(allow_nan=True, allow_infinity=True, width=32),
       eps=st.floats(allow_nan=True, allow_infinity=True),
       momentum=st.floats(allow_nan=True, allow_infinity=True),
       pixel=st.floats(allow_nan=True, allow_infinity=True, width=32),
       use_sgd=st.booleans())
def test_property_fit_finishes_finite_or_raises_clearly(lr, eps, momentum, pixel, use_sgd):
    """Any settings: either a clear error (ValueError for settings, FloatingPointError naming the
    step), or a finite model; never NaN weights; within a time bound."""
    x, y = small_data(n=16)
    x[3, 0, 0, 0] = pixel
    model = small_net()
    start = time.perf_counter()
    try:
        opt = SGD(model.params(), lr=lr, momentum=momentum) if use_sgd else Adam(model.params(), lr=lr, eps=eps)
        fit(model, x, y, epochs=2, batch_size=4, optimizer=opt, progress=False)
    except ValueError as e:
        assert any(w in str(e) for w in ("lr", "learning rate", "eps", "momentum")), e
    except FloatingPointError as e:
        assert "epoch" in str(e) and "step" in str(e), e
    assert all(np.isfinite(v).all() for v in model.params().values())
    assert time.perf_counter() - start < 5


def test_x_val_without_y_val_is_refused_before_training():
    x, y = small_data()
    model = small_net()
    before = model.state_dict()
    with pytest.raises(ValueError, match="y_val"):
        fit(model, x, y, epochs=1, batch_size=8, x_val=x, progress=False)
    with pytest.raises(ValueError, match="x_val"):
        fit(model, x, y, epochs=1, batch_size=8, y_val=y, progress=False)
    with pytest.raises(ValueError, match="labels"):
        fit(model, x, y, epochs=1, batch_size=8, x_val=x, y_val=y[:3], progress=False)
    assert_state_equal(model, before)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "8"])
def test_evaluate_and_predict_refuse_bad_batch_sizes(batch_size):
    from cnn_lib import predict
    x, y = small_data()
    model = small_net()
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(model, x, y, batch_size=batch_size)
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, x, batch_size=batch_size)


def test_evaluate_with_zero_images_is_a_clear_error():
    model = small_net()
    with pytest.raises(ValueError, match="no examples"):
        evaluate(model, np.zeros((0, 1, 8, 8), np.float32), np.zeros(0, int))
