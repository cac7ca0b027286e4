"""Helpers for part I of the book (neural networks): layer sizes and parameter counts,
building a multi-layer perceptron, collapsing a stack of linear layers into one, fitting
a 1-D function with ReLU "hinges", two small cost functions (a line fit and a 2-D
landscape with several minima) with their gradients, plain gradient descent, and the
gradient norms measured through a deep stack of layers.

Everything here is NumPy only; the chapters of part I import it and the tests in
``tests/test_mlp.py`` check it (against loops and numerical gradients).
"""

from __future__ import annotations

import re

import numpy as np

from .. import functional as F
from ..layers import Arctan, Dense, ReLU, Sigmoid
from ..model import Sequential

__all__ = [
    "ACTIVATIONS", "parse_sizes", "param_counts", "num_params", "build_mlp", "collapse_linear",
    "wavy", "fit_hinges", "line_cost", "line_cost_naive", "line_cost_gradient",
    "LANDSCAPE_BETA", "LANDSCAPE_WELLS", "landscape_cost", "landscape_gradient",
    "gradient_descent", "directional_slopes", "layer_gradient_norms",
]

#: Activation layers by name, as accepted by :func:`build_mlp` (``None`` or "linear": none).
ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "arctan": Arctan}


# --------------------------------------------------------------------------- sizes and counts
def parse_sizes(spec):
    """Layer sizes of an MLP from ``"784-128-10"`` (or ``"784, 128, 10"``) or a sequence of ints.

    Returns a tuple of at least two positive ints: the input size, the hidden layers'
    sizes, the output size. Raises ``ValueError`` saying what is wrong otherwise.
    """
    if isinstance(spec, str):
        parts = [p for p in re.split(r"[\s,;\-–]+", spec.strip()) if p]
        sizes = []
        for p in parts:
            if not p.isdigit():
                raise ValueError(f"layer sizes must be positive whole numbers, got {p!r} in {spec!r}")
            sizes.append(int(p))
    else:
        try:
            sizes = [s for s in spec]
        except TypeError:
            raise ValueError(f"layer sizes must be a string like '784-128-10' or a list of ints, got {spec!r}") from None
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
                raise ValueError(f"layer sizes must be positive whole numbers, got {s!r}")
        sizes = [int(s) for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least an input size and an output size, got {len(sizes)} number(s)")
    if min(sizes) < 1:
        raise ValueError(f"layer sizes must be at least 1, got {min(sizes)}")
    return tuple(sizes)


def param_counts(sizes):
    """Weights and biases of each fully connected layer of an MLP with these sizes.

    Layer ``l`` (1-based, numbered by the layer it feeds, as in part I) maps ``D_{l-1}`` inputs
    to ``D_l`` outputs with ``D_{l-1} * D_l`` weights and ``D_l`` biases (eq. ``part1-mlp-eq-params``).
    Returns one dict per layer with keys ``layer``, ``inputs``, ``outputs``, ``weights``,
    ``biases`` and ``total``.
    """
    sizes = parse_sizes(sizes)
    return [{"layer": l + 1, "inputs": d, "outputs": m, "weights": d * m, "biases": m, "total": (d + 1) * m}
            for l, (d, m) in enumerate(zip(sizes[:-1], sizes[1:]))]


def num_params(sizes):
    """Number of parameters of an MLP: ``sum_{l=1}^{L} (D_{l-1} + 1) D_l``; e.g. 101,770 for 784-128-10."""
    return sum(row["total"] for row in param_counts(sizes))


def build_mlp(sizes, activation="relu", *, rng=None, dtype=np.float32, flatten=False):
    """A :class:`~cnn_lib.model.Sequential` MLP: ``Dense`` layers of the given sizes with
    ``activation`` between them (none after the last: it outputs logits).

    Parameters
    ----------
    sizes : "784-128-10" or a sequence of ints (see :func:`parse_sizes`)
    activation : "relu", "sigmoid", "arctan", or None / "linear" for no activation
    rng : numpy Generator or seed for the He-normal initialisation of every ``Dense``
    flatten : put a ``Flatten`` first, so the model takes images ``(N, C, H, W)``

    Shapes: x (N, sizes[0]) (or images with ``flatten``) -> logits (N, sizes[-1]).
    """
    sizes = parse_sizes(sizes)
    if activation in (None, "linear"):
        act = None
    elif activation in ACTIVATIONS:
        act = activation
    else:
        raise ValueError(f"unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)} or None")
    spec = ["flatten"] if flatten else []
    for l, m in enumerate(sizes[1:]):
        spec.append(("dense", m))
        if act is not None and l < len(sizes) - 2:
            spec.append(act)
    return Sequential.from_spec(spec, input_shape=(sizes[0],), seed=rng, dtype=dtype)


def collapse_linear(layers):
    """The single ``(w, b)`` equal to a stack of ``Dense`` layers with nothing between them.

    ``(x w1 + b1) w2 + b2 = x (w1 w2) + (b1 w2 + b2)``, and so on for more layers.
    ``layers`` is a ``Sequential`` or a sequence of ``Dense``; anything else (an activation
    in between) raises ``ValueError``: such a stack is not linear.

    Shapes: returns ``w (D_in, D_out)``, ``b (D_out,)``.
    """
    layers = list(layers.layers.values()) if isinstance(layers, Sequential) else list(layers)
    if not layers:
        raise ValueError("no layers to collapse")
    w = b = None
    for layer in layers:
        if not isinstance(layer, Dense):
            raise ValueError(f"only a stack of Dense layers is linear; found {layer!r}")
        lw, lb = layer.params["w"], layer.params["b"]
        if w is None:
            w, b = lw.copy(), lb.copy()
        else:
            w, b = w @ lw, b @ lw + lb
    return w, b


# --------------------------------------------------------------------------- a 1-D function from hinges
def wavy(x):
    """The 1-D function the book approximates with ReLU hinges: ``sin(3 x) + x / 2``."""
    x = np.asarray(x, dtype=np.float64)
    return np.sin(3 * x) + 0.5 * x


def fit_hinges(x, t, n_hidden, lo=None, hi=None):
    """A one-hidden-layer ReLU network ``1 -> n_hidden -> 1`` that fits ``t`` at ``x``.

    Hidden unit ``k`` computes the hinge ``relu(x - c_k)`` (weight 1, bias ``-c_k``) with
    knots ``c_k = lo + k (hi - lo) / n_hidden`` evenly spaced from ``lo`` (default
    ``min(x)``); the output layer's weights and bias are the least-squares fit. The
    result is the piecewise-linear function with those knots that best fits the samples.

    Shapes: ``x (N,)``, ``t (N,)`` -> a float64 ``Sequential(Dense(1, K), ReLU(), Dense(K, 1))``
    that maps ``(N, 1)`` to ``(N, 1)``.
    """
    x, t = np.asarray(x, dtype=np.float64).ravel(), np.asarray(t, dtype=np.float64).ravel()
    if x.shape != t.shape or x.size < 2:
        raise ValueError(f"x and t must have the same length, at least 2; got {x.shape} and {t.shape}")
    K = int(n_hidden)
    if K < 1:
        raise ValueError(f"the number of hidden units must be at least 1, got {n_hidden}")
    lo = float(x.min()) if lo is None else float(lo)
    hi = float(x.max()) if hi is None else float(hi)
    if not hi > lo:
        raise ValueError(f"need lo < hi, got lo={lo}, hi={hi}")
    knots = lo + (hi - lo) * np.arange(K) / K                        # (K,)
    hidden = Dense(1, K, dtype=np.float64)
    hidden.params["w"][...] = 1.0
    hidden.params["b"][...] = -knots
    output = Dense(K, 1, dtype=np.float64)
    h = F.relu(F.dense(x[:, None], hidden.params["w"], hidden.params["b"]))  # (N, K)
    design = np.hstack([h, np.ones((x.size, 1))])                    # (N, K + 1)
    coef = np.linalg.lstsq(design, t, rcond=None)[0]                 # (K + 1,)
    output.params["w"][...] = coef[:K, None]
    output.params["b"][...] = coef[K]
    return Sequential(hidden, ReLU(), output)


# --------------------------------------------------------------------------- the cost of a line fit
def _line_args(w, b, x, y):
    w, b = np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise ValueError(f"x and y must be 1-D of the same non-zero length, got {x.shape} and {y.shape}")
    return w, b, x, y


def line_cost(w, b, x, y):
    """Mean squared error of the line ``f(x) = w x + b`` on the training set ``(x, y)``:
    ``C(w, b) = (1/N) sum_n (w x_n + b - y_n)^2``.

    ``w`` and ``b`` may be arrays of any (broadcastable) shape, e.g. a grid of
    parameter values: the cost is computed for every pair at once.
    Shapes: ``x (N,)``, ``y (N,)``; returns ``broadcast(w, b).shape``.
    """
    w, b, x, y = _line_args(w, b, x, y)
    residual = w[..., None] * x + b[..., None] - y                   # (..., N)
    return np.mean(residual ** 2, axis=-1)


def line_cost_naive(w, b, x, y):
    """Loop version of :func:`line_cost` for one pair ``(w, b)``: one example at a time."""
    w, b, x, y = _line_args(w, b, x, y)
    N = len(x)
    total = 0.0
    for n in range(N):
        prediction = w * x[n] + b
        total += (prediction - y[n]) ** 2
    return float(total / N)


def line_cost_gradient(w, b, x, y):
    """Gradient of :func:`line_cost`: ``dC/dw = (2/N) sum_n r_n x_n``, ``dC/db = (2/N) sum_n r_n``
    with the residuals ``r_n = w x_n + b - y_n``. Returns ``(dC/dw, dC/db)``, each shaped like
    ``broadcast(w, b)``."""
    w, b, x, y = _line_args(w, b, x, y)
    residual = w[..., None] * x + b[..., None] - y                   # (..., N)
    return 2 * np.mean(residual * x, axis=-1), 2 * np.mean(residual, axis=-1)


# --------------------------------------------------------------------------- a landscape with several minima
#: Steepness ``beta`` of the bowl ``beta * |w|^2`` of :func:`landscape_cost`.
LANDSCAPE_BETA = 0.3
#: Wells ``(centre_1, centre_2, depth a, radius s)`` dug into the bowl.
LANDSCAPE_WELLS = ((-2.0, 1.3, 1.5, 1.25), (1.8, 1.8, 1.7, 1.2), (2.0, -1.4, 1.2, 1.1), (-1.5, -2.0, 1.6, 1.2))


def _as_points(w):
    w = np.asarray(w, dtype=np.float64)
    if w.shape[-1:] != (2,):
        raise ValueError(f"expected points of shape (..., 2), got shape {w.shape}")
    return w


def landscape_cost(w):
    """A made-up 2-D cost with one global minimum and several local ones.

    ``C(w) = beta |w|^2 - sum_k a_k max(0, 1 - |w - c_k|^2 / s_k^2)^3``: a bowl with its
    bottom ``C = 0`` at the origin, and wells of depth ``a_k`` and radius ``s_k`` around the
    centres ``c_k`` (:data:`LANDSCAPE_WELLS`), none of which reaches the origin. Each well
    is smooth (its value, slope and curvature vanish at its rim) and too shallow to go below 0.

    Shapes: ``w (..., 2)`` -> ``(...)``.
    """
    w = _as_points(w)
    cost = LANDSCAPE_BETA * np.sum(w ** 2, axis=-1)
    for c1, c2, a, s in LANDSCAPE_WELLS:
        r2 = ((w[..., 0] - c1) ** 2 + (w[..., 1] - c2) ** 2) / s ** 2
        cost = cost - a * np.maximum(1 - r2, 0) ** 3
    return cost


def landscape_gradient(w):
    """Gradient of :func:`landscape_cost`:
    ``2 beta w + sum_k (6 a_k / s_k^2) max(0, 1 - |w - c_k|^2 / s_k^2)^2 (w - c_k)``.

    Shapes: ``w (..., 2)`` -> ``(..., 2)``.
    """
    w = _as_points(w)
    grad = 2 * LANDSCAPE_BETA * w
    for c1, c2, a, s in LANDSCAPE_WELLS:
        d = w - np.array([c1, c2])                                   # (..., 2)
        r2 = np.sum(d ** 2, axis=-1) / s ** 2
        grad = grad + (6 * a / s ** 2) * (np.maximum(1 - r2, 0) ** 2)[..., None] * d
    return grad


# --------------------------------------------------------------------------- gradient descent
def gradient_descent(gradient, w0, lr, steps, *, cost=None, max_norm=1e3):
    """Plain gradient descent: ``w_{t+1} = w_t - lr * gradient(w_t)`` for ``t = 0 .. steps - 1``.

    Stops early, marking the run as diverged, when an entry of ``w`` exceeds ``max_norm`` in
    absolute value or is not finite (a too-large learning rate then ends the run, silently).

    Parameters
    ----------
    gradient : callable ``w -> dC/dw`` (same shape as ``w``)
    w0 : starting point, any shape (e.g. ``(2,)``)
    lr : learning rate, positive
    steps : number of steps, at least 0
    cost : optional callable ``w -> C(w)`` recorded along the path

    Returns
    -------
    dict with ``path (T + 1, *w0.shape)`` (the starting point first), ``costs (T + 1,)``
    (when ``cost`` is given), ``diverged`` (bool) and ``steps`` (``T``, the steps taken).
    """
    lr, steps = float(lr), int(steps)
    if not lr > 0:
        raise ValueError(f"the learning rate must be positive, got {lr}")
    if steps < 0:
        raise ValueError(f"the number of steps must be at least 0, got {steps}")
    w = np.array(w0, dtype=np.float64)
    path, diverged = [w.copy()], False
    with np.errstate(over="ignore", invalid="ignore"):      # a divergent run is stopped, not warned about
        for _ in range(steps):
            w = w - lr * gradient(w)
            path.append(w.copy())
            if not np.all(np.isfinite(w)) or np.max(np.abs(w)) > max_norm:
                diverged = True
                break
        out = {"path": np.array(path), "diverged": diverged, "steps": len(path) - 1}
        if cost is not None:
            out["costs"] = np.array([float(cost(p)) for p in path])
    return out


def directional_slopes(cost, w, angles, h=1e-6):
    """Slope of ``cost`` at the 2-D point ``w`` in each direction ``u = (cos a, sin a)``,
    by central differences of the cost alone (no gradient used):
    ``(C(w + h u) - C(w - h u)) / 2h``. Shapes: ``angles (A,)`` -> ``(A,)``."""
    w = np.asarray(w, dtype=np.float64)
    angles = np.asarray(angles, dtype=np.float64)
    u = np.stack([np.cos(angles), np.sin(angles)], axis=-1)          # (A, 2)
    return (cost(w + h * u) - cost(w - h * u)) / (2 * h)


# --------------------------------------------------------------------------- vanishing gradients
def layer_gradient_norms(activation, depth, width=64, n=64, rng=0):
    """Gradient norms through a deep stack ``(Dense -> activation) x depth`` in float64.

    A batch ``x (n, width)`` of standard normal inputs goes forward; a standard normal
    ``dy`` comes back from the top. Returns a dict of arrays of length ``depth``, layer 1
    (next to the input) first: ``"weight"``, the norm of ``dL/dw`` of each ``Dense``,
    ``"input"``, the norm of the gradient that reaches each ``Dense``'s input, and
    ``"spectral"``, the spectral norm (largest singular value) of each ``Dense``'s weights,
    which bounds how much that layer can stretch the gradient going back.
    Every ``Dense`` has the library's He-normal initialisation.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)}")
    depth, width, n = int(depth), int(width), int(n)
    if depth < 1 or width < 1 or n < 1:
        raise ValueError(f"depth, width and n must be at least 1, got {depth}, {width}, {n}")
    rng = np.random.default_rng(rng)
    dense = [Dense(width, width, rng=rng, dtype=np.float64) for _ in range(depth)]
    acts = [ACTIVATIONS[activation]() for _ in range(depth)]
    x = rng.standard_normal((n, width))
    for d, a in zip(dense, acts):
        x = a.forward(d.forward(x))
    dy = rng.standard_normal(x.shape)
    weight, inputs = np.zeros(depth), np.zeros(depth)
    for l in range(depth - 1, -1, -1):
        dy = dense[l].backward(acts[l].backward(dy))
        weight[l] = np.linalg.norm(dense[l].grads["w"])
        inputs[l] = np.linalg.norm(dy)
    spectral = np.array([np.linalg.norm(d.params["w"], ord=2) for d in dense])
    return {"weight": weight, "input": inputs, "spectral": spectral}
