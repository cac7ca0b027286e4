"""Layers: parameters and the cache that backward needs, around :mod:`cnn_lib.functional`.

The contract every layer follows::

    params: dict[str, np.ndarray]   # e.g. {"w": ..., "b": ...}
    grads:  dict[str, np.ndarray]   # same keys and shapes, written by backward
    forward(x, train=True) -> y      # with train=True keeps what backward needs
    backward(dy, need_dx=True) -> dx # fills self.grads; dx is None when need_dx=False
    replica() -> layer               # the same parameters, its own cache and gradients
    clear_cache()                    # forgets what backward needed (it then needs a forward)

``backward`` never changes its inputs in place. The math lives in ``functional`` (and, for
the convolution, in its fast version ``fast_conv``); the layers call the forward/backward
pairs there and keep their cache. Sizes, strides and paddings must be integers: anything
else (``2.7``, ``"2"``, ``True``, ``(1.5, 2)``) is refused with an error naming the argument.
"""

from __future__ import annotations

import math

import numpy as np

from . import fast_conv
from . import functional as F
from .shapes import check_dropout_p, check_dy, integer, pair

__all__ = ["Layer", "Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "ReLU", "Sigmoid", "Arctan", "Flatten"]


def _image_shape(layer, input_shape):
    """``input_shape`` as ``(C, H, W)``, or an error naming the layer: a convolution or a pooling
    takes images (the shape has no batch axis)."""
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"{layer!r} expects inputs of shape (C, H, W) (without the batch axis), got {shape}")
    return shape


def _rng(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class Layer:
    """Base class: a layer without parameters passes the gradient through."""

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._cache = None

    def forward(self, x, train=True):
        raise NotImplementedError

    def backward(self, dy, need_dx=True):
        raise NotImplementedError

    def replica(self):
        """A copy that shares this layer's parameters (the very arrays, in the very dict) and
        settings, with its own cache and gradients: what :meth:`cnn_lib.Sequential.train_step`
        gives each half of a batch. (``copy.copy`` would do, but the copies are made at every
        step: this takes 3 µs for the seed network's 9 layers, ``copy.copy`` 12.)"""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.grads = {}
        twin.clear_cache()
        return twin

    def clear_cache(self):
        """Forgets what the last training forward kept: ``backward`` then needs a new forward."""
        self._cache = None

    def _saved(self):
        if self._cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward(x, train=True)"
            )
        return self._cache

    def output_shape(self, input_shape):
        """Shape of the output for an input of shape ``input_shape`` (without the batch axis)."""
        return input_shape

    def num_params(self):
        return sum(p.size for p in self.params.values())

    def __call__(self, x, train=True):
        return self.forward(x, train)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Dense(Layer):
    """Fully connected layer ``y = x w + b`` (eq. ``part1-mlp-eq-dense``: ``w`` is ``(D_in, D_out)``).

    Parameters
    ----------
    in_features, out_features : int
    rng : numpy Generator or int seed, for the He-normal initialisation
        ``w ~ N(0, 2 / in_features)``; ``b = 0``.

    Shapes
    ------
    x (N, in_features) -> y (N, out_features); w (in_features, out_features), b (out_features,)
    """

    def __init__(self, in_features, out_features, *, rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = integer(in_features, "in_features", minimum=1)
        self.out_features = integer(out_features, "out_features", minimum=1)
        scale = np.sqrt(2.0 / self.in_features)
        self.params["w"] = (_rng(rng).standard_normal((self.in_features, self.out_features)) * scale).astype(dtype)
        self.params["b"] = np.zeros(self.out_features, dtype=dtype)

    def forward(self, x, train=True):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"{self!r} expects input of shape (N, {self.in_features}), got {x.shape}")
        self._cache = x if train else None
        return F.dense(x, self.params["w"], self.params["b"])

    def backward(self, dy, need_dx=True):
        x = self._saved()
        dx, self.grads["w"], self.grads["b"] = F.dense_backward(dy, x, self.params["w"])
        return dx if need_dx else None

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.in_features,):
            raise ValueError(f"{self!r} expects inputs of shape ({self.in_features},), got {tuple(input_shape)}")
        return (self.out_features,)

    def __repr__(self):
        return f"Dense({self.in_features}, {self.out_features})"


