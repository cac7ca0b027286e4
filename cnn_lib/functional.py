"""Stateless forward and backward functions, each beside its plain-loop twin.

Every operation comes in two versions with the same signature:

* the fast one (``conv2d``, ``maxpool2d``, ...) works on whole batches with NumPy
  array operations and matrix products: it has no Python loop over images, pixels
  or channels (at most a loop over the few offsets inside a kernel window);
* the ``*_naive`` one is a plain loop whose indices follow the book's equations.
  It is slow, obviously correct, and the tests compare the two.

Conventions (the book's and PyTorch's): images are ``(N, C, H, W)``, convolution
weights ``(F, C, KH, KW)`` with biases ``(F,)``, dense weights ``(D, M)`` so that
``y = x @ w + b``, logits ``(N, K)`` and labels integers ``(N,)``.
``stride`` and ``padding`` accept an int or a pair ``(vertical, horizontal)``.

"Convolution" here is, as in every deep-learning library, a cross-correlation:
the kernel is not flipped (the book's chapter on convolution versus
cross-correlation explains why that does not matter for learning).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "conv_output_size", "set_num_threads", "get_num_threads",
    "dense", "dense_backward", "dense_naive", "dense_backward_naive",
    "conv2d", "conv2d_backward", "conv2d_naive", "conv2d_backward_naive",
    "maxpool2d", "maxpool2d_backward", "maxpool2d_naive", "maxpool2d_backward_naive",
    "avgpool2d", "avgpool2d_backward", "avgpool2d_naive", "avgpool2d_backward_naive",
    "relu", "relu_backward", "relu_naive", "relu_backward_naive",
    "sigmoid", "sigmoid_backward", "sigmoid_naive", "sigmoid_backward_naive",
    "arctan", "arctan_backward", "arctan_naive", "arctan_backward_naive",
    "softmax", "softmax_naive", "log_softmax", "log_softmax_naive",
    "nll_loss", "nll_loss_naive", "cross_entropy", "cross_entropy_backward",
    "cross_entropy_naive", "cross_entropy_backward_naive",
]


# --------------------------------------------------------------------------- helpers
def _pair(value, name):
    """Return ``(v, v)`` for an int, the pair itself for a pair of non-negative ints."""
    if isinstance(value, (int, np.integer)):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(int(v) for v in value)
        except TypeError:
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
        if len(pair) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair


def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1):
    """Output length of a convolution or pooling along one axis.

    ``n_out = floor((n + 2 p - d (k - 1) - 1) / s) + 1``, which for ``d = 1`` is the
    book's ``n_out = floor((n + 2p - k) / s) + 1``.

    Raises ``ValueError`` with the reason when the combination is impossible
    (a kernel larger than the padded input, a stride below 1, ...).
    """
    for name, v in (("input size", n), ("kernel size", kernel_size), ("stride", stride),
                    ("padding", padding), ("dilation", dilation)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{name} must be an integer, got {v!r}")
    n, k, s, p, d = (int(v) for v in (n, kernel_size, stride, padding, dilation))
    if n < 1:
        raise ValueError(f"input size must be at least 1, got {n}")
    if k < 1:
        raise ValueError(f"kernel size must be at least 1, got {k}")
    if s < 1:
        raise ValueError(f"stride must be at least 1, got {s}")
    if p < 0:
        raise ValueError(f"padding must be non-negative, got {p}")
    if d < 1:
        raise ValueError(f"dilation must be at least 1, got {d}")
    span = d * (k - 1) + 1
    if span > n + 2 * p:
        raise ValueError(
            f"kernel of size {k}" + (f" (dilation {d}, span {span})" if d > 1 else "")
            + f" does not fit in the input of size {n} padded by {p} on each side ({n + 2 * p})"
        )
    return (n + 2 * p - span) // s + 1


def _check_conv_args(x, w, b, stride, padding):
    if x.ndim != 4:
        raise ValueError(f"conv2d expects x of shape (N, C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"conv2d expects w of shape (F, C, KH, KW), got shape {w.shape}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"x has {x.shape[1]} channels but w expects {w.shape[1]} (w has shape {w.shape})"
        )
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"b must have shape ({w.shape[0]},) to match w {w.shape}, got {b.shape}")
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    H_out = conv_output_size(x.shape[2], w.shape[2], sh, ph)
    W_out = conv_output_size(x.shape[3], w.shape[3], sw, pw)
    return sh, sw, ph, pw, H_out, W_out


def _pad(x, ph, pw):
    """Zero-pad the two spatial axes of ``x (N, C, H, W)``."""
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


# --------------------------------------------------------------------------- threads
# The fast convolution cuts a batch into chunks of at most _CHUNK images (so that the
# unrolled input stays in cache) and, like PyTorch, spreads the chunks over the cores.
# NumPy's matrix products and copies release the GIL, so plain threads run them in
# parallel: the calling thread takes every T-th chunk and T - 1 pool workers the others.
# Chunks are cut the same way whatever the number of threads, so results do not depend on it.
#
# While they run, each of those threads asks OpenBLAS (NumPy's BLAS in the Linux and
# Windows wheels) to do its matrix products on one thread: otherwise every small product
# wakes OpenBLAS's own threads, the cores are oversubscribed and a training step is ~30%
# slower. The setting is thread-local and the calling thread's is restored afterwards, so
# the rest of the program is not affected. With another BLAS this step is skipped.
_CHUNK = 16
_CHUNK_POSITIONS = 24 * 24
_FULL_UNROLL_BELOW = 16   # unroll whole kernel windows when C*KW is below this (see the forward)
_num_threads = max(1, min(2, os.cpu_count() or 1))
_pool = None


def _openblas_set_local_threads():
    """``openblas_set_num_threads_local`` of the OpenBLAS NumPy has loaded, or ``None``
    (another BLAS, or an OpenBLAS older than 0.3.27)."""
    import ctypes
    import glob

    candidates = []
    try:
        with open("/proc/self/maps") as maps:             # Linux: the libraries loaded
            candidates += [line.split()[-1] for line in maps if "openblas" in line.lower()]
    except OSError:
        pass
    root = os.path.dirname(np.__file__)
    for pattern in (root + ".libs/*openblas*", os.path.join(root, ".dylibs", "*openblas*")):
        candidates += glob.glob(pattern)
    for path in dict.fromkeys(candidates):
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


_blas_local = None


def _init_worker():
    if _blas_local:
        _blas_local(1)


def set_num_threads(n):
    """Number of threads the fast convolution spreads a batch over (default: 2 or fewer cores)."""
    global _num_threads, _pool
    n = int(n)
    if n < 1:
        raise ValueError(f"the number of threads must be at least 1, got {n}")
    if _pool is not None and n != _num_threads:
        _pool.shutdown(wait=True)
        _pool = None
    _num_threads = n


def get_num_threads():
    """See :func:`set_num_threads`."""
    return _num_threads


def _map(fn, items):
    """``[fn(item) for item in items]``, the items dealt out round-robin to the calling
    thread and the pool's workers when there is more than one item and more than one thread."""
    global _pool, _blas_local
    T = min(_num_threads, len(items))
    if T == 1:
        return [fn(item) for item in items]
    if _blas_local is None:
        _blas_local = _openblas_set_local_threads() or False
    if _pool is None:
        _pool = ThreadPoolExecutor(_num_threads - 1, thread_name_prefix="cnn_lib", initializer=_init_worker)
    futures = [_pool.submit(lambda group: [fn(item) for item in group], items[t::T]) for t in range(1, T)]
    previous = _blas_local(1) if _blas_local else None   # no BLAS threads while the workers run
    try:
        groups = [[fn(item) for item in items[0::T]]]
    finally:
        if previous is not None:
            _blas_local(previous)
    groups += [f.result() for f in futures]
    return [groups[i % T][i // T] for i in range(len(items))]


def _chunks(N, positions=None):
    """Slices cutting a batch of N images into chunks of at most ``size`` images.

    ``size`` is _CHUNK (16) for outputs of more than _CHUNK_POSITIONS / 2 (24 x 24 / 2)
    positions per image. Outputs 2, 4, 8, ... times smaller get chunks 2, 4, 8, ... times
    larger (powers of two: batches of 32 or 128 still split evenly), so that a chunk keeps
    about as much work and its fixed costs do not dominate; but never more than half the
    batch, so that both cores get a chunk. The size depends only on the shapes, never on the
    number of threads, so results do not either.
    """
    size = _CHUNK
    if positions:
        while size * positions * 2 <= _CHUNK * _CHUNK_POSITIONS and size * 2 <= -(-N // 2):
            size *= 2
    return [slice(i, min(i + size, N)) for i in range(0, N, size)]


# --------------------------------------------------------------------------- dense
def dense(x, w, b):
    """Fully connected layer, eq. (1): ``y = x w + b``.

    Shapes: ``x (N, D_in)``, ``w (D_in, D_out)``, ``b (D_out,)`` -> ``y (N, D_out)``.
    """
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(f"dense expects x (N, D_in) and w (D_in, D_out), got x {x.shape} and w {w.shape}")
    return x @ w + b


def dense_backward(dy, x, w):
    """Gradients of :func:`dense`: ``dx = dy w^T``, ``dw = x^T dy``, ``db = sum_n dy``.

    Shapes: ``dy (N, D_out)``, ``x (N, D_in)``, ``w (D_in, D_out)`` -> ``dx (N, D_in), dw (D_in, D_out), db (D_out,)``.
    """
    return dy @ w.T, x.T @ dy, dy.sum(axis=0)


def dense_naive(x, w, b):
    """Loop version of :func:`dense`: ``y[n, m] = b[m] + sum_d x[n, d] w[d, m]``."""
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
    """Loop version of :func:`dense_backward`, one term of the chain rule at a time."""
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
def _conv2d_forward_chunk(x, w, b, stride=1, padding=0, out=None):
    """Fast cross-correlation of one chunk; returns ``(y, cols)`` where ``cols`` is reused by backward.

    The input is unrolled along the kernel *width* only (5x the input instead of
    25x for a 5x5 kernel): ``cols[n, c, kw, h, j] = xp[n, c, h, j*sw + kw]``.
    For each kernel row ``kh`` the rows ``kh, kh + sh, ...`` of ``cols`` form a
    ``(C*KW, H_out*W_out)`` matrix per image (a view when ``sh == 1``), and one
    batched matrix product with ``w[:, :, kh, :]`` adds that row's contribution.
    ``out``: an optional C-contiguous ``(N, F, H_out, W_out)`` array to write ``y`` into.
    """
    sh, sw, ph, pw, H_out, W_out = _check_conv_args(x, w, b, stride, padding)
    N, C = x.shape[:2]
    F, _, KH, KW = w.shape
    xp = _pad(x, ph, pw)                                                    # (N, C, Hp, Wp)
    if C * KW < _FULL_UNROLL_BELOW:
        # Few input channels (the first layer): a kernel row alone would make products of
        # depth C*KW (5 for MNIST), too shallow to be fast. Unroll the whole window
        # (classic im2col, cheap when C is small) and make one product of depth C*KH*KW.
        win = sliding_window_view(xp, (KH, KW), axis=(2, 3))[:, :, ::sh, ::sw]  # (N, C, H_out, W_out, KH, KW)
        cols = np.ascontiguousarray(win.transpose(0, 1, 4, 5, 2, 3))       # (N, C, KH, KW, H_out, W_out)
        y3 = None if out is None else out.reshape(N, F, H_out * W_out)
        y = np.matmul(w.reshape(F, C * KH * KW), cols.reshape(N, C * KH * KW, H_out * W_out), out=y3)
        y = y.reshape(N, F, H_out, W_out)
        if b is not None:
            y += b.reshape(1, F, 1, 1).astype(y.dtype, copy=False)
        return y, cols
    win = sliding_window_view(xp, KW, axis=3)[:, :, :, : (W_out - 1) * sw + 1 : sw]  # (N, C, Hp, W_out, KW)
    cols = np.ascontiguousarray(win.transpose(0, 1, 4, 2, 3))               # (N, C, KW, Hp, W_out)
    y = None if out is None else out.reshape(N, F, H_out * W_out)
    for kh in range(KH):
        rows = cols[:, :, :, kh : kh + (H_out - 1) * sh + 1 : sh]           # (N, C, KW, H_out, W_out)
        rows = rows.reshape(N, C * KW, H_out * W_out)                       # a view when sh == 1
        wk = w[:, :, kh, :].reshape(F, C * KW)                              # (F, C*KW)
        if kh == 0:
            y = np.matmul(wk, rows, out=y)                                  # (N, F, H_out*W_out)
        else:
            y += np.matmul(wk, rows)
    y = y.reshape(N, F, H_out, W_out)
    if b is not None:
        y += b.reshape(1, F, 1, 1).astype(y.dtype, copy=False)
    return y, cols


def _conv2d_backward_chunk(dy, cols, x_shape, w, stride=1, padding=0, need_dx=True, dx_out=None):
    """Backward of :func:`_conv2d_forward_chunk` from its saved ``cols``.

    ``dw[:, :, kh, :]`` is one batched product of ``dy`` with the rows of ``cols`` that
    kernel row ``kh`` saw. ``dx`` is the *full convolution* of ``dy`` with ``w``: ``dy``
    dilated by the stride (``s - 1`` zeros between entries), padded by ``K - 1``, then
    cross-correlated with the kernel flipped in both axes and with the roles of input
    and output channels swapped.
    """
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    N, C, H, W = x_shape
    F, _, KH, KW = w.shape
    H_out, W_out = dy.shape[2], dy.shape[3]
    dy3 = dy.reshape(N, F, H_out * W_out)                                   # (N, F, H_out*W_out)
    db = dy.sum(axis=(0, 2, 3))                                             # (F,)
    # dL/dw[f, c, kh, kw] = sum_{n,i,j} dy[n, f, i, j] xp[n, c, i*sh + kh, j*sw + kw]
    if cols.ndim == 6:                                                       # whole windows unrolled
        K = C * KH * KW
        dw = np.matmul(dy3, cols.reshape(N, K, H_out * W_out).transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    else:                                                                    # one kernel row at a time
        dw = np.empty(w.shape, dtype=np.result_type(dy, cols))
        for kh in range(KH):
            rows = cols[:, :, :, kh : kh + (H_out - 1) * sh + 1 : sh]
            rows = rows.reshape(N, C * KW, H_out * W_out)                   # (N, C*KW, H_out*W_out)
            dw[:, :, kh, :] = np.matmul(dy3, rows.transpose(0, 2, 1)).sum(axis=0).reshape(F, C, KW)
    if not need_dx:
        return None, dw, db
    Hp, Wp = H + 2 * ph, W + 2 * pw
    # Rows/columns of the padded input that no window reached get no gradient: pad the
    # far side of dy by that remainder so the full convolution has the padded size.
    rh, rw = (Hp - KH) % sh, (Wp - KW) % sw
    dyp = np.zeros((N, F, (H_out - 1) * sh + 2 * KH - 1 + rh, (W_out - 1) * sw + 2 * KW - 1 + rw), dtype=dy.dtype)
    dyp[:, :, KH - 1 : KH - 1 + (H_out - 1) * sh + 1 : sh, KW - 1 : KW - 1 + (W_out - 1) * sw + 1 : sw] = dy
    w_flip = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, F, KH, KW)
    # The full convolution would give the gradient of the *padded* input (N, C, Hp, Wp);
    # only its inner H x W part is wanted, so feed it just the rows and columns of dyp that
    # part reads (no work spent on the gradient of the zero padding).
    dyp = dyp[:, :, ph : ph + H + KH - 1, pw : pw + W + KW - 1]
    dx, _ = _conv2d_forward_chunk(dyp, w_flip, None, out=dx_out)                  # (N, C, H, W)
    return dx, dw, db


def _conv2d_forward(x, w, b, stride=1, padding=0):
    """Fast cross-correlation of a batch, chunk by chunk (each chunk writes its part of ``y``);
    returns ``(y, caches)``."""
    *_, H_out, W_out = _check_conv_args(x, w, b, stride, padding)
    y = np.empty((x.shape[0], w.shape[0], H_out, W_out), dtype=np.result_type(x, w))
    caches = _map(lambda sl: _conv2d_forward_chunk(x[sl], w, b, stride, padding, out=y[sl])[1],
                  _chunks(x.shape[0], H_out * W_out) or [slice(0, 0)])
    return y, caches


def _conv2d_backward(dy, caches, x_shape, w, stride=1, padding=0, need_dx=True):
    """Backward of :func:`_conv2d_forward` from its saved ``caches``: chunk by chunk (each
    chunk writes its part of ``dx``), the chunks' ``dw`` and ``db`` added in a fixed order."""
    N = x_shape[0]
    slices = _chunks(N, dy.shape[2] * dy.shape[3]) or [slice(0, 0)]
    dx = np.empty(x_shape, dtype=np.result_type(dy, w)) if need_dx else None
    parts = _map(lambda k: _conv2d_backward_chunk(
        dy[slices[k]], caches[k], (slices[k].stop - slices[k].start,) + tuple(x_shape[1:]),
        w, stride, padding, need_dx, None if dx is None else dx[slices[k]]), range(len(slices)))
    dw, db = parts[0][1], parts[0][2]
    for p in parts[1:]:
        dw += p[1]
        db += p[2]
    return dx, dw, db


def conv2d(x, w, b, stride=1, padding=0):
    """2-D cross-correlation of a batch with a bank of filters (eq. 17 and 18).

    ``y[n, f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] * xp[n, c, i*s + u, j*s + v]``
    where ``xp`` is ``x`` zero-padded by ``padding`` on each side.

    Shapes
    ------
    x : (N, C, H, W)
    w : (F, C, KH, KW)
    b : (F,)
    y : (N, F, H_out, W_out), ``H_out = (H + 2*ph - KH) // sh + 1`` (same for W)
    """
    return _conv2d_forward(x, w, b, stride, padding)[0]


def conv2d_backward(dy, x, w, stride=1, padding=0, need_dx=True):
    """Gradients of :func:`conv2d` with respect to ``x``, ``w`` and ``b``.

    * ``dw`` is the cross-correlation of the (padded) input with ``dy``;
    * ``dx`` is the *full convolution* of ``dy`` with the kernel (each output
      gradient is sent back, weighted by ``w``, to the inputs that produced it);
    * ``db`` is the sum of ``dy`` over the batch and the positions.

    With ``need_dx=False`` (the first layer of a network) ``dx`` is ``None``.

    Shapes
    ------
    dy : (N, F, H_out, W_out) ; x : (N, C, H, W) ; w : (F, C, KH, KW)
    returns dx (N, C, H, W), dw (F, C, KH, KW), db (F,)
    """
    _, cols = _conv2d_forward(x, w, None, stride, padding)
    return _conv2d_backward(dy, cols, x.shape, w, stride, padding, need_dx)


def conv2d_naive(x, w, b, stride=1, padding=0):
    """Loop version of :func:`conv2d`, indices as in eq. (9), (17) and (18).

    For every image ``n``, filter ``f`` and output position ``(i, j)`` the
    Hadamard product (eq. 6) of the filter with the window of the padded input
    that starts at ``(i*sh, j*sw)`` is summed, and the bias added.
    """
    sh, sw, ph, pw, H_out, W_out = _check_conv_args(x, w, b, stride, padding)
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
    """Loop version of :func:`conv2d_backward`: each output ``y[n, f, i, j]``
    sends ``dy[n, f, i, j]`` back to the bias, to the filter (times the window) and
    to the window (times the filter)."""
    sh, sw, ph, pw, H_out, W_out = _check_conv_args(x, w, None, stride, padding)
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
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
def _check_pool_args(x, kernel_size, stride):
    if x.ndim != 4:
        raise ValueError(f"pooling expects x of shape (N, C, H, W), got shape {x.shape}")
    (KH, KW) = _pair(kernel_size, "kernel_size")
    (sh, sw) = _pair(kernel_size if stride is None else stride, "stride")
    H_out = conv_output_size(x.shape[2], KH, sh)
    W_out = conv_output_size(x.shape[3], KW, sw)
    return KH, KW, sh, sw, H_out, W_out


def _window_slices(KH, KW, sh, sw, H_out, W_out):
    """For every offset ``(u, v)`` inside the window, the slices of the input that it
    visits: ``x[..., u + i*sh, v + j*sw]`` for all output positions ``(i, j)``."""
    for u in range(KH):
        for v in range(KW):
            yield (Ellipsis, slice(u, u + (H_out - 1) * sh + 1, sh), slice(v, v + (W_out - 1) * sw + 1, sw))


def maxpool2d(x, kernel_size=2, stride=None):
    """Max pooling: ``y[n, c, i, j] = max_{u, v} x[n, c, i*sh + u, j*sw + v]``.

    ``stride`` defaults to the window size (non-overlapping windows), as in the layers.

    Shapes: ``x (N, C, H, W)`` -> ``y (N, C, H_out, W_out)``, ``H_out = (H - KH) // sh + 1``.
    Rows or columns that no window reaches are ignored (as in PyTorch).
    """
    KH, KW, sh, sw, H_out, W_out = _check_pool_args(x, kernel_size, stride)
    y = None
    for sl in _window_slices(KH, KW, sh, sw, H_out, W_out):
        y = x[sl].copy() if y is None else np.maximum(y, x[sl], out=y)
    return y


def _maxpool2d_backward(dy, x, y, kernel_size, stride):
    KH, KW, sh, sw, H_out, W_out = _check_pool_args(x, kernel_size, stride)
    dx = np.zeros_like(x, dtype=dy.dtype)
    routed = np.zeros(y.shape, dtype=bool)   # windows whose gradient has gone to their arg-max
    for sl in _window_slices(KH, KW, sh, sw, H_out, W_out):
        first = (x[sl] == y) & ~routed          # the first maximum in row-major order wins a tie
        routed |= first
        dx[sl] += dy * first
    return dx


def maxpool2d_backward(dy, x, kernel_size=2, stride=None):
    """Gradient of :func:`maxpool2d`: each ``dy[n, c, i, j]`` goes to the arg-max of its
    window; on a tie, to the first maximum in row-major order (as the loop version
    and PyTorch do). Overlapping windows add up.

    Shapes: ``dy (N, C, H_out, W_out)``, ``x (N, C, H, W)`` -> ``dx (N, C, H, W)``.
    """
    return _maxpool2d_backward(dy, x, maxpool2d(x, kernel_size, stride), kernel_size, stride)


def maxpool2d_naive(x, kernel_size=2, stride=None):
    """Loop version of :func:`maxpool2d`."""
    KH, KW, sh, sw, H_out, W_out = _check_pool_args(x, kernel_size, stride)
    N, C = x.shape[:2]
    y = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    y[n, c, i, j] = np.max(x[n, c, i * sh : i * sh + KH, j * sw : j * sw + KW])
    return y


def maxpool2d_backward_naive(dy, x, kernel_size=2, stride=None):
    """Loop version of :func:`maxpool2d_backward` (``np.argmax`` returns the first maximum)."""
    KH, KW, sh, sw, H_out, W_out = _check_pool_args(x, kernel_size, stride)
    N, C = x.shape[:2]
    dx = np.zeros_like(x, dtype=dy.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * sh : i * sh + KH, j * sw : j * sw + KW]
                    u, v = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * sh + u, j * sw + v] += dy[n, c, i, j]
    return dx


def avgpool2d(x, kernel_size=2, stride=None):
    """Average pooling: ``y[n, c, i, j] = mean_{u, v} x[n, c, i*sh + u, j*sw + v]``.

    Shapes: ``x (N, C, H, W)`` -> ``y (N, C, H_out, W_out)``.
    """
    KH, KW, sh, sw, H_out, W_out = _check_pool_args(x, kernel_size, stride)
    y = None
    for sl in _window_slices(KH, KW, sh, sw, H_out, W_out):
        y = x[sl].copy() if y is None else np.add(y, x[sl], out=y)
    return y / np.asarray(KH * KW, dtype=x.dtype)


def avgpool2d_backward(dy, x, kernel_size=2, stride=None):
    """Gradient of :func:`avgpool2d`: each ``dy`` is spread evenly over its window.

    Shapes: ``dy (N, C, H_out, W_out)``, ``x (N, C, H, W)`` -> ``dx (N, C, H, W)``.
    """
    KH, KW, sh, sw, H_out, W_out = _check_pool_args(x, kernel_size, stride)
    dx = np.zeros_like(x, dtype=dy.dtype)
    share = dy / np.asarray(KH * KW, dtype=dy.dtype)
    for sl in _window_slices(KH, KW, sh, sw, H_out, W_out):
        dx[sl] += share
    return dx


def avgpool2d_naive(x, kernel_size=2, stride=None):
    """Loop version of :func:`avgpool2d`."""
    KH, KW, sh, sw, H_out, W_out = _check_pool_args(x, kernel_size, stride)
    N, C = x.shape[:2]
    y = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    y[n, c, i, j] = np.mean(x[n, c, i * sh : i * sh + KH, j * sw : j * sw + KW])
    return y


def avgpool2d_backward_naive(dy, x, kernel_size=2, stride=None):
    """Loop version of :func:`avgpool2d_backward`."""
    KH, KW, sh, sw, H_out, W_out = _check_pool_args(x, kernel_size, stride)
    N, C = x.shape[:2]
    dx = np.zeros_like(x, dtype=dy.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    dx[n, c, i * sh : i * sh + KH, j * sw : j * sw + KW] += dy[n, c, i, j] / (KH * KW)
    return dx


# --------------------------------------------------------------------------- activations
def relu(x):
    """ReLU: ``max(0, x)``, element-wise. Any shape."""
    return np.maximum(x, 0)


def relu_backward(dy, x):
    """Gradient of :func:`relu`: ``dy`` where ``x > 0``, else 0 (the derivative at 0 is taken as 0)."""
    return dy * (x > 0)


def sigmoid(x):
    """Logistic sigmoid, eq. (3): ``1 / (1 + exp(-x))``, computed without overflow."""
    e = np.exp(-np.abs(x))               # never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(dy, x):
    """Gradient of :func:`sigmoid`: ``dy * s (1 - s)`` with ``s = sigmoid(x)``."""
    s = sigmoid(x)
    return dy * s * (1 - s)


def arctan(x):
    """Arctangent activation, element-wise (range ``(-pi/2, pi/2)``)."""
    return np.arctan(x)


def arctan_backward(dy, x):
    """Gradient of :func:`arctan`: ``dy / (1 + x^2)``."""
    return dy / (1 + x * x)


def _elementwise_naive(f, *arrays):
    out = np.empty(arrays[0].shape, dtype=np.result_type(*arrays, np.float32))
    flats = [a.reshape(-1) for a in arrays]
    flat_out = out.reshape(-1)
    for k in range(flat_out.size):
        flat_out[k] = f(*(a[k] for a in flats))
    return out


def relu_naive(x):
    """Loop version of :func:`relu`."""
    return _elementwise_naive(lambda v: v if v > 0 else 0.0, x)


def relu_backward_naive(dy, x):
    """Loop version of :func:`relu_backward`."""
    return _elementwise_naive(lambda g, v: g if v > 0 else 0.0, dy, x)


def sigmoid_naive(x):
    """Loop version of :func:`sigmoid`, eq. (3), with the same guard against overflow."""
    import math

    def s(v):
        return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))
    return _elementwise_naive(s, x)


def sigmoid_backward_naive(dy, x):
    """Loop version of :func:`sigmoid_backward`."""
    s = sigmoid_naive(x)
    return _elementwise_naive(lambda g, v: g * v * (1 - v), dy, s)


def arctan_naive(x):
    """Loop version of :func:`arctan`."""
    import math
    return _elementwise_naive(math.atan, x)


def arctan_backward_naive(dy, x):
    """Loop version of :func:`arctan_backward`."""
    return _elementwise_naive(lambda g, v: g / (1 + v * v), dy, x)


# --------------------------------------------------------------------------- softmax and losses
def log_softmax(z, axis=-1):
    """``log softmax(z)``, stably: ``z - max(z) - log(sum(exp(z - max(z))))``."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(z, axis=-1):
    """Softmax, eq. (4): ``exp(z_k) / sum_j exp(z_j)``, shifted by the max so that
    logits of any size give finite probabilities that sum to one."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_naive(z):
    """Loop version of :func:`softmax` over the last axis of ``z (N, K)``."""
    import math
    N, K = z.shape
    p = np.zeros(z.shape, dtype=np.result_type(z, np.float32))
    for n in range(N):
        m = max(z[n, k] for k in range(K))
        total = sum(math.exp(z[n, k] - m) for k in range(K))
        for k in range(K):
            p[n, k] = math.exp(z[n, k] - m) / total
    return p


def log_softmax_naive(z):
    """Loop version of :func:`log_softmax` over the last axis of ``z (N, K)``."""
    import math
    N, K = z.shape
    out = np.zeros(z.shape, dtype=np.result_type(z, np.float32))
    for n in range(N):
        m = max(z[n, k] for k in range(K))
        lse = m + math.log(sum(math.exp(z[n, k] - m) for k in range(K)))
        for k in range(K):
            out[n, k] = z[n, k] - lse
    return out


def _check_labels(logits, y):
    y = np.asarray(y)
    if logits.ndim != 2:
        raise ValueError(f"expected logits of shape (N, K), got shape {logits.shape}")
    if y.shape != (logits.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"expected integer labels of shape ({logits.shape[0]},), got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in 0..{logits.shape[1] - 1}, got {y.min()}..{y.max()}")
    return y


def nll_loss(log_probs, y):
    """Negative log-likelihood, eq. (5), averaged over the batch:
    ``-(1/N) sum_n log p[n, y_n]``. Shapes: ``log_probs (N, K)``, ``y (N,)`` -> scalar."""
    y = _check_labels(log_probs, y)
    return -log_probs[np.arange(len(y)), y].mean()


def nll_loss_naive(log_probs, y):
    """Loop version of :func:`nll_loss`."""
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
    y = _check_labels(logits, y)
    d = softmax(logits)
    d[np.arange(len(y)), y] -= 1
    return d / np.asarray(len(y), dtype=d.dtype)


def cross_entropy_naive(logits, y):
    """Loop version of :func:`cross_entropy`."""
    return nll_loss_naive(log_softmax_naive(logits), y)


def cross_entropy_backward_naive(logits, y):
    """Loop version of :func:`cross_entropy_backward`: ``p[n, k] - [k == y_n]``, over ``N``."""
    p = softmax_naive(logits)
    N, K = logits.shape
    for n in range(N):
        for k in range(K):
            p[n, k] = (p[n, k] - (1.0 if k == y[n] else 0.0)) / N
    return p


# --------------------------------------------------------------------------- dropout
def _check_dropout_p(p):
    """``p`` as a float, or a clear error: a finite real number with ``0 <= p < 1``."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"dropout probability p must be a real number, got {p!r}")
    p = float(p)
    if not (np.isfinite(p) and 0.0 <= p < 1.0):
        raise ValueError(f"dropout probability p must satisfy 0 <= p < 1 (the probability of "
                         f"dropping a unit), got {p}")
    return p


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
    p = _check_dropout_p(p)
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
    p = _check_dropout_p(p)
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
