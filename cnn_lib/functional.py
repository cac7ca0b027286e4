"""Stateless forward and backward functions, each beside its plain-loop twin.

Every operation comes in two versions:

* the vectorized one (``conv2d_forward``, ``maxpool2d_forward``, ...) works on whole batches
  with NumPy array operations and matrix products: it has no Python loop over images,
  pixels or channels (at most a loop over the few offsets inside a kernel window);
* the ``*_naive`` one is a plain loop whose indices follow the book's equations.
  It is slow, obviously correct, and the tests compare the two.

Operations with a backward pass come in the cache style of CS231n: ``y, cache =
conv2d_forward(x, w, b, stride, padding)`` keeps what the gradient needs, and ``dx, dw, db =
conv2d_backward(dy, cache)`` uses it (nothing is computed twice); ``conv2d(x, w, b, ...)``
and ``maxpool2d(x, ...)`` are the forward passes alone.

The convolution here is the one of part II, :func:`im2col` and one matrix product (the
chapter *Multiple channels, stride and zero padding* prints it). The
layers and :func:`conv2d` run the faster version of :mod:`cnn_lib.fast_conv` (same sums,
organized for the processor's cache and two cores); ``set_num_threads`` and
``get_num_threads`` are re-exported from there.

Conventions (the book's): images are ``(N, C, H, W)``, convolution weights ``(F, C, KH, KW)``
(as in PyTorch) with biases ``(F,)``, dense weights ``(D_in, D_out)`` so that ``y = x @ w + b``
(PyTorch's ``nn.Linear`` stores the transpose), logits ``(N, K)`` and labels integers ``(N,)``.
Index letters: ``n`` is the image, ``f`` the filter, ``c`` the channel, ``(i, j)`` the output
position and ``(u, v)`` the offset inside the kernel window: the book's ``(m, n)``, renamed
because ``n`` is the image here.
``stride`` and ``padding`` accept an int or a pair of ints ``(vertical, horizontal)``
(see :func:`cnn_lib.shapes.pair`).

"Convolution" here is, as in every deep-learning library, a cross-correlation:
the kernel is not flipped (the book's chapter on convolution versus
cross-correlation explains why that does not matter for learning).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import fast_conv
from .fast_conv import get_num_threads, set_num_threads
from .shapes import check_conv2d, check_dropout_p, check_dy, check_labels, check_pool2d, conv_output_size, pair

__all__ = [
    "conv_output_size", "set_num_threads", "get_num_threads",
    "dense", "dense_backward", "dense_naive", "dense_backward_naive",
    "window_slices", "im2col", "col2im", "ConvCache", "PoolCache",
    "conv2d", "conv2d_forward", "conv2d_backward", "conv2d_naive", "conv2d_backward_naive",
    "maxpool2d", "maxpool2d_forward", "maxpool2d_backward", "maxpool2d_naive", "maxpool2d_backward_naive",
    "avgpool2d", "avgpool2d_forward", "avgpool2d_backward", "avgpool2d_naive", "avgpool2d_backward_naive",
    "relu", "relu_backward", "relu_naive", "relu_backward_naive",
    "sigmoid", "sigmoid_backward", "sigmoid_naive", "sigmoid_backward_naive",
    "arctan", "arctan_backward", "arctan_naive", "arctan_backward_naive",
    "softmax", "softmax_naive", "log_softmax", "log_softmax_naive",
    "nll_loss", "nll_loss_naive", "cross_entropy", "cross_entropy_backward",
    "cross_entropy_naive", "cross_entropy_backward_naive",
]


# --------------------------------------------------------------------------- helpers
def _check_dense(x, w, b, name):
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(f"{name} expects x (N, D_in) and w (D_in, D_out), got x {x.shape} and w {w.shape}")
    if np.shape(b) != (w.shape[1],):
        raise ValueError(f"{name} expects b of shape ({w.shape[1]},) to match w {w.shape}, got {np.shape(b)}")


def _pad(x, ph, pw):
    """Zero-pad the two spatial axes of ``x (N, C, H, W)``."""
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


# --------------------------------------------------------------------------- dense
def dense(x, w, b):
    """Fully connected layer, eq. ``part1-mlp-eq-dense``: ``y = x w + b``, one example per row,
    with ``w = W^T`` the transpose of the report's ``W`` (its eq. 1, ``W a + b``).

    Shapes: ``x (N, D_in)``, ``w (D_in, D_out)``, ``b (D_out,)`` -> ``y (N, D_out)``.
    """
    _check_dense(x, w, b, "dense")
    return x @ w + b


def dense_backward(dy, x, w):
    """Gradients of :func:`dense`: ``dx = dy w^T``, ``dw = x^T dy``, ``db = sum_n dy``.

    Shapes: ``dy (N, D_out)``, ``x (N, D_in)``, ``w (D_in, D_out)`` -> ``dx (N, D_in), dw (D_in, D_out), db (D_out,)``.
    """
    check_dy(dy, (x.shape[0], w.shape[1]), "dense_backward")
    return dy @ w.T, x.T @ dy, dy.sum(axis=0)


def dense_naive(x, w, b):
    """Loop version of :func:`dense`: ``y[n, m] = b[m] + sum_d x[n, d] w[d, m]``.

    Shapes: as :func:`dense`.
    """
    _check_dense(x, w, b, "dense_naive")
    N, D_in = x.shape
    D_out = w.shape[1]
    y = np.zeros((N, D_out), dtype=np.result_type(x, w))
    for n in range(N):
        for m in range(D_out):
            total = b[m]
            for d in range(D_in):
                total += x[n, d] * w[d, m]
            y[n, m] = total
    return y


def dense_backward_naive(dy, x, w):
    """Loop version of :func:`dense_backward`, one term of the chain rule at a time.

    Shapes: as :func:`dense_backward`.
    """
    check_dy(dy, (x.shape[0], w.shape[1]), "dense_backward_naive")
    N, D_in = x.shape
    D_out = w.shape[1]
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros(D_out, dtype=dy.dtype)
    for n in range(N):
        for m in range(D_out):
            db[m] += dy[n, m]
            for d in range(D_in):
                dx[n, d] += dy[n, m] * w[d, m]
                dw[d, m] += x[n, d] * dy[n, m]
    return dx, dw, db


# --------------------------------------------------------------------------- conv2d
class ConvCache(NamedTuple):
    """What :func:`conv2d_backward` needs from :func:`conv2d_forward` (CS231n's ``cache``):
    the input's shape, the filters, the stride and padding as pairs, and the unrolled input
    ``cols (N, C*KH*KW, H_out*W_out)``. ``kind`` is ``"im2col"`` (the fast version's cache,
    :class:`cnn_lib.fast_conv.FastConvCache`, says ``"fast"``)."""
    kind: str
    x_shape: tuple
    w: np.ndarray
    stride: tuple
    padding: tuple
    cols: np.ndarray


def window_slices(KH, KW, sh, sw, H_out, W_out):
    """For every offset ``(u, v)`` inside the window, in row-major order, the slices of the
    input that it visits: ``x[..., u + i*sh, v + j*sw]`` for all output positions ``(i, j)``.

    A window of ``KH x KW`` has ``KH * KW`` offsets; each slice has the output's shape
    ``(..., H_out, W_out)``. Pooling, :func:`im2col` and :func:`col2im` loop over these
    few offsets instead of over every pixel.
    """
    for u in range(KH):
        for v in range(KW):
            yield (Ellipsis, slice(u, u + (H_out - 1) * sh + 1, sh), slice(v, v + (W_out - 1) * sw + 1, sw))


def im2col(x, kernel_size, stride=1, padding=0):
    """Unrolls every window of the zero-padded input into a column ("image to columns").

    ``cols[n, (c, u, v), (i, j)] = xp[n, c, i*sh + u, j*sw + v]``: column ``(i, j)`` of image
    ``n`` holds the window that output ``(i, j)`` sees, so that a convolution becomes one
    matrix product (see :func:`conv2d_forward`). Each input pixel is copied into up to
    ``KH * KW`` columns.

    Shapes
    ------
    x : (N, C, H, W)
    cols : (N, C*KH*KW, H_out*W_out), rows ordered ``(c, u, v)`` like ``w.reshape(F, C*KH*KW)``
    """
    if x.ndim != 4:
        raise ValueError(f"im2col expects x of shape (N, C, H, W), got shape {x.shape}")
    (KH, KW), (sh, sw), (ph, pw) = pair(kernel_size, "kernel_size"), pair(stride, "stride"), pair(padding, "padding")
    N, C, H, W = x.shape
    H_out, W_out = conv_output_size(H, KH, sh, ph), conv_output_size(W, KW, sw, pw)
    xp = _pad(x, ph, pw)                                                     # (N, C, H + 2ph, W + 2pw)
    cols = np.empty((N, C, KH * KW, H_out, W_out), dtype=x.dtype)
    for k, window in enumerate(window_slices(KH, KW, sh, sw, H_out, W_out)):
        cols[:, :, k] = xp[window]                                           # (N, C, H_out, W_out)
    return cols.reshape(N, C * KH * KW, H_out * W_out)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """The transpose of :func:`im2col`: adds every column back onto the window it came from.

    ``dx[n, c, i*sh + u - ph, j*sw + v - pw] += cols[n, (c, u, v), (i, j)]``. A pixel seen by
    several windows receives the sum of their entries; the padding's entries are dropped.

    Shapes: ``cols (N, C*KH*KW, H_out*W_out)``, ``x_shape = (N, C, H, W)`` -> ``dx (N, C, H, W)``.
    """
    (KH, KW), (sh, sw), (ph, pw) = pair(kernel_size, "kernel_size"), pair(stride, "stride"), pair(padding, "padding")
    if len(x_shape) != 4:
        raise ValueError(f"col2im: x_shape must be (N, C, H, W), got {tuple(x_shape)}")
    N, C, H, W = x_shape
    H_out, W_out = conv_output_size(H, KH, sh, ph), conv_output_size(W, KW, sw, pw)
    if cols.shape != (N, C * KH * KW, H_out * W_out):
        raise ValueError(f"cols must have shape (N, C*KH*KW, H_out*W_out) = {(N, C * KH * KW, H_out * W_out)}, "
                         f"got {cols.shape}")
    cols = cols.reshape(N, C, KH * KW, H_out, W_out)
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)         # (N, C, H + 2ph, W + 2pw)
    for k, window in enumerate(window_slices(KH, KW, sh, sw, H_out, W_out)):
        dxp[window] += cols[:, :, k]
    return dxp[:, :, ph : ph + H, pw : pw + W]


def conv2d_forward(x, w, b, stride=1, padding=0):
    """2-D cross-correlation as one matrix product: :func:`im2col`, then ``w`` times the columns.

    ``y[n, f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] xp[n, c, i*sh + u, j*sw + v]``
    ``= b[f] + sum_{(c, u, v)} w2d[f, (c, u, v)] cols[n, (c, u, v), (i, j)]`` with ``w2d = w.reshape(F, C*KH*KW)``.

    This is the readable version; :mod:`cnn_lib.fast_conv` computes the same sums faster
    (it is what :func:`conv2d` and :class:`cnn_lib.Conv2D` run).

    Shapes
    ------
    x : (N, C, H, W) ; w : (F, C, KH, KW) ; b : (F,) or None
    returns y (N, F, H_out, W_out), ``H_out = (H + 2*ph - KH) // sh + 1`` (same for W),
    and a :class:`ConvCache` for :func:`conv2d_backward`.
    """
    sh, sw, ph, pw, H_out, W_out = check_conv2d(x, w, b, stride, padding)
    N = x.shape[0]
    F, C, KH, KW = w.shape
    cols = im2col(x, (KH, KW), (sh, sw), (ph, pw))                          # (N, C*KH*KW, H_out*W_out)
    y = np.matmul(w.reshape(F, C * KH * KW), cols)                          # (N, F, H_out*W_out)
    y = y.reshape(N, F, H_out, W_out)
    if b is not None:
        y += b.reshape(1, F, 1, 1)
    return y, ConvCache("im2col", x.shape, w, (sh, sw), (ph, pw), cols)


def conv2d_backward(dy, cache, need_dx=True):
    """Gradients of :func:`conv2d_forward` from its cache (no forward pass is recomputed).

    With ``Y = w2d cols + b`` for each image (``w2d = w.reshape(F, C*KH*KW)``):

    * ``dw = sum_n dY_n cols_n^T``: each filter weight, times the input it saw, summed;
    * ``db = sum_{n, i, j} dy[n, :, i, j]``;
    * ``dx = col2im(w2d^T dY)``: each output gradient sent back, weighted by ``w``, to the
      pixels of its window (this is the *full convolution* of ``dy``, dilated by the stride,
      with the kernel, summed over the filters: eqs. ``conv-bp-multi`` and ``conv-bp-stride``).

    With ``need_dx=False`` (the first layer of a network) ``dx`` is ``None``.

    Shapes
    ------
    dy : (N, F, H_out, W_out)
    returns dx (N, C, H, W), dw (F, C, KH, KW), db (F,)
    """
    if getattr(cache, "kind", None) != "im2col":
        raise TypeError("functional.conv2d_backward takes the cache returned by functional.conv2d_forward"
                        + (" (for fast_conv.conv2d_forward's, call fast_conv.conv2d_backward)"
                           if getattr(cache, "kind", None) == "fast" else f", got {type(cache).__name__}"))
    N, _, H, W = cache.x_shape
    F, C, KH, KW = cache.w.shape
    (sh, sw), (ph, pw) = cache.stride, cache.padding
    check_dy(dy, (N, F, conv_output_size(H, KH, sh, ph), conv_output_size(W, KW, sw, pw)), "conv2d_backward")
    dY = dy.reshape(N, F, -1)                                               # (N, F, H_out*W_out)
    db = dy.sum(axis=(0, 2, 3))                                             # (F,)
    dw = np.matmul(dY, cache.cols.transpose(0, 2, 1)).sum(axis=0)           # (F, C*KH*KW)
    dw = dw.reshape(F, C, KH, KW)
    if not need_dx:
        return None, dw, db
    dcols = np.matmul(cache.w.reshape(F, C * KH * KW).T, dY)                # (N, C*KH*KW, H_out*W_out)
    dx = col2im(dcols, cache.x_shape, (KH, KW), cache.stride, cache.padding)  # (N, C, H, W)
    return dx, dw, db


def conv2d(x, w, b, stride=1, padding=0):
    """2-D cross-correlation of a batch with a bank of filters (eqs. ``conv-csp-stride`` and
    ``conv-csp-size``; the report's eqs. 17 and 18), forward only.

    ``y[n, f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] * xp[n, c, i*sh + u, j*sw + v]``
    where ``xp`` is ``x`` zero-padded by ``padding`` on each side.

    Computed by the fast version (:func:`cnn_lib.fast_conv.conv2d_forward`); the same
    numbers as ``conv2d_forward(x, w, b, stride, padding)[0]`` up to the order of the sums.

    Shapes
    ------
    x : (N, C, H, W)
    w : (F, C, KH, KW)
    b : (F,) or None
    y : (N, F, H_out, W_out), ``H_out = (H + 2*ph - KH) // sh + 1`` (same for W)
    """
    return fast_conv.conv2d_forward(x, w, b, stride, padding, keep_cache=False)[0]


def conv2d_naive(x, w, b, stride=1, padding=0):
    """Loop version of :func:`conv2d`, indices as in eq. ``conv-csp-stride`` (the convolution
    with stride and zero padding of part II; its ``(m, n)`` are ``(u, v)`` here).

    For every image ``n``, filter ``f`` and output position ``(i, j)``, the filter and the window
    of the padded input that starts at ``(i*sh, j*sw)`` are multiplied entry by entry and the
    products summed (a Frobenius inner product; the report's eq. 6 calls it a Hadamard product,
    which is the entry-by-entry product alone), and the bias is added once.

    Shapes: as :func:`conv2d`.
    """
    sh, sw, ph, pw, H_out, W_out = check_conv2d(x, w, b, stride, padding)
    N = x.shape[0]
    F, C, KH, KW = w.shape
    xp = _pad(x, ph, pw)
    y = np.zeros((N, F, H_out, W_out), dtype=np.result_type(x, w))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = xp[n, :, i * sh : i * sh + KH, j * sw : j * sw + KW]  # (C, KH, KW)
                    y[n, f, i, j] = np.sum(window * w[f]) + (0 if b is None else b[f])
    return y


def conv2d_backward_naive(dy, x, w, stride=1, padding=0, need_dx=True):
    """Loop version of :func:`conv2d_backward` (it takes ``x`` and ``w``, not a cache): each output ``y[n, f, i, j]``
    sends ``dy[n, f, i, j]`` back to the bias, to the filter (times the window) and
    to the window (times the filter).

    Shapes: as :func:`conv2d_backward`.
    """
    sh, sw, ph, pw, H_out, W_out = check_conv2d(x, w, None, stride, padding)
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    check_dy(dy, (N, F, H_out, W_out), "conv2d_backward_naive")
    xp = _pad(x, ph, pw)
    dxp, dw, db = np.zeros(xp.shape, dy.dtype), np.zeros(w.shape, dy.dtype), np.zeros(F, dy.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    g = dy[n, f, i, j]
                    db[f] += g
                    dw[f] += g * xp[n, :, i * sh : i * sh + KH, j * sw : j * sw + KW]
                    dxp[n, :, i * sh : i * sh + KH, j * sw : j * sw + KW] += g * w[f]
    dx = dxp[:, :, ph : ph + H, pw : pw + W].copy() if need_dx else None
    return dx, dw, db


# --------------------------------------------------------------------------- pooling
class PoolCache(NamedTuple):
    """What :func:`maxpool2d_backward` / :func:`avgpool2d_backward` need from the forward pass:
    ``kind`` (``"max"`` or ``"avg"``), the input ``x``, the output ``y`` (max pooling only,
    else ``None``), and ``kernel_size`` and ``stride`` as pairs."""
    kind: str
    x: np.ndarray
    y: np.ndarray | None
    kernel_size: tuple
    stride: tuple


def _check_pool_cache(dy, cache, kind):
    if getattr(cache, "kind", None) != kind:
        raise TypeError(f"{kind}pool2d_backward takes the cache returned by {kind}pool2d_forward, got "
                        + (f"one of kind {cache.kind!r}" if hasattr(cache, "kind") else type(cache).__name__))
    KH, KW, sh, sw, H_out, W_out = check_pool2d(cache.x, cache.kernel_size, cache.stride)
    check_dy(dy, cache.x.shape[:2] + (H_out, W_out), f"{kind}pool2d_backward")
    return KH, KW, sh, sw, H_out, W_out


def maxpool2d_forward(x, kernel_size=2, stride=None):
    """Max pooling: ``y[n, c, i, j] = max_{u, v} x[n, c, i*sh + u, j*sw + v]``.

    ``stride`` defaults to the window size (non-overlapping windows), as in the layers.
    Rows or columns that no window reaches are ignored (as in PyTorch).

    Shapes: ``x (N, C, H, W)`` -> ``y (N, C, H_out, W_out)``, ``H_out = (H - KH) // sh + 1``,
    and a :class:`PoolCache` for :func:`maxpool2d_backward`.
    """
    KH, KW, sh, sw, H_out, W_out = check_pool2d(x, kernel_size, stride)
    y = None
    for sl in window_slices(KH, KW, sh, sw, H_out, W_out):
        y = x[sl].copy() if y is None else np.maximum(y, x[sl], out=y)
    return y, PoolCache("max", x, y, (KH, KW), (sh, sw))


def maxpool2d(x, kernel_size=2, stride=None):
    """:func:`maxpool2d_forward` without the cache: ``x (N, C, H, W)`` -> ``y (N, C, H_out, W_out)``."""
    return maxpool2d_forward(x, kernel_size, stride)[0]


def maxpool2d_backward(dy, cache):
    """Gradient of :func:`maxpool2d_forward` from its cache: each ``dy[n, c, i, j]`` goes to
    the arg-max of its window; on a tie, to the first maximum in row-major order (as the
    loop version and PyTorch do). Overlapping windows add up.

    Shapes: ``dy (N, C, H_out, W_out)`` -> ``dx (N, C, H, W)``.
    """
    KH, KW, sh, sw, H_out, W_out = _check_pool_cache(dy, cache, "max")
    x, y = cache.x, cache.y
    dx = np.zeros_like(x, dtype=dy.dtype)
    routed = np.zeros(y.shape, dtype=bool)   # windows whose gradient has gone to their arg-max
    for sl in window_slices(KH, KW, sh, sw, H_out, W_out):
        first = (x[sl] == y) & ~routed          # the first maximum in row-major order wins a tie
        routed |= first
        dx[sl] += dy * first
    return dx


def maxpool2d_naive(x, kernel_size=2, stride=None):
    """Loop version of :func:`maxpool2d`.

    Shapes: as :func:`maxpool2d`.
    """
    KH, KW, sh, sw, H_out, W_out = check_pool2d(x, kernel_size, stride)
    N, C = x.shape[:2]
    y = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    y[n, c, i, j] = np.max(x[n, c, i * sh : i * sh + KH, j * sw : j * sw + KW])
    return y


def maxpool2d_backward_naive(dy, x, kernel_size=2, stride=None):
    """Loop version of :func:`maxpool2d_backward` (``np.argmax`` returns the first maximum).

    Shapes: as :func:`maxpool2d_backward`.
    """
    KH, KW, sh, sw, H_out, W_out = check_pool2d(x, kernel_size, stride)
    N, C = x.shape[:2]
    check_dy(dy, (N, C, H_out, W_out), "maxpool2d_backward_naive")
    dx = np.zeros_like(x, dtype=dy.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * sh : i * sh + KH, j * sw : j * sw + KW]
                    u, v = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * sh + u, j * sw + v] += dy[n, c, i, j]
    return dx


def avgpool2d_forward(x, kernel_size=2, stride=None):
    """Average pooling: ``y[n, c, i, j] = mean_{u, v} x[n, c, i*sh + u, j*sw + v]``.

    Shapes: ``x (N, C, H, W)`` -> ``y (N, C, H_out, W_out)``, and a :class:`PoolCache` for
    :func:`avgpool2d_backward`.
    """
    KH, KW, sh, sw, H_out, W_out = check_pool2d(x, kernel_size, stride)
    y = None
    for sl in window_slices(KH, KW, sh, sw, H_out, W_out):
        y = x[sl].copy() if y is None else np.add(y, x[sl], out=y)
    return y / np.asarray(KH * KW, dtype=x.dtype), PoolCache("avg", x, None, (KH, KW), (sh, sw))


def avgpool2d(x, kernel_size=2, stride=None):
    """:func:`avgpool2d_forward` without the cache: ``x (N, C, H, W)`` -> ``y (N, C, H_out, W_out)``."""
    return avgpool2d_forward(x, kernel_size, stride)[0]


def avgpool2d_backward(dy, cache):
    """Gradient of :func:`avgpool2d_forward` from its cache: each ``dy`` is spread evenly
    over its window. Overlapping windows add up.

    Shapes: ``dy (N, C, H_out, W_out)`` -> ``dx (N, C, H, W)``.
    """
    KH, KW, sh, sw, H_out, W_out = _check_pool_cache(dy, cache, "avg")
    dx = np.zeros_like(cache.x, dtype=dy.dtype)
    share = dy / np.asarray(KH * KW, dtype=dy.dtype)
    for sl in window_slices(KH, KW, sh, sw, H_out, W_out):
        dx[sl] += share
    return dx


def avgpool2d_naive(x, kernel_size=2, stride=None):
    """Loop version of :func:`avgpool2d`.

    Shapes: as :func:`avgpool2d`.
    """
    KH, KW, sh, sw, H_out, W_out = check_pool2d(x, kernel_size, stride)
    N, C = x.shape[:2]
    y = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    y[n, c, i, j] = np.mean(x[n, c, i * sh : i * sh + KH, j * sw : j * sw + KW])
    return y


def avgpool2d_backward_naive(dy, x, kernel_size=2, stride=None):
    """Loop version of :func:`avgpool2d_backward`.

    Shapes: as :func:`avgpool2d_backward`.
    """
    KH, KW, sh, sw, H_out, W_out = check_pool2d(x, kernel_size, stride)
    N, C = x.shape[:2]
    check_dy(dy, (N, C, H_out, W_out), "avgpool2d_backward_naive")
    dx = np.zeros_like(x, dtype=dy.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    dx[n, c, i * sh : i * sh + KH, j * sw : j * sw + KW] += dy[n, c, i, j] / (KH * KW)
    return dx


# --------------------------------------------------------------------------- activations
def relu(x):
    """ReLU: ``max(0, x)``, element-wise. Any shape.

    Computed as ``np.maximum(x, zeros)``, against an array of zeros of ``x``'s shape kept from
    call to call (:func:`cnn_lib.fast_conv.workspace`, never written to): against the scalar 0,
    NumPy 2.4 takes a path 3.6 times slower on an AVX-512 processor (44 against 12 us for the
    seed network's first layer at batch 32)."""
    x = np.asarray(x)
    if x.dtype.kind != "f" or x.size < 4096:          # small or not floats: the plain way
        return np.maximum(x, 0)
    return np.maximum(x, fast_conv.workspace("relu zeros", x.shape, x.dtype))


def relu_backward(dy, x):
    """Gradient of :func:`relu`: ``dy`` where ``x > 0``, else 0 (the derivative at 0 is taken as 0).

    Shapes: ``dy``, ``x`` of one shape -> ``dx`` of that shape.
    """
    check_dy(dy, np.shape(x), "relu_backward")
    return dy * (x > 0)


def sigmoid(x):
    """Logistic sigmoid, eq. ``part1-act-eq-sigmoid`` (the report's eq. 3): ``1 / (1 + exp(-x))``,
    computed without overflow.

    Shapes: any -> the same shape.
    """
    e = np.exp(-np.abs(x))               # never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(dy, x):
    """Gradient of :func:`sigmoid`: ``dy * s (1 - s)`` with ``s = sigmoid(x)``.

    Shapes: ``dy``, ``x`` of one shape -> ``dx`` of that shape.
    """
    check_dy(dy, np.shape(x), "sigmoid_backward")
    s = sigmoid(x)
    return dy * s * (1 - s)


def arctan(x):
    """Arctangent activation, element-wise (range ``(-pi/2, pi/2)``).

    Shapes: any -> the same shape.
    """
    return np.arctan(x)


def arctan_backward(dy, x):
    """Gradient of :func:`arctan`: ``dy / (1 + x^2)``.

    Shapes: ``dy``, ``x`` of one shape -> ``dx`` of that shape.
    """
    check_dy(dy, np.shape(x), "arctan_backward")
    return dy / (1 + x * x)


def _elementwise_naive(f, *arrays):
    out = np.empty(arrays[0].shape, dtype=np.result_type(*arrays, np.float32))
    flats = [a.reshape(-1) for a in arrays]
    flat_out = out.reshape(-1)
    for k in range(flat_out.size):
        flat_out[k] = f(*(a[k] for a in flats))
    return out


def relu_naive(x):
    """Loop version of :func:`relu` (a NaN stays NaN, as with ``np.maximum``).

    Shapes: as :func:`relu`.
    """
    return _elementwise_naive(lambda v: v if v > 0 or v != v else 0.0, x)


def relu_backward_naive(dy, x):
    """Loop version of :func:`relu_backward`.

    Shapes: as :func:`relu_backward`.
    """
    check_dy(dy, np.shape(x), "relu_backward_naive")
    return _elementwise_naive(lambda g, v: g if v > 0 else 0.0, dy, x)


def sigmoid_naive(x):
    """Loop version of :func:`sigmoid` (eq. ``part1-act-eq-sigmoid``), with the same guard against overflow.

    Shapes: as :func:`sigmoid`.
    """
    import math

    def s(v):
        return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))
    return _elementwise_naive(s, x)


def sigmoid_backward_naive(dy, x):
    """Loop version of :func:`sigmoid_backward`.

    Shapes: as :func:`sigmoid_backward`.
    """
    check_dy(dy, np.shape(x), "sigmoid_backward_naive")
    s = sigmoid_naive(x)
    return _elementwise_naive(lambda g, v: g * v * (1 - v), dy, s)


def arctan_naive(x):
    """Loop version of :func:`arctan`.

    Shapes: as :func:`arctan`.
    """
    import math
    return _elementwise_naive(math.atan, x)


def arctan_backward_naive(dy, x):
    """Loop version of :func:`arctan_backward`.

    Shapes: as :func:`arctan_backward`.
    """
    check_dy(dy, np.shape(x), "arctan_backward_naive")
    return _elementwise_naive(lambda g, v: g / (1 + v * v), dy, x)


# --------------------------------------------------------------------------- softmax and losses
def _check_logits(z):
    if np.ndim(z) != 2:
        raise ValueError(f"expected logits of shape (N, K), got shape {np.shape(z)}")


def log_softmax(z, axis=-1):
    """``log softmax(z)``, stably: ``z - max(z) - log(sum(exp(z - max(z))))``.

    Shapes: ``z (N, K)`` (or any shape, along ``axis``) -> the same shape.
    """
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(z, axis=-1):
    """Softmax, eq. ``part1-softmax-eq-softmax`` (the report's eq. 4): ``exp(z_k) / sum_j exp(z_j)``,
    shifted by the max so that logits of any size give finite probabilities that sum to one.

    Shapes: ``z (N, K)`` (or any shape, along ``axis``) -> the same shape.
    """
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_naive(z):
    """Loop version of :func:`softmax` over the last axis of ``z (N, K)``.

    Shapes: ``z (N, K)`` -> ``(N, K)``.
    """
    import math
    _check_logits(z)
    N, K = z.shape
    p = np.zeros(z.shape, dtype=np.result_type(z, np.float32))
    for n in range(N):
        m = max(z[n, k] for k in range(K))
        total = sum(math.exp(z[n, k] - m) for k in range(K))
        for k in range(K):
            p[n, k] = math.exp(z[n, k] - m) / total
    return p


def log_softmax_naive(z):
    """Loop version of :func:`log_softmax` over the last axis of ``z (N, K)``.

    Shapes: ``z (N, K)`` -> ``(N, K)``.
    """
    import math
    _check_logits(z)
    N, K = z.shape
    out = np.zeros(z.shape, dtype=np.result_type(z, np.float32))
    for n in range(N):
        m = max(z[n, k] for k in range(K))
        lse = m + math.log(sum(math.exp(z[n, k] - m) for k in range(K)))
        for k in range(K):
            out[n, k] = z[n, k] - lse
    return out


def nll_loss(log_probs, y):
    """Negative log-likelihood, eq. ``part1-softmax-eq-nll`` (the report's eq. 5), averaged over the batch:
    ``-(1/N) sum_n log p[n, y_n]``. Shapes: ``log_probs (N, K)``, ``y (N,)`` -> scalar."""
    y = check_labels(log_probs, y, mean=True)
    return -log_probs[np.arange(len(y)), y].mean()


def nll_loss_naive(log_probs, y):
    """Loop version of :func:`nll_loss`.

    Shapes: as :func:`nll_loss`.
    """
    y = check_labels(log_probs, y, mean=True)
    total = 0.0
    for n in range(len(y)):
        total -= log_probs[n, y[n]]
    return total / len(y)


def cross_entropy(logits, y):
    """Softmax followed by the negative log-likelihood, mean over the batch, computed
    from the logits through :func:`log_softmax` (never ``log`` of a probability).

    Shapes: ``logits (N, K)``, ``y (N,)`` integer labels -> scalar.
    """
    return nll_loss(log_softmax(logits), y)


def cross_entropy_backward(logits, y):
    """Gradient of :func:`cross_entropy` with respect to the logits: ``(p - onehot(y)) / N``.

    Shapes: ``logits (N, K)``, ``y (N,)`` -> ``dlogits (N, K)``.
    """
    y = check_labels(logits, y)
    d = softmax(logits)
    d[np.arange(len(y)), y] -= 1
    return d / np.asarray(len(y), dtype=d.dtype)


def cross_entropy_naive(logits, y):
    """Loop version of :func:`cross_entropy`.

    Shapes: as :func:`cross_entropy`.
    """
    check_labels(logits, y, mean=True)
    return nll_loss_naive(log_softmax_naive(logits), y)


def cross_entropy_backward_naive(logits, y):
    """Loop version of :func:`cross_entropy_backward`: ``p[n, k] - [k == y_n]``, over ``N``.

    Shapes: as :func:`cross_entropy_backward`.
    """
    y = check_labels(logits, y)
    p = softmax_naive(logits)
    N, K = logits.shape
    for n in range(N):
        for k in range(K):
            p[n, k] = (p[n, k] - (1.0 if k == y[n] else 0.0)) / N
    return p


# --------------------------------------------------------------------------- dropout
def dropout_forward(x, p, rng):
    """Inverted dropout: each entry of ``x`` is kept with probability ``1 - p`` and scaled
    by ``1 / (1 - p)``, or set to zero (dropped) with probability ``p``:

    ``y = x * mask``,  ``mask = keep / (1 - p)``,  ``keep ~ Bernoulli(1 - p)`` independently,

    so that ``E[y] = x``: at evaluation the layer is the identity and needs no rescaling.

    Parameters
    ----------
    x : array of any shape
    p : float, the probability of dropping an entry, ``0 <= p < 1``
    rng : numpy Generator (or a seed): one uniform number ``u`` is drawn per entry, in
        C order, and the entry is kept when ``u >= p`` (as in :func:`dropout_naive`)

    Returns
    -------
    y : like ``x``
    mask : like ``x`` (same dtype), 0 or ``1 / (1 - p)``; :func:`dropout_backward` needs it.

    Shapes: ``x`` any -> ``y``, ``mask`` the same shape.
    """
    p = check_dropout_p(p)
    x = np.asarray(x)
    keep = np.random.default_rng(rng).random(x.shape) >= p        # float64 uniforms, any dtype of x
    mask = keep.astype(x.dtype) * np.asarray(1.0 / (1.0 - p), dtype=x.dtype)
    return x * mask, mask


def dropout_backward(dy, mask):
    """Gradient of :func:`dropout_forward` with respect to ``x``: ``dx = dy * mask`` (the
    mask is fixed once drawn, so ``y`` is linear in ``x``). Shapes: ``dy``, ``mask`` -> ``dx``,
    all the same."""
    if np.shape(dy) != np.shape(mask):
        raise ValueError(f"dy has shape {np.shape(dy)}, the mask {np.shape(mask)}")
    return dy * mask


def dropout_naive(x, p, rng):
    """Loop version of :func:`dropout_forward`, one entry at a time: draw ``u``, keep the
    entry (times ``1 / (1 - p)``) when ``u >= p``, else write 0. With a Generator in the same
    state it returns the same ``(y, mask)`` as the vectorized version."""
    p = check_dropout_p(p)
    x = np.asarray(x)
    rng = np.random.default_rng(rng)
    scale = 1.0 / (1.0 - p)
    y, mask = np.zeros_like(x), np.zeros_like(x)
    for index in np.ndindex(x.shape):              # C order, like rng.random(x.shape)
        u = rng.random()
        if u >= p:
            mask[index] = scale
            y[index] = x[index] * scale
    return y, mask


__all__ += ["dropout_forward", "dropout_backward", "dropout_naive"]
