"""Tests of cnn_lib.teaching.mlp (part I helpers): sizes and parameter counts against the layers,
the collapse of linear stacks, the hinge fit, the two costs against loops and numerical
gradients, gradient descent, and the vanishing-gradient measurement."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from cnn_lib import Sequential
from cnn_lib.teaching import mlp
from cnn_lib.gradcheck import numerical_gradient, rel_error
from cnn_lib.layers import Dense, Flatten, ReLU, Sigmoid


# --------------------------------------------------------------------------- sizes and counts
@pytest.mark.parametrize("spec, sizes", [
    ("784-128-10", (784, 128, 10)),
    (" 784, 256 ,128, 10 ", (784, 256, 128, 10)),
    ("3 2", (3, 2)),
    ([784, np.int64(10)], (784, 10)),
    ((5, 4, 3), (5, 4, 3)),
])
def test_parse_sizes_accepts_strings_and_sequences(spec, sizes):
    assert mlp.parse_sizes(spec) == sizes


@pytest.mark.parametrize("spec, match", [
    ("784", "at least an input size and an output size"),
    ("", "at least an input size and an output size"),
    ("784-abc-10", "'abc'"),
    ("784-x-10", "'x'"),
    ("784-1.5-10", "'1.5'"),
    ("784-0-10", "at least 1"),
    ([784, 2.5], "whole numbers"),
    ([784, True], "whole numbers"),
    (784, "a string like"),
])
def test_parse_sizes_explains_what_is_wrong(spec, match):
    with pytest.raises(ValueError, match=match):
        mlp.parse_sizes(spec)


def test_param_counts_of_the_book_networks():
    assert mlp.num_params("784-128-10") == 101_770
    assert mlp.num_params([784, 10]) == 7_850
    rows = mlp.param_counts("784-256-128-10")
    assert [r["weights"] for r in rows] == [784 * 256, 256 * 128, 128 * 10]
    assert [r["biases"] for r in rows] == [256, 128, 10]
    assert [r["layer"] for r in rows] == [1, 2, 3]
    assert all(r["total"] == r["weights"] + r["biases"] for r in rows)


@pytest.mark.parametrize("sizes", ["784-128-10", "784-256-128-10", "5-3-3-2", "7-1"])
def test_param_counts_match_the_layers(sizes):
    model = mlp.build_mlp(sizes)
    assert model.num_params() == mlp.num_params(sizes)
    dense = [layer for layer in model.layers.values() if isinstance(layer, Dense)]
    assert [d.num_params() for d in dense] == [r["total"] for r in mlp.param_counts(sizes)]


def test_build_mlp_structure_dtype_and_seed():
    model = mlp.build_mlp("6-5-4-3", activation="sigmoid", rng=0, dtype=np.float64, flatten=True)
    kinds = [type(layer) for layer in model.layers.values()]
    assert kinds == [Flatten, Dense, Sigmoid, Dense, Sigmoid, Dense]
    x = np.random.default_rng(1).standard_normal((2, 1, 2, 3))
    assert model.forward(x).shape == (2, 3)
    assert all(p.dtype == np.float64 for p in model.params().values())
    again = mlp.build_mlp("6-5-4-3", activation="sigmoid", rng=0, dtype=np.float64, flatten=True)
    for k, p in model.params().items():
        np.testing.assert_array_equal(p, again.params()[k])
    linear = mlp.build_mlp("6-5-3", activation=None)
    assert [type(layer) for layer in linear.layers.values()] == [Dense, Dense]
    with pytest.raises(ValueError, match="unknown activation"):
        mlp.build_mlp("6-5-3", activation="tanh")


@pytest.mark.parametrize("activation", ["relu", "sigmoid", None])
def test_build_mlp_draws_the_same_weights_as_layers_built_by_hand(activation):
    """build_mlp goes through Sequential.from_spec: the same Dense layers drawing from one
    Generator in order, as when it built them itself."""
    act = {"relu": ReLU, "sigmoid": Sigmoid, None: None}[activation]
    rng = np.random.default_rng(4)
    layers = [Flatten()]
    for l, (d, m) in enumerate([(6, 5), (5, 4), (4, 3)]):
        layers.append(Dense(d, m, rng=rng, dtype=np.float64))
        if act is not None and l < 2:
            layers.append(act())
    by_hand = Sequential(*layers)
    built = mlp.build_mlp("6-5-4-3", activation=activation, rng=4, dtype=np.float64, flatten=True)
    assert repr(built) == repr(by_hand)
    for k, p in built.params().items():
        np.testing.assert_array_equal(p, by_hand.params()[k], err_msg=k)


def test_collapse_linear_equals_the_stack():
    model = mlp.build_mlp("7-6-5-4", activation=None, rng=3, dtype=np.float64)
    for p in model.params().values():        # non-zero biases too
        p += np.random.default_rng(4).standard_normal(p.shape)
    w, b = mlp.collapse_linear(model)
    assert w.shape == (7, 4) and b.shape == (4,)
    x = np.random.default_rng(5).standard_normal((9, 7))
    assert_allclose(x @ w + b, model.forward(x), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="not linear|only a stack"):
        mlp.collapse_linear(mlp.build_mlp("7-6-4", activation="relu"))
    with pytest.raises(ValueError, match="no layers"):
        mlp.collapse_linear([])


# --------------------------------------------------------------------------- hinges
def test_fit_hinges_is_piecewise_linear_and_improves_with_width():
    x = np.linspace(-3, 3, 601)
    t = np.sin(2 * x) + 0.5 * x
    errors = []
    for K in (1, 2, 4, 8, 16, 32):
        net = mlp.fit_hinges(x, t, K)
        y = net.forward(x[:, None])[:, 0]
        assert y.shape == x.shape
        errors.append(np.max(np.abs(y - t)))
    assert all(a > b for a, b in zip(errors[1:], errors[2:]))      # better with more units
    assert errors[-1] < 0.02                                        # ~ h^2 max|t''| / 8 for h = 6/32
    # a piecewise-linear target with the same knots is fitted exactly
    knots_target = np.maximum(x + 3, 0) - 2 * np.maximum(x, 0)
    net = mlp.fit_hinges(x, knots_target, 2)
    assert_allclose(net.forward(x[:, None])[:, 0], knots_target, atol=1e-10)


def test_fit_hinges_rejects_bad_arguments():
    x = np.linspace(0, 1, 5)
    with pytest.raises(ValueError, match="at least 1"):
        mlp.fit_hinges(x, x, 0)
    with pytest.raises(ValueError, match="same length"):
        mlp.fit_hinges(x, x[:3], 2)
    with pytest.raises(ValueError, match="lo < hi"):
        mlp.fit_hinges(x, x, 2, lo=1, hi=0)


# --------------------------------------------------------------------------- line cost
@pytest.fixture
def line_data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 11)
    return x, 2 * x - 1 + 0.1 * rng.standard_normal(11)


def test_line_cost_matches_its_loop_on_a_grid(line_data):
    x, y = line_data
    W, B = np.meshgrid(np.linspace(-1, 3, 7), np.linspace(-2, 1, 5))
    grid = mlp.line_cost(W, B, x, y)
    assert grid.shape == W.shape
    loops = np.array([[mlp.line_cost_naive(w, b, x, y) for w, b in zip(rw, rb)] for rw, rb in zip(W, B)])
    assert_allclose(grid, loops, rtol=1e-12)


def test_line_cost_is_zero_only_for_a_perfect_fit():
    x = np.array([-1.0, 0.0, 2.0])
    y = 2 * x - 1
    assert mlp.line_cost(2.0, -1.0, x, y) == 0.0
    assert mlp.line_cost_naive(2.0, -1.0, x, y) == 0.0
    assert mlp.line_cost(2.1, -1.0, x, y) > 0
    # by hand: w = 0, b = 0 predicts 0 everywhere, residuals 3, 1, -3
    assert mlp.line_cost(0.0, 0.0, x, y) == pytest.approx((9 + 1 + 9) / 3)


def test_line_cost_gradient_matches_numerical(line_data):
    x, y = line_data
    p = np.array([0.3, -0.7])
    analytic = np.array(mlp.line_cost_gradient(p[0], p[1], x, y))
    numeric = numerical_gradient(lambda: mlp.line_cost(p[0], p[1], x, y), p)
    assert rel_error(analytic, numeric) < 1e-7


def test_line_cost_rejects_mismatched_data():
    with pytest.raises(ValueError, match="same non-zero length"):
        mlp.line_cost(1.0, 0.0, np.zeros(3), np.zeros(2))


# --------------------------------------------------------------------------- landscape
def test_landscape_is_non_negative_with_zero_only_at_the_origin():
    g = np.linspace(-4, 4, 401)
    W = np.stack(np.meshgrid(g, g), axis=-1)                         # (401, 401, 2)
    C = mlp.landscape_cost(W)
    assert C.shape == (401, 401)
    assert C.min() == 0.0 and mlp.landscape_cost(np.zeros(2)) == 0.0
    assert np.count_nonzero(C == 0) == 1
    assert mlp.landscape_cost(np.array([[1e-3, 0.0]]))[0] > 0


def test_landscape_gradient_matches_numerical():
    rng = np.random.default_rng(0)
    for w in rng.uniform(-3, 3, (20, 2)):
        w = w.copy()
        numeric = numerical_gradient(lambda: mlp.landscape_cost(w), w, h=1e-5)
        assert rel_error(mlp.landscape_gradient(w), numeric) < 1e-7
    batch = rng.uniform(-3, 3, (4, 3, 2))
    assert mlp.landscape_gradient(batch).shape == (4, 3, 2)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        mlp.landscape_cost(np.zeros(3))


def test_landscape_has_a_local_minimum_in_every_well():
    minima = []
    for c1, c2, _, _ in mlp.LANDSCAPE_WELLS:
        run = mlp.gradient_descent(mlp.landscape_gradient, [c1, c2], 0.05, 3000, cost=mlp.landscape_cost)
        w = run["path"][-1]
        assert np.linalg.norm(mlp.landscape_gradient(w)) < 1e-8
        assert 0 < run["costs"][-1] < 1                              # a local, not the global, minimum
        minima.append(w)
    assert len({tuple(np.round(m, 3)) for m in minima}) == len(mlp.LANDSCAPE_WELLS)


# --------------------------------------------------------------------------- gradient descent
def test_gradient_descent_on_a_quadratic_matches_the_closed_form():
    # C(w) = 0.5 * a * w^2: w_t = (1 - lr a)^t w_0
    a, lr, w0 = 2.0, 0.1, np.array([3.0])
    run = mlp.gradient_descent(lambda w: a * w, w0, lr, 10, cost=lambda w: 0.5 * a * float(w @ w))
    assert run["path"].shape == (11, 1) and run["costs"].shape == (11,) and run["steps"] == 10
    assert_allclose(run["path"][:, 0], w0[0] * (1 - lr * a) ** np.arange(11))
    assert not run["diverged"]
    assert np.all(np.diff(run["costs"]) < 0)


def test_gradient_descent_stops_when_it_diverges():
    run = mlp.gradient_descent(lambda w: 2 * w, [1.0, 1.0], 1.5, 1000, cost=lambda w: float(w @ w))
    assert run["diverged"] and run["steps"] < 1000
    assert np.linalg.norm(run["path"][-1]) > 1e3 and np.all(np.isfinite(run["costs"]))
    # on the landscape: beyond lr = 1 / beta the bowl alone makes every step longer
    run = mlp.gradient_descent(mlp.landscape_gradient, [0.5, 0.5], 1.2 / mlp.LANDSCAPE_BETA, 200)
    assert run["diverged"]
    with np.errstate(all="raise"):                                    # stopped silently, even at 1e300
        huge = mlp.gradient_descent(mlp.landscape_gradient, [0.5, 0.5], 1e300, 50, cost=mlp.landscape_cost)
    assert huge["diverged"] and huge["steps"] == 1
    zero = mlp.gradient_descent(mlp.landscape_gradient, [0.5, 0.5], 0.1, 0)
    assert zero["steps"] == 0 and zero["path"].shape == (1, 2)


def test_gradient_descent_rejects_bad_settings():
    with pytest.raises(ValueError, match="positive"):
        mlp.gradient_descent(lambda w: w, [1.0], 0.0, 5)
    with pytest.raises(ValueError, match="at least 0"):
        mlp.gradient_descent(lambda w: w, [1.0], 0.1, -1)


def test_directional_slopes_peak_along_the_gradient():
    w = np.array([0.9, -0.4])
    angles = np.linspace(-np.pi, np.pi, 721)
    slopes = mlp.directional_slopes(mlp.landscape_cost, w, angles)
    g = mlp.landscape_gradient(w)
    assert_allclose(slopes, np.cos(angles) * g[0] + np.sin(angles) * g[1], atol=1e-6)
    best = angles[np.argmax(slopes)]
    assert abs(np.angle(np.exp(1j * (best - np.arctan2(g[1], g[0]))))) <= np.pi / 720 + 1e-12
    assert slopes.max() == pytest.approx(np.linalg.norm(g), rel=1e-5)


# --------------------------------------------------------------------------- vanishing gradients
def test_layer_gradient_norms_matches_a_model_backward():
    norms = mlp.layer_gradient_norms("relu", 3, width=5, n=4, rng=0)
    assert norms["weight"].shape == (3,) and norms["input"].shape == (3,)
    # rebuild the same stack with the same random draws and compare
    rng = np.random.default_rng(0)
    dense = [Dense(5, 5, rng=rng, dtype=np.float64) for _ in range(3)]
    x = rng.standard_normal((4, 5))
    model = Sequential(dense[0], ReLU(), dense[1], ReLU(), dense[2], ReLU())
    dy = rng.standard_normal(model.forward(x).shape)
    model.backward(dy)
    expected = [np.linalg.norm(d.grads["w"]) for d in dense]
    assert_allclose(norms["weight"], expected, rtol=1e-12)
    assert_allclose(norms["spectral"], [np.linalg.svd(d.params["w"], compute_uv=False)[0] for d in dense],
                    rtol=1e-12)


def test_sigmoid_layers_shrink_the_gradient_by_at_most_spectral_norm_over_four():
    norms = mlp.layer_gradient_norms("sigmoid", 8, width=16, n=8, rng=2)
    # going back through layer l, the input gradient is (dy * sigmoid') @ W^T, with sigmoid' <= 1/4
    assert np.all(norms["input"][:-1] <= norms["spectral"][:-1] / 4 * norms["input"][1:] * (1 + 1e-12))
    assert np.all(norms["input"][:-1] < norms["input"][1:])   # and with He weights it does shrink here


def test_sigmoid_gradients_vanish_with_depth_and_relu_ones_do_not():
    sig = mlp.layer_gradient_norms("sigmoid", 20, rng=0)["weight"]
    relu = mlp.layer_gradient_norms("relu", 20, rng=0)["weight"]
    assert sig[0] / sig[-1] < 1e-6
    assert 1e-2 < relu[0] / relu[-1] < 1e2
    with pytest.raises(ValueError, match="unknown activation"):
        mlp.layer_gradient_norms("tanh", 3)
    with pytest.raises(ValueError, match="at least 1"):
        mlp.layer_gradient_norms("relu", 0)
