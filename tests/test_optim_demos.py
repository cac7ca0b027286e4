"""Tests of cnn_lib.teaching.optim_demos (the chapter "Minibatch SGD, momentum and Adam"): the
valley against numerical gradients and closed-form rates, optimizer paths against independent
loops, the gradient-noise measurement against an exact enumeration, the moving average against
its closed form, and the momentum explorer with valid and invalid settings."""

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose

from cnn_lib import SGD, Adam, Sequential
from cnn_lib.gradcheck import numerical_gradient, rel_error
from cnn_lib.layers import Dense, ReLU
from cnn_lib.losses import softmax_cross_entropy
from cnn_lib.teaching import mlp
from cnn_lib.teaching import optim_demos as od

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402


# --------------------------------------------------------------------------- the valley
def test_valley_gradient_matches_central_differences():
    rng = np.random.default_rng(0)
    for _ in range(10):
        w = rng.uniform(-3, 3, size=2)
        num = numerical_gradient(lambda: od.valley_cost(w), w)
        assert rel_error(od.valley_gradient(w), num) < 1e-8
    assert od.valley_cost(np.zeros(2)) == 0.0
    assert od.valley_cost(np.zeros((4, 3, 2))).shape == (4, 3)


@pytest.mark.parametrize("bad", [(1.0,), (1.0, -2.0), (0.0, 1.0), (1.0, np.inf)])
def test_valley_rejects_bad_curvatures(bad):
    with pytest.raises(ValueError, match="curvatures"):
        od.valley_cost(np.zeros(2), bad)


def test_valley_rejects_bad_points():
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        od.valley_gradient(np.zeros(3))


def test_optimizer_path_with_plain_sgd_is_gradient_descent():
    run = od.optimizer_path(lambda p: SGD(p, lr=0.05), od.valley_gradient, od.VALLEY_START, 40)
    ref = mlp.gradient_descent(od.valley_gradient, od.VALLEY_START, 0.05, 40)
    assert run["steps"] == 40 and not run["diverged"]
    assert_allclose(run["path"], ref["path"], rtol=0, atol=1e-14)


def test_optimizer_path_with_momentum_is_the_heavy_ball():
    """SGD's v <- beta v + g, w <- w - lr v is Polyak's w_{t+1} = w_t - lr g_t + beta (w_t - w_{t-1})."""
    lr, beta = 0.03, 0.8
    run = od.optimizer_path(lambda p: SGD(p, lr=lr, momentum=beta), od.valley_gradient, od.VALLEY_START, 50)
    prev = w = np.array(od.VALLEY_START)
    ref = [w]
    for _ in range(50):
        w, prev = w - lr * od.valley_gradient(w) + beta * (w - prev), w
        ref.append(w)
    assert_allclose(run["path"], np.array(ref), rtol=0, atol=1e-12)


def test_optimizer_path_stops_a_divergent_run():
    limit = od.valley_rates()["gd_limit"]
    bad = od.optimizer_path(lambda p: SGD(p, lr=1.05 * limit), od.valley_gradient, od.VALLEY_START, 2000)
    good = od.optimizer_path(lambda p: SGD(p, lr=0.95 * limit), od.valley_gradient, od.VALLEY_START, 2000)
    assert bad["diverged"] and bad["steps"] < 2000 and np.max(np.abs(bad["path"][-1])) > 1e3
    assert not good["diverged"] and np.linalg.norm(good["path"][-1]) < 1e-6
    with pytest.raises(ValueError, match="steps"):
        od.optimizer_path(lambda p: SGD(p, lr=0.1), od.valley_gradient, od.VALLEY_START, -1)
    with pytest.raises(ValueError, match="vector"):
        od.optimizer_path(lambda p: SGD(p, lr=0.1), od.valley_gradient, [[1.0, 2.0]], 3)


def _factor(path, a=100, b=150):
    d = np.linalg.norm(path, axis=1)
    return (d[b] / d[a]) ** (1 / (b - a))


