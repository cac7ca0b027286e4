"""Weight initialization: how the first weights are drawn, and why it matters.

A layer computes ``z = sum_d w_d a_d + b`` over its ``fan_in`` inputs. With independent,
zero-mean weights of variance ``Var(w)``, independent of inputs whose mean square is ``E[a^2]``:

    Var(z) = fan_in * Var(w) * E[a^2]                                     (the variance rule)

After a ReLU, half of a symmetric ``z`` is cut off, so ``E[a^2] = Var(z) / 2``. The variance of the
pre-activations is then multiplied by ``fan_in * Var(w) / 2`` per layer: below 1 the signal dies out
with depth, above 1 it explodes. Each scheme below picks ``Var(w)``:

=================  ===================================  ==========================================
scheme             ``w ~ N(0, s^2)`` with ``s =``        reasoning
=================  ===================================  ==========================================
``"zeros"``        0                                    every unit of a layer is the same: no learning
``"normal"``       ``std`` (0.01 by default)            a fixed small scale, blind to the layer's size
``"report"``       the seed report's: conv filters      ``1/sqrt(F*C*KH*KW)`` for a whole filter bank,
                   ``1 / sqrt(size of the bank)``,      dense weights 0.01
                   dense weights 0.01
``"xavier"``       ``sqrt(2 / (fan_in + fan_out))``     keeps ``Var`` for linear / tanh layers, both ways
                                                        (Glorot & Bengio, 2010)
``"he"``           ``sqrt(2 / fan_in)``                 keeps ``Var`` through ReLU layers (He et al.,
                                                        2015); the default of cnn_lib's layers
=================  ===================================  ==========================================

Biases start at zero in every scheme. ``fan_in`` is the number of inputs of one output unit:
``D_in`` for dense weights ``(D_in, D_out)``, ``C * KH * KW`` for convolution weights ``(F, C, KH, KW)``;
``fan_out`` is ``D_out``, or ``F * KH * KW``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SCHEMES", "fans", "init_std", "init_weights", "initialize"]

SCHEMES = ("zeros", "normal", "report", "xavier", "he")


def fans(shape):
    """``(fan_in, fan_out)`` of a weight array.

    Shapes: dense ``(D_in, D_out)`` -> ``(D_in, D_out)``; convolution ``(F, C, KH, KW)`` -> ``(C*KH*KW, F*KH*KW)``.
    """
    shape = tuple(shape)
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) == 4:
        F, C, KH, KW = shape
        return C * KH * KW, F * KH * KW
    raise ValueError(f"expected dense weights (D_in, D_out) or convolution weights (F, C, KH, KW), got shape {shape}")


def init_std(shape, scheme="he", std=0.01):
    """The standard deviation ``s`` that ``scheme`` draws weights of ``shape`` with (see the module table)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown initialization scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    fan_in, fan_out = fans(shape)
    if scheme == "zeros":
        return 0.0
    if scheme == "normal":
        if not (isinstance(std, (int, float, np.floating)) and math.isfinite(std) and std >= 0):
            raise ValueError(f"std must be a finite number >= 0, got {std!r}")
        return float(std)
    if scheme == "report":
        return 1.0 / math.sqrt(math.prod(shape)) if len(shape) == 4 else 0.01
    if scheme == "xavier":
        return math.sqrt(2.0 / (fan_in + fan_out))
    return math.sqrt(2.0 / fan_in)                                        # "he"


def init_weights(shape, scheme="he", rng=None, std=0.01, dtype=np.float32):
    """Weights of ``shape`` drawn as ``N(0, s^2)`` with ``s = init_std(shape, scheme, std)``.

    ``rng``: a numpy Generator or a seed. Returns an array of ``dtype``.
    """
    s = init_std(shape, scheme, std)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return (rng.standard_normal(tuple(shape)) * s).astype(dtype)


def initialize(model, scheme="he", rng=None, std=0.01):
    """Re-draws every weight ``w`` of ``model`` (a :class:`~cnn_lib.Sequential`) with ``scheme``, layer by
    layer in order, and sets every bias ``b`` to zero. Returns the model.

    ``rng``: a numpy Generator or a seed, so that the same seed gives the same weights.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if scheme not in SCHEMES:
        raise ValueError(f"unknown initialization scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    if not hasattr(getattr(model, "layers", None), "values"):
        raise TypeError(f"initialize takes a model (a Sequential, with its layers), got {type(model).__name__}")
    for layer in model.layers.values():
        if "w" in layer.params:
            w = layer.params["w"]
            w[...] = init_weights(w.shape, scheme, rng, std, w.dtype)
        if "b" in layer.params:
            layer.params["b"][...] = 0
    return model
