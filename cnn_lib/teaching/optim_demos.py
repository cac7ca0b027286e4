"""Helpers for the chapter "Minibatch SGD, momentum and Adam" (part I).

* a 2-D quadratic valley, its gradient, and the path of any :mod:`cnn_lib.optim` optimizer on
  a 2-D cost (:func:`optimizer_path`), with the classical best rates of gradient descent and of
  the heavy ball (:func:`valley_rates`);
* the noise of the minibatch gradient: the flattened gradient of a model on a batch
  (:func:`flat_gradient`), its mean squared distance to the full-batch gradient for several
  batch sizes (:func:`gradient_noise`), the prediction for sampling without replacement
  (:func:`predicted_noise`) and a log-log slope (:func:`loglog_slope`);
* the exponential moving average of Adam's moments, with and without bias correction (:func:`ema`);
* the momentum explorer: :func:`momentum_view` (a figure, or a message for invalid settings)
  and :func:`momentum_explorer` (its ipywidgets wrapper, which needs a running kernel).

NumPy and matplotlib only; ``tests/test_optim_demos.py`` checks every function against loops,
closed forms or the library's optimizers.
"""

from __future__ import annotations

import math

import numpy as np

from ..losses import softmax_cross_entropy
from ..optim import SGD
from . import plots

__all__ = [
    "VALLEY_CURVATURES", "VALLEY_START", "valley_cost", "valley_gradient", "optimizer_path",
    "steps_to_reach", "valley_rates", "flat_gradient", "per_example_variance", "gradient_noise", "predicted_noise",
    "loglog_slope", "ema", "Message", "momentum_view", "momentum_explorer",
]

#: Curvatures (the Hessian's eigenvalues) of the valley: steep across, shallow along.
VALLEY_CURVATURES = (1.0, 25.0)
#: Where the valley's runs start.
VALLEY_START = (-4.0, 1.0)


# --------------------------------------------------------------------------- the valley
def _curvatures(curvatures):
    lam = np.asarray(curvatures, dtype=np.float64)
    if lam.shape != (2,) or not np.all(np.isfinite(lam)) or lam.min() <= 0:
        raise ValueError(f"curvatures must be two positive finite numbers, got {curvatures!r}")
    return lam


def valley_cost(w, curvatures=VALLEY_CURVATURES):
    """``L(w) = (lam_1 w_1^2 + lam_2 w_2^2) / 2``, minimum 0 at the origin.

    Shapes: ``w (..., 2)`` -> ``(...)``."""
    lam = _curvatures(curvatures)
    w = np.asarray(w, dtype=np.float64)
    if w.shape[-1:] != (2,):
        raise ValueError(f"w must have shape (..., 2), got {w.shape}")
    return 0.5 * np.sum(lam * w ** 2, axis=-1)


def valley_gradient(w, curvatures=VALLEY_CURVATURES):
    """``dL/dw = (lam_1 w_1, lam_2 w_2)``. Shapes: ``w (..., 2)`` -> ``(..., 2)``."""
    lam = _curvatures(curvatures)
    w = np.asarray(w, dtype=np.float64)
    if w.shape[-1:] != (2,):
        raise ValueError(f"w must have shape (..., 2), got {w.shape}")
    return lam * w


def valley_rates(curvatures=VALLEY_CURVATURES):
    """The classical best settings on a quadratic with curvatures ``mu <= L`` (condition number
    ``kappa = L / mu``), and the factor by which the distance to the minimum shrinks per step:

    * gradient descent: ``lr = 2 / (L + mu)``, factor ``(kappa - 1) / (kappa + 1)``;
    * heavy ball (``SGD`` with momentum): ``lr = 4 / (sqrt(L) + sqrt(mu))^2``,
      ``momentum = ((sqrt(kappa) - 1) / (sqrt(kappa) + 1))^2``, factor ``(sqrt(kappa) - 1) / (sqrt(kappa) + 1)``.

    Returns a dict with keys ``kappa``, ``gd_lr``, ``gd_factor``, ``hb_lr``, ``hb_momentum``,
    ``hb_factor``, and ``gd_limit = 2 / L`` (gradient descent diverges above it).
    """
    lam = _curvatures(curvatures)
    mu, big = float(lam.min()), float(lam.max())
    kappa = big / mu
    root = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    return {"kappa": kappa, "gd_lr": 2 / (big + mu), "gd_factor": (kappa - 1) / (kappa + 1),
            "gd_limit": 2 / big, "hb_lr": 4 / (math.sqrt(big) + math.sqrt(mu)) ** 2,
            "hb_momentum": root ** 2, "hb_factor": root}


