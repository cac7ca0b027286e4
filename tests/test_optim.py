"""Tests of cnn_lib.optim: SGD (with and without momentum) and Adam against updates
worked out with scalars, state kept across steps, and argument checks."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cnn_lib.optim import SGD, Adam

P0 = [1.0, -2.0]
G1 = [0.5, -1.0]
G2 = [-0.2, 0.4]


def adam_scalar(p, grads, lr, b1, b2, eps):
    """Kingma & Ba, Algorithm 1, on one scalar parameter; returns the parameter after each step."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(p)
    return out


# --------------------------------------------------------------------------- Adam
def test_adam_two_steps_by_hand():
    p = np.array(P0)
    opt = Adam({"p": p}, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    ref = [adam_scalar(P0[i], [G1[i], G2[i]], 0.1, 0.9, 0.999, 1e-8) for i in range(2)]
    opt.step({"p": np.array(G1)})
    # first step: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps) = lr * sign(g)
    assert_allclose(p, [0.9, -1.9], rtol=0, atol=1e-7)
    assert_allclose(p, [ref[0][0], ref[1][0]], rtol=0, atol=1e-7)
    opt.step({"p": np.array(G2)})
    assert_allclose(p, [ref[0][1], ref[1][1]], rtol=0, atol=1e-7)
    # element 0 written out: m = .9*.05 + .1*(-.2) = .025, v = .999*.00025 + .001*.04 = .00028975,
    # p = 0.9 - 0.1 * (.025/.19) / sqrt(.00028975/(1 - .999**2))
    assert p[0] == pytest.approx(0.9 - 0.1 * (0.025 / 0.19) / math.sqrt(0.00028975 / (1 - 0.999 ** 2)), abs=1e-7)
    assert abs(p[0] - 0.9) > 0.01             # the second step did move it


def moments(opt, name):
    """Adam's first and second moments of one parameter (``opt.moments()`` by name)."""
    return opt.moments()[name]


def test_adam_moments_persist_across_steps():
    p = np.array(P0)
    opt = Adam({"p": p, "q": np.zeros((2, 2))}, lr=0.1)
    m0, v0 = moments(opt, "p")
    assert m0.shape == v0.shape == (2,)
    assert_array_equal(m0, 0)
    assert_array_equal(v0, 0)
    opt.step({"p": np.array(G1), "q": np.ones((2, 2))})
    opt.step({"p": np.array(G2), "q": np.ones((2, 2))})
    assert opt.t == 2
    g1, g2 = np.array(G1), np.array(G2)
    m, v = moments(opt, "p")
    # the two steps' gradients both appear: state was kept, not re-created at every step
    assert_allclose(m, 0.9 * 0.1 * g1 + 0.1 * g2, rtol=1e-12)
    assert_allclose(v, 0.999 * 0.001 * g1 ** 2 + 0.001 * g2 ** 2, rtol=1e-12)
    assert np.all(m != 0) and np.all(v != 0)
    mq, vq = moments(opt, "q")
    assert mq.shape == (2, 2)
    assert_allclose(mq, 0.9 * 0.1 + 0.1, rtol=1e-12)          # 0.19 = 1 - 0.9^2
    assert_allclose(vq, 0.999 * 0.001 + 0.001, rtol=1e-12)


def test_adam_random_arrays_against_reference():
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    ref = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in ref.items()}
    v2 = {k: np.zeros_like(v) for k, v in ref.items()}
    lr, (b1, b2), eps = 3e-3, (0.8, 0.99), 1e-6
    opt = Adam(params, lr=lr, betas=(b1, b2), eps=eps)
    for t in range(1, 6):
        grads = {k: rng.standard_normal(v.shape) * 10 ** rng.uniform(-4, 1) for k, v in ref.items()}
        opt.step(grads)
        for k in ref:
            m[k] = b1 * m[k] + (1 - b1) * grads[k]
            v2[k] = b2 * v2[k] + (1 - b2) * grads[k] ** 2
            ref[k] -= lr * (m[k] / (1 - b1 ** t)) / (np.sqrt(v2[k] / (1 - b2 ** t)) + eps)
        for k in ref:
            assert_allclose(params[k], ref[k], rtol=1e-12, atol=1e-13, err_msg=f"{k} at step {t}")


def test_adam_keeps_float32_and_updates_in_place():
    p = np.ones(5, np.float32)
    opt = Adam({"p": p}, lr=0.01)
    opt.step({"p": np.full(5, 2.0, np.float32)})
    assert opt.params["p"] is p
    assert p.dtype == np.float32 and moments(opt, "p")[0].dtype == np.float32
    assert_allclose(p, 0.99, rtol=1e-6)


# --------------------------------------------------------------------------- SGD
def test_sgd_by_hand():
    p = np.array(P0)
    opt = SGD({"p": p}, lr=0.1)
    opt.step({"p": np.array(G1)})
    assert_allclose(p, [0.95, -1.9], rtol=0, atol=1e-15)        # p - 0.1 * g1
    opt.step({"p": np.array(G2)})
    assert_allclose(p, [0.97, -1.94], rtol=0, atol=1e-15)       # p - 0.1 * g2


