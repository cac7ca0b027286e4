"""Experiments of the chapter on initialization: deep ReLU MLPs, and the spread of their signals.

``deep_mlp`` builds the network; ``depth_profile`` measures, layer by layer, the standard
deviation of the pre-activations on the way forward and of their gradients on the way back;
``predicted_profile`` gives what the variance rule predicts for the same network, with a plain
loop over the layers; ``profile_view`` draws both (the callback of the chapter's widget).
"""

from __future__ import annotations

import math

import numpy as np

from .. import init
from ..layers import Dense, Flatten, ReLU
from ..model import Sequential

__all__ = ["deep_mlp", "depth_profile", "predicted_profile", "profile_view", "MAX_DEPTH", "MAX_WIDTH"]

MAX_DEPTH, MAX_WIDTH = 30, 1024        # bounds of the widget (a profile then takes well under a second)


def _whole(value, name, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")
    return int(value)


def deep_mlp(depth=10, width=64, in_features=784, classes=10, scheme="he", rng=0):
    """``Flatten -> [Dense(width) -> ReLU] x depth -> Dense(classes)``, initialized with ``scheme``.

    Shapes: x (N, ...) with ``in_features`` values per example -> logits (N, classes).
    """
    depth = _whole(depth, "depth", 1, MAX_DEPTH)
    width = _whole(width, "width", 1, MAX_WIDTH)
    layers, d_in = [Flatten()], in_features
    for _ in range(depth):
        layers += [Dense(d_in, width), ReLU()]
        d_in = width
    layers.append(Dense(d_in, classes))
    return init.initialize(Sequential(*layers), scheme, rng=rng)


def depth_profile(model, x, seed=0):
    """Standard deviations of each Dense layer's output ``z_l`` (forward) and of ``dL/dz_l`` (backward).

    The backward pass starts from a random ``dL/dlogits ~ N(0, 1)`` (drawn from ``seed``), so that
    only the network, not the loss, shapes the gradients.

    Returns ``(forward, backward)``: two float64 arrays with one entry per Dense layer, in order.
    """
    dense = [name for name, layer in model.layers.items() if isinstance(layer, Dense)]
    forward, a = [], x
    for name, layer in model.layers.items():
        a = layer.forward(a, train=True)
        if name in dense:
            forward.append(float(a.std()))
    dz = np.random.default_rng(seed).standard_normal(a.shape).astype(a.dtype)
    backward = {}
    for name, layer in reversed(model.layers.items()):
        if name in dense:
            backward[name] = float(dz.std())     # dL/dz of this Dense layer's output
        dz = layer.backward(dz, need_dx=True)
    return np.array(forward), np.array([backward[n] for n in dense])


def predicted_profile(depth, width, in_features, scheme, input_rms, classes=10, std=0.01):
    """What the variance rule predicts for :func:`deep_mlp`'s forward profile, one layer at a time.

    ``Var(z_1) = D_0 Var(w_1) E[x^2]``; then, through each ReLU (``E[a^2] = Var(z) / 2``),
    ``Var(z_l) = D_{l-1} Var(w_l) Var(z_{l-1}) / 2``. Returns the standard deviations, one per Dense layer.
    """
    sizes = [in_features] + [width] * depth + [classes]
    stds = []
    mean_square = input_rms ** 2                  # E[a_0^2] of the input
    for l in range(1, len(sizes)):
        var_w = init.init_std((sizes[l - 1], sizes[l]), scheme, std) ** 2
        var_z = sizes[l - 1] * var_w * mean_square
        stds.append(math.sqrt(var_z))
        mean_square = var_z / 2                   # through the ReLU
    return np.array(stds)


def profile_view(scheme="he", depth=10, width=256, seed=0):
    """Figure: the measured forward and backward profiles of a deep MLP on random inputs, and the
    prediction of the variance rule. Returns a matplotlib Figure, or a message string for a bad setting."""
    import matplotlib.pyplot as plt

    try:
        if scheme not in init.SCHEMES or scheme == "zeros":
            raise ValueError(f"scheme must be one of {', '.join(s for s in init.SCHEMES if s != 'zeros')}")
        model = deep_mlp(depth, width, in_features=width, scheme=scheme, rng=seed)
    except ValueError as e:
        return f"Cannot draw this profile: {e}"
    x = np.random.default_rng(seed).standard_normal((512, width)).astype(np.float32)
    fwd, bwd = depth_profile(model, x, seed)
    pred = predicted_profile(depth, width, width, scheme, input_rms=1.0)
    layers = np.arange(1, len(fwd) + 1)
    fig, ax = plt.subplots(figsize=(6.5, 3.6), facecolor="white", layout="constrained")
    ax.semilogy(layers, fwd, "o-", color="#0072B2", label="forward: std of $z_l$ (measured)")
    ax.semilogy(layers, pred, "--", color="#0072B2", alpha=0.6, label="forward: variance rule")
    ax.semilogy(layers, bwd, "s-", color="#D55E00", label=r"backward: std of $\partial\mathcal{L}/\partial z_l$")
    ax.set_xlabel("Dense layer $l$")
    ax.set_ylabel("standard deviation (log scale)")
    ax.set_title(f"{scheme}: {depth} hidden layers of {width} ReLU units")
    ax.legend(fontsize=9)
    return fig