def optimizer_path(make_optimizer, gradient, w0, steps, *, max_norm=1e3):
    """Runs a :mod:`cnn_lib.optim` optimizer on a function of a few parameters and records the path.

    ``make_optimizer(params)`` builds the optimizer over ``params = {"w": w}`` (e.g.
    ``lambda p: SGD(p, lr=0.03, momentum=0.9)``); each step calls
    ``opt.step({"w": gradient(w)})``. A run whose parameters leave ``[-max_norm, max_norm]`` or
    become non-finite is stopped and marked as diverged.

    Shapes: ``w0 (P,)``; returns a dict with ``path (T + 1, P)`` (the start first), ``diverged``
    and ``steps`` (``T``, the steps taken).
    """
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"the number of steps must be at least 0, got {steps}")
    w = np.array(w0, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"w0 must be a non-empty vector, got shape {w.shape}")
    opt = make_optimizer({"w": w})
    path, diverged = [w.copy()], False
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            opt.step({"w": np.asarray(gradient(w), dtype=np.float64)})
            path.append(w.copy())
            if not np.all(np.isfinite(w)) or np.max(np.abs(w)) > max_norm:
                diverged = True
                break
    return {"path": np.array(path), "diverged": diverged, "steps": len(path) - 1}


def steps_to_reach(path, tol, target=None):
    """The first step ``t`` at which ``path[t]`` is within ``tol`` of ``target`` (the origin by
    default) and stays within ``tol`` until the end; ``None`` if the run ends outside.

    Shapes: ``path (T + 1, P)``."""
    path = np.asarray(path, dtype=np.float64)
    if path.ndim != 2 or len(path) == 0:
        raise ValueError(f"path must have shape (T + 1, P), got {path.shape}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    target = np.zeros(path.shape[1]) if target is None else np.asarray(target, dtype=np.float64)
    inside = np.linalg.norm(path - target, axis=1) < tol
    if not inside[-1]:
        return None
    outside = np.flatnonzero(~inside)
    return 0 if outside.size == 0 else int(outside[-1] + 1)


# --------------------------------------------------------------------------- gradient noise
def flat_gradient(model, x, y):
    """The gradient of the mean loss of ``model`` on the batch ``(x, y)``, all parameters
    concatenated in ``model.grads()`` order, as float64; and the loss.

    Shapes: ``x (B, ...)``, ``y (B,)`` -> ``g (P,)``, a float."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need as many labels as inputs, at least one; got {len(x)} and {len(y)}")
    loss, dlogits = softmax_cross_entropy(model.forward(x, train=True), y)
    model.backward(dlogits)
    return np.concatenate([g.reshape(-1) for g in model.grads().values()]).astype(np.float64), float(loss)


def per_example_variance(model, x, y):
    """``(1/N) sum_n ||g_n - g||^2``: the mean squared distance of one example's gradient
    ``g_n`` to the full-batch gradient ``g = (1/N) sum_n g_n``, computed exactly, one example at
    a time (``mean ||g_n||^2 - ||g||^2``). This is ``E ||g_B - g||^2`` for ``B = 1``.

    Shapes: ``x (N, ...)``, ``y (N,)``; returns a float."""
    full, _ = flat_gradient(model, x, y)
    total = 0.0
    for n in range(len(x)):
        g, _ = flat_gradient(model, x[n:n + 1], y[n:n + 1])
        total += float(g @ g)
    return max(total / len(x) - float(full @ full), 0.0)


def gradient_noise(model, x, y, batch_sizes, draws=100, rng=None):
    """Measured noise of the minibatch gradient at the model's current weights.

    The full-batch gradient ``g`` is computed on all ``N`` examples; then, for each batch size
    ``B``, ``draws`` minibatches of ``B`` distinct examples (drawn uniformly, without replacement
    inside a batch, independently between draws) give gradients ``g_B``, and the mean of
    ``||g_B - g||^2`` over the draws estimates ``E ||g_B - g||^2``, the total variance of the
    minibatch gradient (the sum of the variances of its ``P`` entries).

    Returns a dict: ``batch_sizes (S,)``, ``noise (S,)`` (the means), ``stderr (S,)`` (their
    standard errors), ``full (P,)`` (the gradient ``g``) and ``n`` (``N``).
    """
    n = len(x)
    batch_sizes = np.asarray(batch_sizes)
    if batch_sizes.ndim != 1 or batch_sizes.size == 0 or not np.issubdtype(batch_sizes.dtype, np.integer):
        raise ValueError(f"batch_sizes must be a non-empty list of whole numbers, got {batch_sizes!r}")
    if batch_sizes.min() < 1 or batch_sizes.max() > n:
        raise ValueError(f"batch sizes must lie in 1..{n} (the number of examples), got {batch_sizes.tolist()}")
    if int(draws) < 2:
        raise ValueError(f"need at least 2 draws per batch size, got {draws}")
    rng = np.random.default_rng(rng)
    full, _ = flat_gradient(model, x, y)
    noise, stderr = [], []
    for b in batch_sizes:
        d2 = np.empty(int(draws))
        for r in range(int(draws)):
            idx = rng.choice(n, size=int(b), replace=False)
            g, _ = flat_gradient(model, x[idx], y[idx])
            d2[r] = np.sum((g - full) ** 2)
        noise.append(d2.mean())
        stderr.append(d2.std(ddof=1) / math.sqrt(len(d2)))
    return {"batch_sizes": batch_sizes.copy(), "noise": np.array(noise), "stderr": np.array(stderr),
            "full": full, "n": n}


def predicted_noise(var1, batch_sizes, n):
    """``E ||g_B - g||^2 = (var1 / B) (N - B) / (N - 1)`` for ``B`` examples drawn without
    replacement from ``N``, where ``var1`` is the value for ``B = 1`` (the mean squared distance
    of one example's gradient to ``g``). Close to ``var1 / B`` when ``B << N``; 0 at ``B = N``."""
    b = np.asarray(batch_sizes, dtype=np.float64)
    if n < 2 or b.min() < 1 or b.max() > n:
        raise ValueError(f"batch sizes must lie in 1..N with N >= 2, got {b.tolist()} and N = {n}")
    return var1 / b * (n - b) / (n - 1)


def loglog_slope(x, y):
    """Least-squares slope of ``log y`` against ``log x`` (``y ~ x^slope``). Shapes: ``(S,)``, ``(S,)``."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2 or x.min() <= 0 or y.min() <= 0:
        raise ValueError("need two 1-D arrays of the same length (at least 2) of positive numbers")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# --------------------------------------------------------------------------- Adam's moments
def ema(values, beta, bias_correction=False):
    """Exponential moving average ``m_t = beta m_{t-1} + (1 - beta) g_t`` from ``m_0 = 0``,
    divided by ``1 - beta^t`` when ``bias_correction``.

    Shapes: ``values (T, ...)`` (``g_1 .. g_T`` along the first axis) -> ``(T, ...)`` (``m_1 .. m_T``).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0 or len(values) == 0:
        raise ValueError("values must have at least one step along the first axis")
    if not 0 <= beta < 1:
        raise ValueError(f"beta must lie in [0, 1), got {beta}")
    out = np.empty_like(values)
    m = np.zeros_like(values[0])
    for t, g in enumerate(values, start=1):
        m = beta * m + (1 - beta) * g
        out[t - 1] = m / (1 - beta ** t) if bias_correction else m
    return out


# --------------------------------------------------------------------------- the explorer
class Message(str):
    """What :func:`momentum_view` returns instead of a figure when a setting is invalid."""


MAX_STEPS = 300


def momentum_view(momentum=0.9, lr=0.03, steps=60, curvatures=VALLEY_CURVATURES, start=VALLEY_START):
    """The path of ``SGD(lr, momentum)`` on the valley (left) and its distance to the minimum
    per step (right, log scale), beside plain gradient descent with the same learning rate.

    Returns a matplotlib ``Figure``, or a :class:`Message` for an invalid setting."""
    try:
        momentum, lr, steps = float(momentum), float(lr), int(steps)
    except (TypeError, ValueError):
        return Message("momentum and learning rate must be numbers, steps a whole number.")
    if not 0 <= momentum < 1:
        return Message(f"The momentum must lie in [0, 1), got {momentum}.")
    if not (math.isfinite(lr) and lr > 0):
        return Message(f"The learning rate must be a positive number, got {lr}.")
    if not 1 <= steps <= MAX_STEPS:
        return Message(f"The number of steps must lie between 1 and {MAX_STEPS}, got {steps}.")
    lam = _curvatures(curvatures)
    runs = {"gradient descent": optimizer_path(lambda p: SGD(p, lr=lr), lambda w: valley_gradient(w, lam), start,
                                               steps, max_norm=100),
            f"momentum {momentum:g}": optimizer_path(lambda p: SGD(p, lr=lr, momentum=momentum),
                                                     lambda w: valley_gradient(w, lam), start, steps, max_norm=100)}
    fig, (ax, ax_dist) = plots.new_figure(1, 2, figsize=(11, 4.2), width_ratios=(1.3, 1))
    extent = 1.25 * max(abs(s) for s in start)
    w1 = np.linspace(-extent, extent, 121)
    w2 = np.linspace(-extent / 2, extent / 2, 61)
    cost = valley_cost(np.stack(np.meshgrid(w1, w2), axis=-1), lam)
    plots.plot_cost_surface(w1, w2, cost, ax, title=f"learning rate {lr:g}, {steps} steps", colorbar=False)
    for k, (name, run) in enumerate(runs.items()):
        color = plots.PALETTE[(5, 3)[k]]
        plots.plot_path(run["path"], ax, color=color, label=name)
        dist = np.linalg.norm(run["path"], axis=1)
        ax_dist.semilogy(np.arange(len(dist)), np.maximum(dist, 1e-300), "o-", markersize=2.5, color=color,
                         label=name + (" (diverged)" if run["diverged"] else ""))
    ax.legend(loc="lower right", fontsize=9)
    ax_dist.set_xlabel("step $t$")
    ax_dist.set_ylabel("distance to the minimum")
    ax_dist.set_title("Distance to the minimum (log scale)")
    ax_dist.grid(True, alpha=0.3)
    ax_dist.legend(fontsize=9)
    return fig


def momentum_explorer(momentum=0.9, lr=0.03, steps=60):
    """Sliders for the momentum, the learning rate and the number of steps -> :func:`momentum_view`.
    Needs a running kernel."""
    import ipywidgets as widgets
    from IPython.display import HTML, display

    def show(**kw):
        result = momentum_view(**kw)
        if isinstance(result, Message):
            display(HTML(f"<p style='color:#D55E00'>{result}</p>"))
        else:
            import matplotlib.pyplot as plt

            display(result)
            plt.close(result)

    style = {"description_width": "initial"}
    opts = dict(continuous_update=False, style=style)
    controls = {
        "momentum": widgets.FloatSlider(value=momentum, min=0.0, max=0.99, step=0.01, description="momentum β",
                                        **opts),
        "lr": widgets.FloatLogSlider(value=lr, base=10, min=-3, max=math.log10(0.2), step=0.05,
                                     description="learning rate η", readout_format=".3g", **opts),
        "steps": widgets.IntSlider(value=steps, min=1, max=MAX_STEPS, description="steps", **opts),
    }
    out = widgets.interactive_output(show, controls)
    return widgets.VBox([widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap")), out])