def test_valley_rates_are_the_measured_contraction_factors():
    r = od.valley_rates((1.0, 25.0))
    assert r["kappa"] == 25.0 and r["gd_factor"] == pytest.approx(24 / 26) and r["hb_factor"] == pytest.approx(4 / 6)
    gd = od.optimizer_path(lambda p: SGD(p, lr=r["gd_lr"]), od.valley_gradient, od.VALLEY_START, 200)
    hb = od.optimizer_path(lambda p: SGD(p, lr=r["hb_lr"], momentum=r["hb_momentum"]), od.valley_gradient,
                           od.VALLEY_START, 200)
    assert _factor(gd["path"]) == pytest.approx(r["gd_factor"], rel=1e-6)
    # at the optimum the heavy ball's two eigenvalues coincide: factor t * rho^t, so the rate is approached slowly
    assert _factor(hb["path"], 100, 150) == pytest.approx(r["hb_factor"], rel=0.02)
    assert od.steps_to_reach(hb["path"], 1e-3) < od.steps_to_reach(gd["path"], 1e-3) / 2


def test_steps_to_reach():
    path = np.array([[3.0, 0.0], [0.5, 0.0], [2.0, 0.0], [0.1, 0.0], [0.05, 0.0]])
    assert od.steps_to_reach(path, 1.0) == 3          # the visit at step 1 does not count: it leaves again
    assert od.steps_to_reach(path, 10.0) == 0
    assert od.steps_to_reach(path, 0.01) is None
    assert od.steps_to_reach(path, 1.0, target=[3.0, 0.0]) is None
    with pytest.raises(ValueError, match="tol"):
        od.steps_to_reach(path, 0.0)


# --------------------------------------------------------------------------- gradient noise
def _tiny_model(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(Dense(6, 5, rng=rng, dtype=np.float64), ReLU(), Dense(5, 3, rng=rng, dtype=np.float64))


def _tiny_data(n=12, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)), rng.integers(0, 3, size=n)


def test_flat_gradient_is_the_mean_of_per_example_gradients_and_matches_numerical_gradients():
    model, (x, y) = _tiny_model(), _tiny_data()
    g, loss = od.flat_gradient(model, x, y)
    per_example = np.mean([od.flat_gradient(model, x[i:i + 1], y[i:i + 1])[0] for i in range(len(x))], axis=0)
    assert_allclose(g, per_example, rtol=1e-12, atol=1e-14)
    params = model.params()
    numeric = np.concatenate([
        numerical_gradient(lambda: softmax_cross_entropy(model.forward(x), y)[0], p).reshape(-1)
        for p in params.values()])
    assert rel_error(g, numeric) < 1e-7
    assert loss == pytest.approx(softmax_cross_entropy(model.forward(x), y)[0])
    with pytest.raises(ValueError, match="labels"):
        od.flat_gradient(model, x[:3], y[:2])


def test_predicted_noise_is_exact_for_sampling_without_replacement():
    """Average ||mean of B vectors - mean of all||^2 over every subset of size B: the formula, exactly."""
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((7, 4))
    mean = vecs.mean(axis=0)
    var1 = np.mean(np.sum((vecs - mean) ** 2, axis=1))
    for b in range(1, 8):
        exact = np.mean([np.sum((vecs[list(s)].mean(axis=0) - mean) ** 2)
                         for s in itertools.combinations(range(7), b)])
        assert od.predicted_noise(var1, [b], 7)[0] == pytest.approx(exact, rel=1e-12, abs=1e-15)
    with pytest.raises(ValueError, match="1..N"):
        od.predicted_noise(1.0, [8], 7)


def test_gradient_noise_agrees_with_the_prediction():
    model, (x, y) = _tiny_model(), _tiny_data(n=40)
    per_example = np.array([od.flat_gradient(model, x[i:i + 1], y[i:i + 1])[0] for i in range(len(x))])
    g = per_example.mean(axis=0)
    var1 = np.mean(np.sum((per_example - g) ** 2, axis=1))
    assert od.per_example_variance(model, x, y) == pytest.approx(var1, rel=1e-10)
    out = od.gradient_noise(model, x, y, [1, 4, 16, 40], draws=400, rng=0)
    assert_allclose(out["full"], g, rtol=1e-12, atol=1e-14)
    pred = od.predicted_noise(var1, out["batch_sizes"], len(x))
    assert np.all(np.abs(out["noise"][:3] - pred[:3]) < 4 * out["stderr"][:3])   # within 4 standard errors
    assert out["noise"][-1] < 1e-20                                           # B = N: the full gradient
    assert out["n"] == 40 and list(out["batch_sizes"]) == [1, 4, 16, 40]


