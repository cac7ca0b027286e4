"""Tests of cnn_lib.layers: shapes, the layer contract (params/grads, cache, no in-place
changes, dtypes), values against the naive functions, and numerical gradient checks."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cnn_lib import functional as F
from cnn_lib.gradcheck import check_layer
from cnn_lib.layers import Arctan, AvgPool2D, Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU, Sigmoid

GRAD_TOL = 1e-6
STEP = 1e-5   # see tests/test_functional.py: h = 1e-6 is dominated by round-off on small entries
TOL = dict(rtol=1e-9, atol=1e-12)


def make_layers(dtype=np.float32):
    """(name, layer, input shape without batch, expected output shape without batch)."""
    return [
        ("dense", Dense(12, 5, rng=0, dtype=dtype), (12,), (5,)),
        ("conv", Conv2D(3, 4, 3, rng=0, dtype=dtype), (3, 7, 9), (4, 5, 7)),
        ("conv-s2-p1", Conv2D(2, 3, (3, 2), stride=2, padding=1, rng=0, dtype=dtype), (2, 7, 9), (3, 4, 5)),
        ("conv-pairs", Conv2D(1, 2, (2, 3), stride=(1, 2), padding=(2, 0), rng=0, dtype=dtype), (1, 6, 7), (2, 9, 3)),
        ("maxpool", MaxPool2D(2), (3, 5, 5), (3, 2, 2)),
        ("maxpool-3-1", MaxPool2D(3, 1), (2, 6, 5), (2, 4, 3)),
        ("avgpool", AvgPool2D(2), (3, 6, 7), (3, 3, 3)),
        ("avgpool-pairs", AvgPool2D((2, 3), (1, 2)), (1, 5, 8), (1, 4, 3)),
        ("relu", ReLU(), (2, 3, 4), (2, 3, 4)),
        ("sigmoid", Sigmoid(), (5,), (5,)),
        ("arctan", Arctan(), (3, 4, 2), (3, 4, 2)),
        ("flatten", Flatten(), (2, 3, 4), (24,)),
    ]


NAMES = [name for name, *_ in make_layers()]


def get(name, dtype=np.float32):
    return next(item[1:] for item in make_layers(dtype) if item[0] == name)


def inputs(shape, N=2, seed=0, dtype=np.float64):
    x = np.random.default_rng(seed).standard_normal((N,) + shape)
    x += np.sign(x) * 0.05           # away from the ReLU kink
    return x.astype(dtype)


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_and_output_shape(name):
    layer, in_shape, out_shape = get(name)
    assert layer.output_shape(in_shape) == out_shape
    for N in (1, 3):
        y = layer.forward(inputs(in_shape, N, dtype=np.float32))
        assert y.shape == (N,) + out_shape


def test_output_shape_formulas():
    conv = Conv2D(1, 8, 5)
    assert conv.output_shape((1, 28, 28)) == (8, 24, 24)
    # H_out = floor((H + 2p - k)/s) + 1 = floor((28 + 2 - 3)/2) + 1 = 14
    assert Conv2D(1, 2, 3, stride=2, padding=1).output_shape((1, 28, 28)) == (2, 14, 14)
    assert MaxPool2D(2).output_shape((8, 20, 20)) == (8, 10, 10)
    assert MaxPool2D(2).output_shape((8, 21, 21)) == (8, 10, 10)
    assert AvgPool2D(3, 2).output_shape((1, 7, 8)) == (1, 3, 3)
    assert Flatten().output_shape((8, 10, 10)) == (800,)
    with pytest.raises(ValueError, match="channels"):
        conv.output_shape((3, 28, 28))
    with pytest.raises(ValueError, match="does not fit"):
        conv.output_shape((1, 4, 4))


def test_dense_output_shape_checks_its_input():
    """Dense.output_shape should reject an input it cannot take, as Conv2D.output_shape does
    for a channel mismatch; otherwise Sequential.summary reports shapes that forward refuses."""
    with pytest.raises(ValueError):
        Dense(800, 128).output_shape((1152,))


def test_pool_stride_defaults_to_kernel_size():
    assert MaxPool2D(3).stride == (3, 3)
    assert AvgPool2D((2, 3)).stride == (2, 3)
    assert MaxPool2D(3, 1).stride == (1, 1)


def test_forward_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"\(N, 12\)"):
        Dense(12, 5).forward(np.zeros((2, 11), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 12\)"):
        Dense(12, 5).forward(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="channels"):
        Conv2D(3, 4, 3).forward(np.zeros((2, 2, 7, 7), np.float32))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        Conv2D(3, 4, 3).forward(np.zeros((3, 7, 7), np.float32))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        MaxPool2D(2).forward(np.zeros((3, 7, 7), np.float32))


# --------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("name", NAMES)
def test_backward_before_forward_raises(name):
    layer, in_shape, out_shape = get(name)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((2,) + out_shape, np.float32))
    # forward(train=False) keeps nothing for backward either
    layer.forward(inputs(in_shape, dtype=np.float32), train=False)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((2,) + out_shape, np.float32))


@pytest.mark.parametrize("name", NAMES)
def test_backward_does_not_modify_its_inputs(name):
    layer, in_shape, out_shape = get(name, np.float64)
    x = inputs(in_shape)
    dy = np.random.default_rng(1).standard_normal((2,) + out_shape)
    x_copy, dy_copy = x.copy(), dy.copy()
    params_copy = {k: v.copy() for k, v in layer.params.items()}
    y = layer.forward(x)
    y_copy = y.copy()
    dx = layer.backward(dy)
    assert_array_equal(x, x_copy)
    assert_array_equal(dy, dy_copy)
    assert_array_equal(y, y_copy)
    for k, v in layer.params.items():
        assert_array_equal(v, params_copy[k])
    assert dx.shape == x.shape


@pytest.mark.parametrize("name", NAMES)
def test_params_and_grads_keys_and_shapes(name):
    layer, in_shape, out_shape = get(name)
    expected = {
        "dense": {"w": (12, 5), "b": (5,)},
        "conv": {"w": (4, 3, 3, 3), "b": (4,)},
        "conv-s2-p1": {"w": (3, 2, 3, 2), "b": (3,)},
        "conv-pairs": {"w": (2, 1, 2, 3), "b": (2,)},
    }.get(name, {})
    assert {k: v.shape for k, v in layer.params.items()} == expected
    assert layer.num_params() == sum(int(np.prod(s)) for s in expected.values())
    assert isinstance(layer, Layer)
    layer.forward(inputs(in_shape, dtype=np.float32))
    layer.backward(np.ones((2,) + out_shape, np.float32))
    assert {k: v.shape for k, v in layer.grads.items()} == expected


@pytest.mark.parametrize("name", NAMES)
def test_float32_in_float32_out(name):
    layer, in_shape, out_shape = get(name, np.float32)
    x = inputs(in_shape, dtype=np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    dx = layer.backward(np.ones(y.shape, np.float32))
    assert dx.dtype == np.float32
    for k, g in layer.grads.items():
        assert g.dtype == np.float32, k
    for k, p in layer.params.items():
        assert p.dtype == np.float32, k


@pytest.mark.parametrize("name", ["dense", "conv", "conv-s2-p1", "maxpool", "relu", "flatten"])
def test_need_dx_false(name):
    layer, in_shape, out_shape = get(name, np.float64)
    x = inputs(in_shape)
    dy = np.random.default_rng(2).standard_normal((2,) + out_shape)
    layer.forward(x)
    dx = layer.backward(dy)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    layer.forward(x)
    assert layer.backward(dy, need_dx=False) is None
    for k, g in layer.grads.items():
        assert_array_equal(g, grads[k])
    assert dx is not None


# --------------------------------------------------------------------------- values
def test_dense_layer_matches_naive():
    layer = Dense(6, 4, rng=3, dtype=np.float64)
    layer.params["b"][:] = np.arange(4.0)
    x = inputs((6,), N=3)
    dy = np.random.default_rng(4).standard_normal((3, 4))
    assert_allclose(layer.forward(x), F.dense_naive(x, layer.params["w"], layer.params["b"]), **TOL)
    dx = layer.backward(dy)
    ndx, ndw, ndb = F.dense_backward_naive(dy, x, layer.params["w"])
    assert_allclose(dx, ndx, **TOL)
    assert_allclose(layer.grads["w"], ndw, **TOL)
    assert_allclose(layer.grads["b"], ndb, **TOL)


@pytest.mark.parametrize("N", [2, 20])          # 20: more than one chunk of the fast convolution
@pytest.mark.parametrize("kernel_size, stride, padding", [(3, 1, 0), ((3, 2), 2, 1), (2, (1, 2), (2, 0))])
def test_conv_layer_matches_naive(kernel_size, stride, padding, N):
    layer = Conv2D(2, 3, kernel_size, stride, padding, rng=5, dtype=np.float64)
    layer.params["b"][:] = [0.5, -1.0, 2.0]
    x = inputs((2, 7, 6), N=N)
    y = layer.forward(x)
    w, b = layer.params["w"], layer.params["b"]
    assert_allclose(y, F.conv2d_naive(x, w, b, stride, padding), **TOL)
    dy = np.random.default_rng(6).standard_normal(y.shape)
    dx = layer.backward(dy)
    ndx, ndw, ndb = F.conv2d_backward_naive(dy, x, w, stride, padding)
    assert_allclose(dx, ndx, **TOL)
    assert_allclose(layer.grads["w"], ndw, **TOL)
    assert_allclose(layer.grads["b"], ndb, **TOL)
    assert layer.backward(dy, need_dx=False) is None
    assert_allclose(layer.grads["w"], ndw, **TOL)


@pytest.mark.parametrize("layer, fwd, bwd", [
    (MaxPool2D(2), F.maxpool2d_naive, F.maxpool2d_backward_naive),
    (MaxPool2D(3, 2), F.maxpool2d_naive, F.maxpool2d_backward_naive),
    (AvgPool2D((2, 3), (1, 2)), F.avgpool2d_naive, F.avgpool2d_backward_naive),
], ids=repr)
def test_pool_layers_match_naive(layer, fwd, bwd):
    x = inputs((2, 7, 8))
    y = layer.forward(x)
    assert_allclose(y, fwd(x, layer.kernel_size, layer.stride), **TOL)
    dy = np.random.default_rng(7).standard_normal(y.shape)
    assert_allclose(layer.backward(dy), bwd(dy, x, layer.kernel_size, layer.stride), **TOL)


@pytest.mark.parametrize("layer, fwd, bwd", [
    (ReLU(), F.relu_naive, F.relu_backward_naive),
    (Sigmoid(), F.sigmoid_naive, F.sigmoid_backward_naive),
    (Arctan(), F.arctan_naive, F.arctan_backward_naive),
], ids=repr)
def test_activation_layers_match_naive(layer, fwd, bwd):
    x = 2 * inputs((3, 4))
    dy = np.random.default_rng(8).standard_normal(x.shape)
    assert_allclose(layer.forward(x), fwd(x), **TOL)
    assert_allclose(layer.backward(dy), bwd(dy, x), **TOL)


def test_flatten_is_c_order_and_backward_restores_shape():
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    layer = Flatten()
    y = layer.forward(x)
    assert_array_equal(y[1], np.arange(12.0, 24.0))
    assert_array_equal(layer.backward(y * 2), x * 2)


def test_initialisation_is_seeded_he_normal():
    a, b = Dense(1000, 200, rng=0), Dense(1000, 200, rng=0)
    assert_array_equal(a.params["w"], b.params["w"])
    assert not np.array_equal(a.params["w"], Dense(1000, 200, rng=1).params["w"])
    assert_array_equal(a.params["b"], np.zeros(200))
    assert np.std(a.params["w"]) == pytest.approx(np.sqrt(2 / 1000), rel=0.02)
    assert abs(np.mean(a.params["w"])) < 5e-4          # std of the mean: 0.045 / sqrt(200000) = 1e-4
    conv = Conv2D(8, 64, 5, rng=np.random.default_rng(0))
    assert np.std(conv.params["w"]) == pytest.approx(np.sqrt(2 / (8 * 25)), rel=0.02)
    assert_array_equal(conv.params["b"], np.zeros(64))


def test_repr():
    assert repr(Dense(800, 128)) == "Dense(800, 128)"
    assert repr(Conv2D(1, 8, 5)) == "Conv2D(1, 8, kernel_size=5)"
    assert repr(Conv2D(1, 8, 3, stride=2, padding=1)) == "Conv2D(1, 8, kernel_size=3, stride=2, padding=1)"
    assert repr(MaxPool2D(2)) == "MaxPool2D(kernel_size=2, stride=2)"


# --------------------------------------------------------------------------- numerical gradients
@pytest.mark.parametrize("name, layer, in_shape", [
    ("dense", Dense(7, 4, rng=1, dtype=np.float64), (7,)),
    ("conv", Conv2D(2, 3, 3, rng=1, dtype=np.float64), (2, 6, 7)),
    ("conv-s2-p1", Conv2D(2, 3, 3, stride=2, padding=1, rng=1, dtype=np.float64), (2, 7, 8)),
    ("conv-pairs", Conv2D(3, 2, (3, 2), stride=(2, 1), padding=(1, 2), rng=1, dtype=np.float64), (3, 6, 5)),
    ("maxpool", MaxPool2D(2), (2, 5, 6)),
    ("maxpool-overlap", MaxPool2D(3, 1), (2, 5, 6)),
    ("avgpool", AvgPool2D(2), (2, 5, 6)),
    ("avgpool-overlap", AvgPool2D((3, 2), (1, 2)), (2, 5, 6)),
    ("relu", ReLU(), (3, 4, 5)),
    ("sigmoid", Sigmoid(), (3, 4, 5)),
    ("arctan", Arctan(), (3, 4, 5)),
    ("flatten", Flatten(), (3, 4, 5)),
])
def test_layer_gradcheck(name, layer, in_shape):
    # give the biases non-zero values so that their gradient is checked at a generic point
    for p in layer.params.values():
        if p.ndim == 1:
            p[:] = np.random.default_rng(2).standard_normal(p.shape)
    x = inputs(in_shape, N=2, seed=3)
    errors = check_layer(layer, x, rng=0, h=STEP)
    assert set(errors) == {"x"} | set(layer.params)
    assert max(errors.values()) < GRAD_TOL, errors


# --------------------------------------------------------------------------- dropout
from cnn_lib.layers import Dropout  # noqa: E402  (kept with its tests)
from cnn_lib.gradcheck import numerical_gradient, rel_error  # noqa: E402
from cnn_lib.model import Sequential  # noqa: E402


def test_dropout_is_the_identity_in_evaluation():
    layer = Dropout(0.5, rng=0)
    x = inputs((3, 4), N=5, dtype=np.float32)
    assert layer.forward(x, train=False) is x
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones_like(x))


def test_dropout_layer_uses_functional_and_a_fresh_seeded_mask():
    x = inputs((6, 7), N=4, dtype=np.float32)
    layer = Dropout(0.3, rng=5)
    reference = np.random.default_rng(5)
    masks = []
    for _ in range(3):
        y = layer.forward(x, train=True)
        y_ref, mask_ref = F.dropout_forward(x, 0.3, reference)
        assert_array_equal(y, y_ref)
        dy = inputs((6, 7), N=4, seed=1, dtype=np.float32)
        assert_array_equal(layer.backward(dy), dy * mask_ref)
        assert layer.backward(dy, need_dx=False) is None
        masks.append(mask_ref)
    assert not np.array_equal(masks[0], masks[1])          # a new mask at every training forward
    # the same seed gives the same masks: reproducible
    again = Dropout(0.3, rng=5)
    assert_array_equal(again.forward(x), F.dropout_forward(x, 0.3, np.random.default_rng(5))[0])
    assert layer.params == {} and layer.num_params() == 0
    assert repr(layer) == "Dropout(p=0.3)"


def test_dropout_layer_gradcheck_with_a_fixed_mask():
    # the mask is fixed by re-seeding the layer's generator before each forward
    x = inputs((3, 4, 5), N=2, seed=3)                       # float64
    layer = Dropout(0.5)
    r = np.random.default_rng(0).standard_normal(x.shape)

    def loss():
        layer.rng = np.random.default_rng(42)
        return np.sum(layer.forward(x, train=True) * r)

    loss()
    dx = layer.backward(r)
    assert 0 < np.count_nonzero(dx) < dx.size
    error = rel_error(dx, numerical_gradient(loss, x, h=STEP))
    assert error < GRAD_TOL, error


def test_dropout_layer_expectation():
    # averaged over many masks the training output is x (E[y] = x); see the functional test
    x = inputs((10,), N=4)
    layer = Dropout(0.5, rng=1)
    T = 4000
    mean = sum(layer.forward(x) for _ in range(T)) / T
    # y / x is 0 or 2: mean 1, variance p / (1 - p) = 1, so the mean over T masks has standard
    # deviation 1 / sqrt(T); without the 1 / (1 - p) scaling it would be 0.5 x, 30 of them away
    assert np.max(np.abs(mean / x - 1)) < 5 / np.sqrt(T)


@pytest.mark.parametrize("p", [-0.5, 1, 2.0, float("nan")])
def test_dropout_layer_validates_p(p):
    with pytest.raises(ValueError, match="0 <= p < 1"):
        Dropout(p)
    with pytest.raises(TypeError):
        Dropout("half")


def test_sequential_names_dropout_layers():
    model = Sequential(Dense(4, 3, rng=0), Dropout(0.5, rng=0), ReLU(), Dropout(0.2, rng=1), Dense(3, 2, rng=0))
    assert list(model.layers) == ["dense1", "dropout1", "relu1", "dropout2", "dense2"]
    x = inputs((4,), N=5)
    assert_array_equal(model.forward(x, train=False), model.forward(x, train=False))


def test_replica_shares_the_parameters_not_the_cache_or_gradients():
    layer = Conv2D(1, 2, 3, rng=0)
    x = np.random.default_rng(1).standard_normal((2, 1, 5, 5)).astype(np.float32)
    dy = np.ones((2, 2, 3, 3), np.float32)
    layer.forward(x)
    layer.backward(dy)
    twin = layer.replica()
    assert type(twin) is Conv2D and twin is not layer
    assert twin.params is layer.params and twin.params["w"] is layer.params["w"]
    assert twin.stride == layer.stride and twin.padding == layer.padding
    assert twin.grads == {} and layer.grads                  # its own gradients, none yet
    with pytest.raises(RuntimeError, match="before forward"):
        twin.backward(dy)                                     # its own cache, empty
    before = {k: g.copy() for k, g in layer.grads.items()}
    twin.forward(2 * x)
    twin.backward(dy)
    for k, g in layer.grads.items():                          # the original's gradients are untouched
        assert_array_equal(g, before[k])
    assert not np.array_equal(twin.grads["w"], layer.grads["w"])   # the replica's own, for its input
    layer.clear_cache()
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(dy)
    twin.backward(dy)                                         # the replica's cache is its own
