"""Numerical gradients by central differences and the maximum relative error.

Run checks in float64: with the default step ``h = 1e-5`` a correct gradient agrees to
about ``1e-8``–``1e-7`` in maximum relative error (round-off grows as ``h`` shrinks, the
truncation error of the central difference as ``h**2`` grows); a wrong one is off by
``1e-2`` or more. float32 cannot resolve such differences: check in float64.
"""

from __future__ import annotations

import numpy as np

__all__ = ["numerical_gradient", "rel_error", "check_function", "check_layer", "check_model"]


def numerical_gradient(f, x, h=1e-5, indices=None):
    """Central-difference gradient of the scalar function ``f()`` with respect to the
    array ``x``, which ``f`` reads: ``(f(x + h e_i) - f(x - h e_i)) / 2h``.

    ``x`` is changed in place while probing and restored. With ``indices`` (flat
    indices), only those entries are probed and the rest of the result is 0.

    Shapes: ``x`` any -> a float64 array of ``x``'s shape.
    """
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise TypeError("numerical_gradient moves the entries of x by h: x must be a floating-point NumPy array "
                        f"(float64 for a check), got {getattr(x, 'dtype', type(x).__name__)}")
    grad = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("x must be a contiguous array that f reads")
    for i in (range(x.size) if indices is None else indices):
        old = flat[i]
        flat[i] = old + h
        plus = float(f())
        flat[i] = old - h
        minus = float(f())
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def rel_error(a, b, floor=1e-12):
    """Maximum over entries of ``|a - b| / max(|a| + |b|, floor)``: 0 when equal, ~1 when unrelated."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)))


def check_function(forward, backward, *inputs, rng=None, h=1e-5):
    """Checks ``backward(dy, *inputs)`` (returning one gradient per input, or a tuple)
    against numerical gradients of ``L = sum(forward(*inputs) * r)`` for a random ``r``.

    Returns the list of maximum relative errors, one per input."""
    rng = np.random.default_rng(rng)
    r = rng.standard_normal(np.shape(forward(*inputs)))
    analytic = backward(r, *inputs)
    analytic = analytic if isinstance(analytic, tuple) else (analytic,)
    errors = []
    for x, g in zip(inputs, analytic):
        num = numerical_gradient(lambda: np.sum(forward(*inputs) * r), x, h)
        errors.append(rel_error(g, num))
    return errors


def _require_float64(arrays, what):
    """Central differences with ``h = 1e-5`` need float64: in float32 ``x + h`` keeps about two
    digits of ``h``, and a correct backward pass shows relative errors near 1."""
    other = {k: str(a.dtype) for k, a in arrays.items() if getattr(a, "dtype", None) != np.float64}
    if other:
        raise TypeError(f"{what} compares gradients with central differences, which need float64 arrays; "
                        f"got {other} (build the layer or model with dtype=np.float64 and pass float64 inputs)")


def check_layer(layer, x, rng=None, h=1e-5):
    """Checks a layer's ``backward`` (input and every parameter) against numerical gradients
    of ``L = sum(layer.forward(x) * r)``. Returns ``{"x": err, "w": err, ...}``. ``x`` and the
    parameters must be float64 (``TypeError`` otherwise: float32 would show errors near 1)."""
    _require_float64({"x": x, **layer.params}, "check_layer")
    rng = np.random.default_rng(rng)
    r = rng.standard_normal(layer.forward(x, train=True).shape)
    layer.forward(x, train=True)
    errors = {"x": rel_error(layer.backward(r), numerical_gradient(
        lambda: np.sum(layer.forward(x, train=False) * r), x, h))}
    for name, p in layer.params.items():
        num = numerical_gradient(lambda: np.sum(layer.forward(x, train=False) * r), p, h)
        errors[name] = rel_error(layer.grads[name], num)
    return errors


def check_model(model, x, y, loss_and_grad=None, samples=None, rng=None, h=1e-5):
    """Checks a model's back-propagation end to end: the gradient of the loss with respect to
    every parameter (``samples`` random entries of each, or all) and to the input.
    Returns ``{"x": err, "conv1.w": err, ...}``. ``x`` and the parameters must be float64
    (``TypeError`` otherwise: float32 would show errors near 1)."""
    _require_float64({"x": x, **model.params()}, "check_model")
    if loss_and_grad is None:
        from .losses import softmax_cross_entropy as loss_and_grad
    rng = np.random.default_rng(rng)
    _, dlogits = loss_and_grad(model.forward(x, train=True), y)
    dx = model.backward(dlogits, need_dx=True)
    grads = {k: g.copy() for k, g in model.grads().items()}

    def loss():
        return loss_and_grad(model.forward(x, train=False), y)[0]

    def probe(array, analytic):
        idx = None if samples is None or samples >= array.size else rng.choice(array.size, samples, replace=False)
        num = numerical_gradient(loss, array, h, idx)
        if idx is None:
            return rel_error(analytic, num)
        return rel_error(analytic.reshape(-1)[idx], num.reshape(-1)[idx])

    errors = {"x": probe(x, dx)}
    for k, p in model.params().items():
        errors[k] = probe(p, grads[k])
    return errors