class Conv2D(Layer):
    """2-D convolution (cross-correlation) with ``out_channels`` filters.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding : int or pair
    rng : numpy Generator or int seed, for the He-normal initialisation
        ``w ~ N(0, 2 / (in_channels * KH * KW))``; ``b = 0``.

    Shapes
    ------
    x (N, C, H, W) -> y (N, F, H_out, W_out); w (F, C, KH, KW), b (F,)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *, rng=None,
                 dtype=np.float32):
        super().__init__()
        self.in_channels = integer(in_channels, "in_channels", minimum=1)
        self.out_channels = integer(out_channels, "out_channels", minimum=1)
        KH, KW = pair(kernel_size, "kernel_size", minimum=1)
        self.kernel_size = (KH, KW)
        self.stride, self.padding = pair(stride, "stride", minimum=1), pair(padding, "padding", minimum=0)
        fan_in = self.in_channels * KH * KW
        w = _rng(rng).standard_normal((self.out_channels, self.in_channels, KH, KW)) * np.sqrt(2.0 / fan_in)
        self.params["w"] = w.astype(dtype)
        self.params["b"] = np.zeros(self.out_channels, dtype=dtype)

    def forward(self, x, train=True):
        y, self._cache = fast_conv.conv2d_forward(x, self.params["w"], self.params["b"], self.stride,
                                                  self.padding, keep_cache=train)
        return y

    def backward(self, dy, need_dx=True):
        dx, self.grads["w"], self.grads["b"] = fast_conv.conv2d_backward(dy, self._saved(), need_dx)
        return dx

    def output_shape(self, input_shape):
        C, H, W = _image_shape(self, input_shape)
        if C != self.in_channels:
            raise ValueError(f"{self!r} expects {self.in_channels} input channels, got {C}")
        return (self.out_channels,
                F.conv_output_size(H, self.kernel_size[0], self.stride[0], self.padding[0]),
                F.conv_output_size(W, self.kernel_size[1], self.stride[1], self.padding[1]))

    def __repr__(self):
        extra = "".join(f", {k}={v[0] if v[0] == v[1] else v}" for k, v, d in
                        (("stride", self.stride, 1), ("padding", self.padding, 0)) if v != (d, d))
        k = self.kernel_size
        return f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={k[0] if k[0] == k[1] else k}{extra})"


class _Pool(Layer):
    def __init__(self, kernel_size=2, stride=None):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size", minimum=1)
        self.stride = pair(self.kernel_size if stride is None else stride, "stride", minimum=1)

    def output_shape(self, input_shape):
        C, H, W = _image_shape(self, input_shape)
        return (C, F.conv_output_size(H, self.kernel_size[0], self.stride[0]),
                F.conv_output_size(W, self.kernel_size[1], self.stride[1]))

    def __repr__(self):
        k, s = self.kernel_size, self.stride
        return f"{type(self).__name__}(kernel_size={k[0] if k[0] == k[1] else k}, stride={s[0] if s[0] == s[1] else s})"


class MaxPool2D(_Pool):
    """Max pooling over ``kernel_size`` windows moved by ``stride`` (default: the window size).

    In training it runs :func:`cnn_lib.fast_conv.maxpool2d_forward`, which records where each
    window's maximum is so that backward only routes ``dy`` there; in evaluation, the plain
    :func:`cnn_lib.functional.maxpool2d`. Both give the same outputs and gradients as the
    readable pair :func:`cnn_lib.functional.maxpool2d_forward` / ``maxpool2d_backward``.

    Shapes: x (N, C, H, W) -> y (N, C, H_out, W_out).
    """

    def forward(self, x, train=True):
        if not train:
            self._cache = None
            return F.maxpool2d(x, self.kernel_size, self.stride)
        y, self._cache = fast_conv.maxpool2d_forward(x, self.kernel_size, self.stride)
        return y

    def backward(self, dy, need_dx=True):
        cache = self._saved()
        return fast_conv.maxpool2d_backward(dy, cache) if need_dx else None


class AvgPool2D(_Pool):
    """Average pooling over ``kernel_size`` windows moved by ``stride`` (default: the window size).

    Shapes: x (N, C, H, W) -> y (N, C, H_out, W_out).
    """

    def forward(self, x, train=True):
        y, cache = F.avgpool2d_forward(x, self.kernel_size, self.stride)
        self._cache = cache if train else None
        return y

    def backward(self, dy, need_dx=True):
        cache = self._saved()
        return F.avgpool2d_backward(dy, cache) if need_dx else None


class _Activation(Layer):
    _f = _df = None

    def forward(self, x, train=True):
        self._cache = x if train else None
        return type(self)._f(x)

    def backward(self, dy, need_dx=True):
        return type(self)._df(dy, self._saved()) if need_dx else None


class ReLU(_Activation):
    """``max(0, x)`` element-wise. Any shape."""
    _f, _df = F.relu, F.relu_backward


class Sigmoid(_Activation):
    """Logistic sigmoid element-wise (eq. ``part1-act-eq-sigmoid``). Any shape."""
    _f, _df = F.sigmoid, F.sigmoid_backward


class Arctan(_Activation):
    """Arctangent element-wise. Any shape."""
    _f, _df = F.arctan, F.arctan_backward


class Flatten(Layer):
    """Flattens everything but the batch axis, in C order: (N, C, H, W) -> (N, C*H*W)."""

    def forward(self, x, train=True):
        self._cache = x.shape if train else None
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx=True):
        x_shape = self._saved()
        check_dy(dy, (x_shape[0], math.prod(x_shape[1:])), "Flatten.backward")   # a reshape would hide a mix-up
        return dy.reshape(x_shape) if need_dx else None

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)


class Dropout(Layer):
    """Inverted dropout (:func:`cnn_lib.functional.dropout_forward`): in training, each entry
    is zeroed with probability ``p`` and the others are scaled by ``1 / (1 - p)``, so that
    ``E[y] = x``; in evaluation (``forward(x, train=False)``) the layer is the identity.

    A fresh mask is drawn at every training forward from the layer's own Generator, so a
    model built with the same seeds trains the same way bit for bit; ``backward`` uses the
    mask of the last training forward. Note that :func:`cnn_lib.gradcheck.check_layer` and
    ``check_model`` evaluate the loss with ``train=False``: check dropout with a fixed mask
    (re-seed ``rng`` before each forward) instead.

    Parameters
    ----------
    p : float, the probability of dropping an entry, ``0 <= p < 1``.
    rng : numpy Generator or int seed; ``None`` takes a seed from the operating system
        (not reproducible, like the initialisation of :class:`Dense`).

    Shapes: any -> the same shape.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = check_dropout_p(p)
        self.rng = _rng(rng)

    def forward(self, x, train=True):
        if not train:
            self._cache = None
            return x
        y, mask = F.dropout_forward(x, self.p, self.rng)
        self._cache = mask
        return y

    def backward(self, dy, need_dx=True):
        mask = self._saved()
        return F.dropout_backward(dy, mask) if need_dx else None

    def __repr__(self):
        return f"Dropout(p={self.p:g})"


__all__ += ["Dropout"]
