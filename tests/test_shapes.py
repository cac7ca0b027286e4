"""cnn_lib.shapes (integer, pair, conv_output_size) and the layer constructors: whole numbers
only, and a clear error naming the argument for anything else (issue 12, item 6)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn_lib import AvgPool2D, Conv2D, Dense, MaxPool2D, Sequential
from cnn_lib import functional as F
from cnn_lib.shapes import check_conv2d, conv_output_size, integer, pair


def test_pair_accepts_integers_and_pairs_of_integers():
    assert pair(3, "stride") == (3, 3)
    assert pair((1, 2), "stride") == (1, 2)
    assert pair([4, 0], "padding") == (4, 0)
    assert pair(np.int64(2), "stride") == (2, 2)
    assert pair(np.array([2, 3]), "stride") == (2, 3)
    assert all(type(v) is int for v in pair((np.int32(1), 2), "stride"))
    assert F.conv_output_size is conv_output_size               # re-exported for compatibility


@pytest.mark.parametrize("value", [(1.5, 2.7), (0.9, 0.9), "22", "2", True, False, 2.0, 1.5, None,
                                   (1, 2.0), (True, 1), b"22", {1: 2}, np.float64(2.0), np.array([1.5, 2.0])])
def test_pair_refuses_what_is_not_an_integer(value):
    with pytest.raises(TypeError, match="stride must be an integer or a pair of integers"):
        pair(value, "stride")


@pytest.mark.parametrize("value", [(1, 2, 3), (1,), ()])
def test_pair_refuses_sequences_of_the_wrong_length(value):
    with pytest.raises(ValueError, match="padding must be an integer or a pair"):
        pair(value, "padding")


def test_minimum():
    with pytest.raises(ValueError, match="kernel_size must be at least 1, got 0"):
        pair(0, "kernel_size", minimum=1)
    with pytest.raises(ValueError, match="padding must be at least 0"):
        pair((1, -1), "padding", minimum=0)
    assert integer(5, "out_features", minimum=1) == 5
    with pytest.raises(ValueError, match="out_features must be at least 1, got 0"):
        integer(0, "out_features", minimum=1)
    for bad in (2.7, "10", True, None, 10.0):
        with pytest.raises(TypeError, match="out_features must be an integer"):
            integer(bad, "out_features")


@pytest.mark.parametrize("make, word", [
    (lambda: Dense(2.7, 10), "in_features must be an integer"),
    (lambda: Dense(10, "5"), "out_features must be an integer"),
    (lambda: Dense(True, 5), "in_features must be an integer"),
    (lambda: Dense(0, 5), "in_features must be at least 1"),
    (lambda: Conv2D(1, 8, 0), "kernel_size must be at least 1"),
    (lambda: Conv2D(1, 8, (3, 0)), "kernel_size must be at least 1"),
    (lambda: Conv2D(1.0, 8, 3), "in_channels must be an integer"),
    (lambda: Conv2D(1, 0, 3), "out_channels must be at least 1"),
    (lambda: Conv2D(1, 8, 3, stride=(1.5, 2.7)), "stride must be an integer or a pair of integers"),
    (lambda: Conv2D(1, 8, 3, padding=(0.9, 0.9)), "padding must be an integer or a pair of integers"),
    (lambda: Conv2D(1, 8, 3, stride="22"), "stride must be an integer"),
    (lambda: Conv2D(1, 8, 3, stride=True), "stride must be an integer"),
    (lambda: Conv2D(1, 8, 3, stride=0), "stride must be at least 1"),
    (lambda: Conv2D(1, 8, 3, padding=-1), "padding must be at least 0"),
    (lambda: Conv2D(1, 8, 2.5), "kernel_size must be an integer"),
    (lambda: MaxPool2D(2.0), "kernel_size must be an integer"),
    (lambda: MaxPool2D(2, (1.5, 2)), "stride must be an integer"),
    (lambda: AvgPool2D(0), "kernel_size must be at least 1"),
    (lambda: AvgPool2D(2, 0), "stride must be at least 1"),
])
def test_layer_constructors_refuse_bad_sizes(make, word):
    with pytest.raises((TypeError, ValueError), match=word):
        make()


@pytest.mark.parametrize("call", [
    lambda x, w: F.conv2d(x, w, None, stride=(1.5, 2.7)),
    lambda x, w: F.conv2d(x, w, None, padding=(0.9, 0.9)),
    lambda x, w: F.conv2d_forward(x, w, None, stride="22"),
    lambda x, w: F.conv2d_naive(x, w, None, stride=True),
    lambda x, w: F.maxpool2d(x, 2, (1.5, 2)),
    lambda x, w: F.avgpool2d(x, 2.0),
    lambda x, w: F.im2col(x, 3, padding=0.5),
])
def test_functions_refuse_non_integer_settings(call):
    x, w = np.zeros((1, 1, 6, 6)), np.zeros((2, 1, 3, 3))
    with pytest.raises(TypeError, match="must be an integer"):
        call(x, w)


# A setting drawn from integers (some out of range) and from things that are not integers.
_scalar = st.one_of(st.integers(-3, 8), st.floats(-3, 8), st.just(float("nan")), st.booleans(),
                    st.text(max_size=3), st.none())
_setting = st.one_of(_scalar, st.tuples(_scalar, _scalar), st.lists(st.integers(-2, 6), max_size=3))


@settings(max_examples=300, deadline=2000)
@given(size=st.integers(1, 9), kernel=_setting, stride=_setting, padding=_setting)
def test_conv2d_gives_a_result_or_a_clear_error(size, kernel, stride, padding):
    """Over strides, paddings and sizes: the layer is built and its output has the predicted
    shape, or construction/forward stops with a TypeError/ValueError naming the argument."""
    x = np.random.default_rng(0).standard_normal((2, 2, size, size + 1))
    try:
        layer = Conv2D(2, 3, kernel, stride, padding, rng=0, dtype=np.float64)
        y = layer.forward(x)
    except (TypeError, ValueError) as e:
        assert any(word in str(e) for word in ("kernel", "stride", "padding", "input size")), str(e)
        return
    (KH, KW), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    assert y.shape == (2, 3, (size + 2 * ph - KH) // sh + 1, (size + 1 + 2 * pw - KW) // sw + 1)
    assert y.shape[1:] == layer.output_shape(x.shape[1:])
    np.testing.assert_allclose(y, F.conv2d_naive(x, layer.params["w"], layer.params["b"], stride, padding),
                               rtol=1e-9, atol=1e-12)
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape


@settings(max_examples=200, deadline=2000)
@given(size=st.integers(1, 9), kernel=_setting, stride=st.one_of(st.none(), _setting))
def test_pooling_gives_a_result_or_a_clear_error(size, kernel, stride):
    x = np.random.default_rng(1).standard_normal((1, 2, size, size))
    for cls, naive in ((MaxPool2D, F.maxpool2d_naive), (AvgPool2D, F.avgpool2d_naive)):
        try:
            layer = cls(kernel, stride)
            y = layer.forward(x)
        except (TypeError, ValueError) as e:
            assert any(word in str(e) for word in ("kernel", "stride", "input size")), str(e)
            continue
        np.testing.assert_allclose(y, naive(x, layer.kernel_size, layer.stride), rtol=1e-12)
        assert layer.backward(np.ones_like(y)).shape == x.shape


@settings(max_examples=200, deadline=2000)
@given(d_in=_scalar, d_out=_scalar)
def test_dense_gives_a_result_or_a_clear_error(d_in, d_out):
    try:
        layer = Dense(d_in, d_out, rng=0)
    except (TypeError, ValueError) as e:
        assert "in_features" in str(e) or "out_features" in str(e), str(e)
        return
    assert isinstance(d_in, int) and isinstance(d_out, int) and d_in >= 1 and d_out >= 1
    assert layer.forward(np.ones((2, d_in), np.float32)).shape == (2, d_out)


def test_check_conv2d_returns_the_geometry():
    x, w = np.zeros((1, 3, 28, 28)), np.zeros((8, 3, 5, 5))
    assert check_conv2d(x, w, None, 1, 0) == (1, 1, 0, 0, 24, 24)
    assert check_conv2d(x, w, np.zeros(8), (2, 1), (1, 2)) == (2, 1, 1, 2, 13, 28)


def test_from_spec_refuses_bad_sizes_naming_the_layer():
    with pytest.raises(TypeError, match=r"layer 1 of the spec, \('dense', 2.7\): out_features must be an integer"):
        Sequential.from_spec(["flatten", ("dense", 2.7)], input_shape=(4,))
    with pytest.raises(ValueError, match="kernel_size must be at least 1"):
        Sequential.from_spec([("conv", 8, 0)])