def test_sgd_momentum_by_hand():
    p = np.array(P0)
    opt = SGD({"p": p}, lr=0.1, momentum=0.9)
    opt.step({"p": np.array(G1)})                 # v = g1
    assert_allclose(p, [0.95, -1.9], rtol=0, atol=1e-15)
    opt.step({"p": np.array(G2)})                 # v = 0.9 * [0.5, -1] + [-0.2, 0.4] = [0.25, -0.5]
    assert_allclose(opt.velocity["p"], [0.25, -0.5], rtol=0, atol=1e-15)
    assert_allclose(p, [0.925, -1.85], rtol=0, atol=1e-15)


def test_sgd_does_not_modify_the_gradients():
    p = np.zeros(2)
    g = np.array(G1)
    opt = SGD({"p": p}, lr=0.1, momentum=0.5)
    opt.step({"p": g})
    opt.step({"p": g})
    assert_array_equal(g, G1)


# --------------------------------------------------------------------------- argument checks
@pytest.mark.parametrize("make", [
    lambda p: SGD(p, lr=0), lambda p: SGD(p, lr=-0.1), lambda p: Adam(p, lr=0), lambda p: Adam(p, lr=-1e-3),
    lambda p: SGD(p, lr=0.1, momentum=1.0), lambda p: SGD(p, lr=0.1, momentum=-0.1),
    lambda p: Adam(p, betas=(1.0, 0.999)), lambda p: Adam(p, betas=(0.9, 1.0)),
    lambda p: Adam(p, betas=(-0.1, 0.999)), lambda p: Adam(p, betas=(0.9,)),
    lambda p: Adam(p, eps=0), lambda p: Adam(p, eps=-1e-8),
])
def test_invalid_hyperparameters_raise(make):
    with pytest.raises(ValueError):
        make({"p": np.zeros(2)})


@pytest.mark.parametrize("cls", [SGD, Adam])
@pytest.mark.parametrize("lr", [float("nan"), float("inf")])
def test_non_finite_learning_rate_raises(cls, lr):
    """``lr <= 0`` is checked, but NaN passes that test and would turn every weight into NaN."""
    with pytest.raises(ValueError, match="learning rate"):
        cls({"p": np.zeros(2)}, lr=lr)


def test_learning_rate_messages():
    with pytest.raises(ValueError, match="learning rate"):
        Adam({"p": np.zeros(2)}, lr=0)
    with pytest.raises(ValueError, match="betas"):
        Adam({"p": np.zeros(2)}, betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="momentum"):
        SGD({"p": np.zeros(2)}, momentum=2)


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_mismatched_gradient_keys_raise(cls):
    params = {"a.w": np.zeros(2), "a.b": np.zeros(1)}
    opt = cls(params, lr=0.1)
    with pytest.raises(ValueError, match="a.b"):
        opt.step({"a.w": np.ones(2)})
    with pytest.raises(ValueError, match="extra"):
        opt.step({"a.w": np.ones(2), "a.b": np.ones(1), "extra": np.ones(1)})
    assert_array_equal(params["a.w"], [0.0, 0.0])              # nothing was updated


@pytest.mark.parametrize("cls", [SGD, Adam])
@pytest.mark.parametrize("p_shape, g_shape", [((3,), (1,)), ((2, 3), (3, 2))])
def test_gradient_of_the_wrong_shape_raises(cls, p_shape, g_shape):
    """A gradient whose shape differs from its parameter's (broadcastable, or the same size,
    e.g. transposed) must not be applied silently."""
    params = {"w": np.zeros(p_shape)}
    opt = cls(params, lr=0.1)
    with pytest.raises(ValueError):
        opt.step({"w": np.arange(1.0, 1.0 + np.prod(g_shape)).reshape(g_shape)})


# --------------------------------------------------------------------------- weight decay (L2)
from cnn_lib.gradcheck import numerical_gradient  # noqa: E402  (kept with its tests)


def _quadratic_problem(seed=0):
    """A loss L(w, b) = 1/2 ||X w + b - t||^2 / N with its analytic gradient, and the
    regularized objective L + λ/2 (||w||^2 + ||b||^2) written out for numerical differentiation."""
    rng = np.random.default_rng(seed)
    X, t = rng.standard_normal((6, 4)), rng.standard_normal(6)
    params = {"w": rng.standard_normal(4), "b": rng.standard_normal(1)}

    def loss_grad(p):
        r = X @ p["w"] + p["b"] - t
        return {"w": X.T @ r / len(t), "b": np.array([r.sum() / len(t)])}

    def objective(p, lam):
        r = X @ p["w"] + p["b"] - t
        return 0.5 * r @ r / len(t) + lam / 2 * (p["w"] @ p["w"] + p["b"] @ p["b"])

    return params, loss_grad, objective