@pytest.mark.parametrize("sizes, match", [([0, 2], "1..12"), ([13], "1..12"), ([], "non-empty"),
                                          ([1.5], "whole numbers")])
def test_gradient_noise_rejects_bad_batch_sizes(sizes, match):
    model, (x, y) = _tiny_model(), _tiny_data()
    with pytest.raises(ValueError, match=match):
        od.gradient_noise(model, x, y, sizes, draws=3)


def test_loglog_slope():
    x = np.array([1.0, 2, 4, 8, 16])
    assert od.loglog_slope(x, 3 * x ** -1.5) == pytest.approx(-1.5)
    with pytest.raises(ValueError, match="positive"):
        od.loglog_slope(x, -x)


# --------------------------------------------------------------------------- Adam's moments
def test_ema_matches_its_closed_form_and_the_bias_correction():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((9, 3))
    beta = 0.8
    m = od.ema(g, beta)
    for t in range(1, 10):
        closed = (1 - beta) * sum(beta ** (t - s) * g[s - 1] for s in range(1, t + 1))
        assert_allclose(m[t - 1], closed, rtol=1e-12)
    assert_allclose(od.ema(g, beta, bias_correction=True), m / (1 - beta ** np.arange(1, 10))[:, None], rtol=1e-12)
    const = np.full((20, 2), 3.0)
    assert_allclose(od.ema(const, 0.9, bias_correction=True), const, rtol=1e-12)
    assert_allclose(od.ema(const, 0.9)[:, 0], 3.0 * (1 - 0.9 ** np.arange(1, 21)), rtol=1e-12)
    with pytest.raises(ValueError, match="beta"):
        od.ema(g, 1.0)


def test_ema_is_the_first_moment_of_the_library_adam():
    """Adam's m after t steps is the EMA of the gradients (beta_1)."""
    rng = np.random.default_rng(2)
    grads = rng.standard_normal((5, 4))
    opt = Adam({"w": np.zeros(4)}, lr=1e-3, betas=(0.9, 0.999))
    for g in grads:
        opt.step({"w": g.copy()})
    m, v = opt.moments()["w"]
    assert_allclose(m, od.ema(grads, 0.9)[-1], rtol=1e-12)
    assert_allclose(v, od.ema(grads ** 2, 0.999)[-1], rtol=1e-12)


# --------------------------------------------------------------------------- the explorer
def test_momentum_view_draws_both_runs():
    fig = od.momentum_view(momentum=0.9, lr=0.03, steps=40)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert labels == ["gradient descent", "momentum 0.9"]
    dist = fig.axes[1].get_lines()[1].get_ydata()
    ref = od.optimizer_path(lambda p: SGD(p, lr=0.03, momentum=0.9), od.valley_gradient, od.VALLEY_START, 40)
    assert_allclose(dist, np.linalg.norm(ref["path"], axis=1))


@pytest.mark.parametrize("kw, fragment", [({"momentum": 1.0}, "[0, 1)"), ({"momentum": -0.1}, "[0, 1)"),
                                          ({"lr": 0.0}, "positive"), ({"lr": "x"}, "numbers"),
                                          ({"steps": 0}, "between 1 and")])
def test_momentum_view_answers_bad_settings_with_a_message(kw, fragment):
    result = od.momentum_view(**kw)
    assert isinstance(result, od.Message) and fragment in result


def test_momentum_view_marks_a_divergent_run():
    fig = od.momentum_view(momentum=0.5, lr=0.2, steps=100)
    assert any("diverged" in line.get_label() for line in fig.axes[1].get_lines())


def test_momentum_explorer_builds_widgets():
    widgets = pytest.importorskip("ipywidgets")
    box = od.momentum_explorer()
    assert isinstance(box, widgets.VBox)
    sliders = box.children[0].children
    assert [s.description for s in sliders] == ["momentum β", "learning rate η", "steps"]