@pytest.mark.parametrize("make", [
    lambda p, wd: SGD(p, lr=0.1, weight_decay=wd),
    lambda p, wd: SGD(p, lr=0.1, momentum=0.9, weight_decay=wd),
    lambda p, wd: Adam(p, lr=0.05, weight_decay=wd),
    lambda p, wd: Adam(p, lr=0.05, betas=(0.5, 0.9), eps=1e-6, weight_decay=wd),
], ids=["sgd", "sgd-momentum", "adam", "adam-betas"])
def test_weight_decay_is_the_gradient_of_the_l2_penalty(make):
    """Steps with weight_decay=λ on the loss's gradient equal plain steps on the gradient of
    loss + λ/2 ||p||^2, the latter obtained by central differences (independently of λ p)."""
    lam = 0.3
    params, loss_grad, objective = _quadratic_problem()
    decayed = {k: v.copy() for k, v in params.items()}
    plain = {k: v.copy() for k, v in params.items()}
    opt_decayed, opt_plain = make(decayed, lam), make(plain, 0.0)
    for _ in range(5):
        g = loss_grad(decayed)
        g_copy = {k: v.copy() for k, v in g.items()}
        opt_decayed.step(g)
        for k in g:
            assert_array_equal(g[k], g_copy[k])          # the caller's gradients are not changed
        g_total = {k: numerical_gradient(lambda: objective(plain, lam), plain[k]) for k in plain}
        opt_plain.step(g_total)
        for k in params:
            assert_allclose(decayed[k], plain[k], rtol=1e-7, atol=1e-9)
    assert not np.allclose(decayed["w"], params["w"])     # the parameters did move
    # and the decay made a difference: without it the same steps end elsewhere
    no_decay = {k: v.copy() for k, v in params.items()}
    opt = make(no_decay, 0.0)
    for _ in range(5):
        opt.step(loss_grad(no_decay))
    assert np.max(np.abs(no_decay["w"] - decayed["w"])) > 1e-3


def test_sgd_weight_decay_by_hand():
    p = np.array([2.0, -1.0], dtype=np.float32)
    SGD({"p": p}, lr=0.5, weight_decay=0.1).step({"p": np.array([1.0, 0.0], dtype=np.float32)})
    # p - lr (g + λ p) = [2 - 0.5 (1 + 0.2), -1 - 0.5 (0 - 0.1)]
    assert_allclose(p, [1.4, -0.95], rtol=1e-6)
    assert p.dtype == np.float32


def test_weight_decay_alone_shrinks_parameters_geometrically():
    # with a zero loss gradient SGD's decay is p <- (1 - lr λ) p
    p = np.array([1.0, -3.0])
    opt = SGD({"p": p}, lr=0.1, weight_decay=0.5)
    for _ in range(4):
        opt.step({"p": np.zeros(2)})
    assert_allclose(p, np.array([1.0, -3.0]) * 0.95 ** 4, rtol=1e-12)


def test_adam_keeps_float32_with_weight_decay():
    p = np.ones(3, dtype=np.float32)
    opt = Adam({"p": p}, weight_decay=1e-2)
    opt.step({"p": np.full(3, 0.5, dtype=np.float32)})
    assert p.dtype == np.float32 and opt.weight_decay == 1e-2


@pytest.mark.parametrize("cls", [SGD, Adam])
@pytest.mark.parametrize("bad, error", [(-1e-4, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                                         ("0.1", TypeError), (None, TypeError), (True, TypeError)])
def test_invalid_weight_decay_raises(cls, bad, error):
    with pytest.raises(error, match="weight_decay"):
        cls({"p": np.zeros(2)}, lr=0.1, weight_decay=bad)


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_weight_decay_with_mismatched_gradients_still_raises(cls):
    opt = cls({"w": np.zeros(3)}, lr=0.1, weight_decay=0.1)
    with pytest.raises(ValueError):
        opt.step({"w": np.ones(2)})
    with pytest.raises(ValueError):
        opt.step({"v": np.ones(3)})


def test_adam_in_place_float32_matches_the_equations_in_float64():
    """The in-place step (one work array per parameter) against the paper's equations written
    with temporaries, in float64, over many steps of float32 parameters of a realistic size."""
    rng = np.random.default_rng(3)
    p32 = {"w": rng.standard_normal((300, 200)).astype(np.float32), "b": np.zeros(200, np.float32)}
    ref = {k: v.astype(np.float64) for k, v in p32.items()}
    m = {k: np.zeros_like(v) for k, v in ref.items()}
    v2 = {k: np.zeros_like(v) for k, v in ref.items()}
    opt = Adam(p32, lr=1e-3)
    for t in range(1, 21):
        grads = {k: (rng.standard_normal(v.shape) * 1e-2).astype(np.float32) for k, v in ref.items()}
        opt.step(grads)
        for k in ref:
            g = grads[k].astype(np.float64)
            m[k] = 0.9 * m[k] + 0.1 * g
            v2[k] = 0.999 * v2[k] + 0.001 * g ** 2
            ref[k] -= 1e-3 * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v2[k] / (1 - 0.999 ** t)) + 1e-8)
    for k in ref:
        assert p32[k].dtype == np.float32
        assert_allclose(p32[k], ref[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert np.abs(p32["b"]).max() > 1e-3          # the parameters did move
