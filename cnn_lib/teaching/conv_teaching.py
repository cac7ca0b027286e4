"""Small helpers that part II of the book uses to *teach* convolution and its gradients.

The library's layers use :mod:`cnn_lib.functional`; the functions here exist to show an
equation as directly as possible, or to draw a picture. Each one is tested in
``tests/test_conv_teaching.py`` against an independent reference (SciPy, the library's
fast functions, a loop, or numbers worked out by hand).

Single images and kernels are 2-D arrays ``(H, W)`` and ``(KH, KW)``; batches follow the
library's layout, ``x (N, C, H, W)``, ``w (F, C, KH, KW)``, ``dy (N, F, H_out, W_out)``.

* Loops whose indices follow the book's equations: :func:`feature_map_naive` (one
  convolutional neuron, a kernel scanned over an image), :func:`correlate2d_naive` and
  :func:`convolve2d_naive` (cross-correlation and *true* convolution, ``valid`` or
  ``full``), :func:`conv2d_grad_weight_naive` and :func:`conv2d_grad_input_naive` (the
  gradients of a convolution layer written as a correlation and a full convolution).
* Their array versions: :func:`conv2d_grad_weight` and :func:`conv2d_grad_input` (both
  built on :func:`cnn_lib.functional.conv2d`), :func:`conv_as_matrix` (the dense matrix that a
  convolution is), :func:`dilate` (zeros between entries: strided gradients, dilated kernels).
* Small tools for pictures and experiments: :data:`KERNELS`, :func:`edge_kernel`,
  :func:`resize_image`, :func:`shift_image`, :func:`conv_macs`, :func:`same_padding`.
* The 1-D discrete convolution as a loop, :func:`convolve1d_naive`, and the receptive field
  of a stack of layers by the recurrence of its size and jump, :func:`receptive_field`.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..shapes import pair

__all__ = [
    "KERNELS", "edge_kernel", "feature_map_naive", "correlate2d_naive", "convolve2d_naive",
    "dilate", "conv2d_grad_weight_naive", "conv2d_grad_input_naive", "conv2d_grad_weight",
    "conv2d_grad_input", "conv_as_matrix", "conv_macs",
    "same_padding", "resize_image", "shift_image", "convolve1d_naive", "receptive_field",
]


#: Classic 3x3 kernels (as used by a cross-correlation: ``sobel_x`` responds where the
#: image gets brighter from left to right).
KERNELS: dict[str, np.ndarray] = {
    "identity": np.array([[0.0, 0, 0], [0, 1, 0], [0, 0, 0]]),
    "sobel_x": np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "sobel_y": np.array([[-1.0, -2, -1], [0, 0, 0], [1, 2, 1]]),
    "laplacian": np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    "blur": np.full((3, 3), 1.0 / 9.0),
    "sharpen": np.array([[0.0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "diagonal": np.array([[2.0, -1, -1], [-1, 2, -1], [-1, -1, 2]]) / 3.0,
}


def edge_kernel(k):
    """A ``k x k`` vertical-edge kernel: every row goes linearly from -1 to +1, divided by ``k``.

    It responds (positively) where the image gets brighter from left to right, like
    ``KERNELS["sobel_x"]`` without the smoothing. ``edge_kernel(1)`` is ``[[1.]]`` (a single
    weight cannot compare neighbours). Shape ``(k, k)``.
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"kernel size must be at least 1, got {k}")
    if k == 1:
        return np.ones((1, 1))
    return np.tile(np.linspace(-1.0, 1.0, k), (k, 1)) / k


def _as_2d(a, name):
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (H, W), got shape {a.shape}")
    return a


# --------------------------------------------------------------------------- one neuron
def feature_map_naive(M, K, b=0.0, activation=None):
    """The feature map of one convolutional neuron, with four plain loops.

    ``A[i, j] = phi( sum_m sum_n M[i + m, j + n] K[m, n] + b )`` for every position
    ``(i, j)`` where the ``KH x KW`` kernel fits inside the ``H x W`` input, so
    ``A`` has shape ``(H - KH + 1, W - KW + 1)``. ``activation`` is ``phi`` (a function
    applied to each sum, e.g. :func:`cnn_lib.functional.relu`) or ``None`` for the identity.

    The inner double sum is the sum of the Hadamard (element-wise) product of the kernel
    with the window ``M[i:i+KH, j:j+KW]``.
    """
    M, K = _as_2d(M, "M"), _as_2d(K, "K")
    H, W = M.shape
    KH, KW = K.shape
    if KH > H or KW > W:
        raise ValueError(f"kernel {K.shape} is larger than the input {M.shape}")
    out = np.zeros((H - KH + 1, W - KW + 1), dtype=np.result_type(M, K, np.float32))
    for i in range(H - KH + 1):
        for j in range(W - KW + 1):
            total = 0.0
            for m in range(KH):
                for n in range(KW):
                    total += M[i + m, j + n] * K[m, n]
            z = total + b
            out[i, j] = z if activation is None else activation(np.asarray(z))
    return out


# --------------------------------------------------------------------------- correlation and convolution
def _check_mode(mode):
    if mode not in ("valid", "full"):
        raise ValueError(f"mode must be 'valid' or 'full', got {mode!r}")


def _at(M, r, c):
    """``M[r, c]``, or 0 outside the array (the zeros that 'full' mode pads with)."""
    return M[r, c] if 0 <= r < M.shape[0] and 0 <= c < M.shape[1] else 0.0


def correlate2d_naive(M, K, mode="valid"):
    """Cross-correlation of a 2-D input with a 2-D kernel, with plain loops.

    ``valid``: ``(K ⋆ M)[i, j] = sum_{m, n} M[i + m, j + n] K[m, n]``, shape
    ``(H - KH + 1, W - KW + 1)`` (what :func:`cnn_lib.functional.conv2d` computes).
    ``full``: the same with ``M`` padded by ``KH - 1`` and ``KW - 1`` zeros on each side,
    shape ``(H + KH - 1, W + KW - 1)``: every position where kernel and input overlap.
    Same conventions as ``scipy.signal.correlate2d(M, K, mode)``.
    """
    M, K = _as_2d(M, "M"), _as_2d(K, "K")
    _check_mode(mode)
    (H, W), (KH, KW) = M.shape, K.shape
    off_h, off_w = (KH - 1, KW - 1) if mode == "full" else (0, 0)
    H_out, W_out = H - KH + 1 + 2 * off_h, W - KW + 1 + 2 * off_w
    if H_out < 1 or W_out < 1:
        raise ValueError(f"kernel {K.shape} is larger than the input {M.shape} ('valid' mode)")
    out = np.zeros((H_out, W_out), dtype=np.result_type(M, K, np.float32))
    for i in range(H_out):
        for j in range(W_out):
            total = 0.0
            for m in range(KH):
                for n in range(KW):
                    total += _at(M, i + m - off_h, j + n - off_w) * K[m, n]
            out[i, j] = total
    return out


def convolve2d_naive(M, K, mode="valid"):
    """True 2-D convolution, with plain loops, straight from the definition.

    ``(K * M)[i, j] = sum_{m, n} M[i - m, j - n] K[m, n]`` with ``M`` taken as 0 outside
    its borders. ``full`` keeps every ``(i, j)`` where the sum has a non-zero term, shape
    ``(H + KH - 1, W + KW - 1)``; ``valid`` keeps those where the flipped kernel lies
    inside the input, shape ``(H - KH + 1, W - KW + 1)`` (i.e. ``full[KH-1:H, KW-1:W]``).
    Same conventions as ``scipy.signal.convolve2d(M, K, mode)``. No kernel is flipped
    explicitly here: the minus signs of the definition do it.
    """
    M, K = _as_2d(M, "M"), _as_2d(K, "K")
    _check_mode(mode)
    (H, W), (KH, KW) = M.shape, K.shape
    if mode == "full":
        rows, cols = range(H + KH - 1), range(W + KW - 1)
    else:
        if KH > H or KW > W:
            raise ValueError(f"kernel {K.shape} is larger than the input {M.shape} ('valid' mode)")
        rows, cols = range(KH - 1, H), range(KW - 1, W)
    out = np.zeros((len(rows), len(cols)), dtype=np.result_type(M, K, np.float32))
    for a, i in enumerate(rows):
        for c, j in enumerate(cols):
            total = 0.0
            for m in range(KH):
                for n in range(KW):
                    total += _at(M, i - m, j - n) * K[m, n]
            out[a, c] = total
    return out


def convolve1d_naive(x, k, mode="full"):
    """1-D discrete convolution with plain loops: ``(k * x)[t] = sum_m x[t - m] k[m]``.

    ``x`` is taken as 0 outside its ends. ``full`` keeps every ``t`` where a term can be
    non-zero, length ``len(x) + len(k) - 1``; ``valid`` keeps the ``t`` where the flipped
    kernel lies inside ``x``, length ``len(x) - len(k) + 1``. Same conventions as
    ``np.convolve(x, k, mode)``. Shapes ``(n,)``, ``(q,)`` -> ``(n + q - 1,)`` or ``(n - q + 1,)``.
    """
    x, k = np.asarray(x), np.asarray(k)
    if x.ndim != 1 or k.ndim != 1 or len(x) == 0 or len(k) == 0:
        raise ValueError(f"x and k must be non-empty 1-D arrays, got shapes {x.shape} and {k.shape}")
    _check_mode(mode)
    n, q = len(x), len(k)
    if mode == "full":
        ts = range(n + q - 1)
    else:
        if q > n:
            raise ValueError(f"kernel of length {q} is longer than the input ({n}) ('valid' mode)")
        ts = range(q - 1, n)
    out = np.zeros(len(ts), dtype=np.result_type(x, k, np.float32))
    for a, t in enumerate(ts):
        total = 0.0
        for m in range(q):
            if 0 <= t - m < n:
                total += x[t - m] * k[m]
        out[a] = total
    return out


def receptive_field(layers):
    """Receptive field of every layer of a stack, along one axis, by the recurrence

    ``r_l = r_{l-1} + (k_l - 1) j_{l-1}``, ``j_l = j_{l-1} s_l``, ``a_l = a_{l-1} - p_l j_{l-1}``

    from ``r_0 = j_0 = 1``, ``a_0 = 0``: unit ``i`` of layer ``l`` sees the input pixels
    ``a_l + i j_l, ..., a_l + i j_l + r_l - 1`` (size ``r_l``, jump ``j_l`` between
    neighbouring units, start ``a_l``, negative when padding reaches outside the image).

    ``layers`` is a sequence of ``(kernel_size, stride, padding)`` triples, or of layers,
    or a :class:`cnn_lib.Sequential`: layers with a ``kernel_size`` (convolution, pooling)
    use their first axis; the others (activations, ``Flatten``, ...) are skipped.
    Returns a list of ``(size, jump, start)``, one per kernel layer.
    """
    if hasattr(layers, "layers"):
        layers = list(layers.layers.values())
    r, j, a = 1, 1, 0
    out = []
    for layer in layers:
        if isinstance(layer, tuple):
            if len(layer) != 3:
                raise ValueError(f"expected (kernel_size, stride, padding), got {layer!r}")
            k, s, p = (int(v) for v in layer)
        elif hasattr(layer, "kernel_size"):
            k, s = layer.kernel_size[0], layer.stride[0]
            p = getattr(layer, "padding", (0, 0))[0]
        else:
            continue
        if k < 1 or s < 1 or p < 0:
            raise ValueError(f"kernel_size and stride must be >= 1 and padding >= 0, got {(k, s, p)}")
        r, a, j = r + (k - 1) * j, a - p * j, j * s
        out.append((r, j, a))
    return out


def dilate(a, factor):
    """Insert ``factor - 1`` zeros between neighbouring entries along the last two axes.

    An axis of length ``L`` becomes ``(L - 1) * factor + 1``. ``factor`` is an int or a pair
    ``(vertical, horizontal)``. Used for the gradient of a strided convolution (the
    upstream gradient ``dy`` dilated by the stride) and for dilated kernels (a kernel
    dilated by ``d`` covers ``d (k - 1) + 1`` pixels with ``k`` weights).
    """
    fh, fw = pair(factor, "factor")
    if fh < 1 or fw < 1:
        raise ValueError(f"dilation factor must be at least 1, got {factor!r}")
    a = np.asarray(a)
    if a.ndim < 2:
        raise ValueError(f"dilate needs an array with at least 2 axes, got shape {a.shape}")
    *lead, L, Wd = a.shape
    out = np.zeros((*lead, (L - 1) * fh + 1, (Wd - 1) * fw + 1), dtype=a.dtype)
    out[..., ::fh, ::fw] = a
    return out


# --------------------------------------------------------------------------- gradients of a convolution layer
def conv2d_grad_weight_naive(dy, x, kernel_size, stride=1, padding=0):
    """``dL/dw`` of :func:`cnn_lib.functional.conv2d` with loops: for every weight, the sum
    over the batch and the output positions of ``dy`` times the input pixel that the weight
    multiplied.

    ``dw[f, c, u, v] = sum_{n, i, j} dy[n, f, i, j] xp[n, c, i*sh + u, j*sw + v]``: the
    cross-correlation of the padded input with ``dy`` (``dy`` dilated by the stride).

    Shapes: ``dy (N, F, H_out, W_out)``, ``x (N, C, H, W)`` -> ``dw (F, C, KH, KW)``.
    """
    (KH, KW), (sh, sw), (ph, pw) = (pair(kernel_size, "kernel_size"), pair(stride, "stride"),
                                   pair(padding, "padding"))
    N, C = x.shape[:2]
    Fn, H_out, W_out = dy.shape[1:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dw = np.zeros((Fn, C, KH, KW), dtype=np.result_type(dy, x))
    for f in range(Fn):
        for c in range(C):
            for u in range(KH):
                for v in range(KW):
                    total = 0.0
                    for n in range(N):
                        for i in range(H_out):
                            for j in range(W_out):
                                total += dy[n, f, i, j] * xp[n, c, i * sh + u, j * sw + v]
                    dw[f, c, u, v] = total
    return dw


def conv2d_grad_input_naive(dy, w, x_shape, stride=1, padding=0):
    """``dL/dx`` of :func:`cnn_lib.functional.conv2d` with loops, as a *full convolution*.

    With ``g = dilate(dy, stride)`` (zeros where no window started), the gradient of the
    padded input is ``dxp[n, c, r, q] = sum_f sum_{u, v} g[n, f, r - u, q - v] w[f, c, u, v]``
    (``g`` taken as 0 outside its borders): the true convolution of ``g`` with the kernel,
    in 'full' mode, summed over the filters. Cropping the padding gives ``dx``.

    Shapes: ``dy (N, F, H_out, W_out)``, ``w (F, C, KH, KW)``, ``x_shape = (N, C, H, W)``
    -> ``dx (N, C, H, W)``.
    """
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    N, C, H, W = x_shape
    Fn, _, KH, KW = w.shape
    g = dilate(dy, (sh, sw))                                  # (N, F, (H_out-1)*sh+1, (W_out-1)*sw+1)
    Gh, Gw = g.shape[2:]
    Hp, Wp = H + 2 * ph, W + 2 * pw
    dxp = np.zeros((N, C, Hp, Wp), dtype=np.result_type(dy, w))
    for n in range(N):
        for c in range(C):
            for r in range(Hp):
                for q in range(Wp):
                    total = 0.0
                    for f in range(Fn):
                        for u in range(KH):
                            for v in range(KW):
                                if 0 <= r - u < Gh and 0 <= q - v < Gw:
                                    total += g[n, f, r - u, q - v] * w[f, c, u, v]
                    dxp[n, c, r, q] = total
    return dxp[:, :, ph:ph + H, pw:pw + W].copy()


def conv2d_grad_weight(dy, x, kernel_size, stride=1, padding=0):
    """``dL/dw`` as one call of :func:`cnn_lib.functional.conv2d`: the cross-correlation
    of the padded input with the stride-dilated ``dy``.

    The batch axis plays the role of the channels that the correlation sums over: the
    input becomes ``(C, N, Hp, Wp)`` (C "images" with N channels) and ``dy`` becomes F
    "kernels" ``(F, N, ., .)``; the result ``(C, F, ., .)`` is cut to the kernel size (rows
    of the input that no window reached give extra entries) and transposed to ``(F, C, KH, KW)``.
    """
    (KH, KW), (sh, sw), (ph, pw) = (pair(kernel_size, "kernel_size"), pair(stride, "stride"),
                                   pair(padding, "padding"))
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))                  # (N, C, Hp, Wp)
    g = dilate(dy, (sh, sw))                                              # (N, F, Gh, Gw)
    corr = F.conv2d(xp.transpose(1, 0, 2, 3), g.transpose(1, 0, 2, 3), None)  # (C, F, Hp-Gh+1, Wp-Gw+1)
    return np.ascontiguousarray(corr[:, :, :KH, :KW].transpose(1, 0, 2, 3))   # (F, C, KH, KW)


def conv2d_grad_input(dy, w, x_shape, stride=1, padding=0):
    """``dL/dx`` as one call of :func:`cnn_lib.functional.conv2d`: the full convolution of
    the stride-dilated ``dy`` with the kernel, computed as a cross-correlation of ``dy``
    (dilated, then padded by ``K - 1`` zeros) with the kernel flipped in both axes, the
    roles of input and output channels swapped.

    Shapes: ``dy (N, F, H_out, W_out)``, ``w (F, C, KH, KW)`` -> ``dx (N, C, H, W)``.
    """
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    N, C, H, W = x_shape
    Fn, _, KH, KW = w.shape
    g = dilate(dy, (sh, sw))                                              # (N, F, Gh, Gw)
    Hp, Wp = H + 2 * ph, W + 2 * pw
    # pad by K - 1 on each side ('full' mode), plus the rows/columns no window reached
    extra_h, extra_w = Hp - (g.shape[2] + KH - 1), Wp - (g.shape[3] + KW - 1)
    gp = np.pad(g, ((0, 0), (0, 0), (KH - 1, KH - 1 + extra_h), (KW - 1, KW - 1 + extra_w)))
    w_flip = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)                    # (C, F, KH, KW)
    dxp = F.conv2d(gp, np.ascontiguousarray(w_flip), None)               # (N, C, Hp, Wp)
    return np.ascontiguousarray(dxp[:, :, ph:ph + H, pw:pw + W])


# --------------------------------------------------------------------------- convolution as a matrix product
def conv_as_matrix(K, H, W, stride=1, padding=0):
    """The matrix ``A`` of a one-channel convolution: ``A @ M.ravel() == conv2d(M, K).ravel()``.

    A convolution is a fully connected layer whose weight matrix is mostly zeros (each output
    sees only a ``KH x KW`` window: *local* connections) and whose non-zero entries are the
    same ``KH*KW`` numbers on every row (*shared* weights).

    Shapes: ``K (KH, KW)`` -> ``A (H_out*W_out, H*W)``.
    """
    K = _as_2d(K, "K")
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    KH, KW = K.shape
    H_out, W_out = F.conv_output_size(H, KH, sh, ph), F.conv_output_size(W, KW, sw, pw)
    A = np.zeros((H_out * W_out, H * W), dtype=np.result_type(K, np.float32))
    for i in range(H_out):
        for j in range(W_out):
            for u in range(KH):
                for v in range(KW):
                    r, c = i * sh + u - ph, j * sw + v - pw        # the pixel of the unpadded input
                    if 0 <= r < H and 0 <= c < W:                  # padding zeros contribute nothing
                        A[i * W_out + j, r * W + c] = K[u, v]
    return A


# --------------------------------------------------------------------------- costs and sizes
def conv_macs(in_shape, out_channels, kernel_size, stride=1, padding=0, dilation=1):
    """Multiply-adds of one convolution layer on one image, and its output shape.

    Every output value ``y[f, i, j]`` costs ``C*KH*KW`` multiply-adds (padding zeros
    included, as a library computes them), so the layer costs ``F*H_out*W_out*C*KH*KW``.

    Returns ``(macs, (F, H_out, W_out))``; raises ``ValueError`` (with the reason from
    :func:`cnn_lib.functional.conv_output_size`) for an impossible combination.
    """
    C, H, W = (int(v) for v in in_shape)
    (KH, KW), (sh, sw), (ph, pw) = (pair(kernel_size, "kernel_size"), pair(stride, "stride"),
                                   pair(padding, "padding"))
    d = int(dilation)
    H_out = F.conv_output_size(H, KH, sh, ph, d)
    W_out = F.conv_output_size(W, KW, sw, pw, d)
    Fn = int(out_channels)
    return Fn * H_out * W_out * C * KH * KW, (Fn, H_out, W_out)


def same_padding(kernel_size, dilation=1):
    """Padding that keeps the size (stride 1): ``d (k - 1) / 2`` on each side.

    Returns an int, or ``None`` when ``d (k - 1)`` is odd: a symmetric padding then cannot
    keep the size (libraries pad one more zero on one side).
    """
    span_minus_one = int(dilation) * (int(kernel_size) - 1)
    return span_minus_one // 2 if span_minus_one % 2 == 0 else None


# --------------------------------------------------------------------------- images
def _area_weights(n_in, n_out):
    """``(n_out, n_in)`` matrix averaging the part of the input each output pixel covers."""
    edges = np.linspace(0.0, n_in, n_out + 1)                             # output pixel borders, in input pixels
    lo, hi = edges[:-1, None], edges[1:, None]                            # (n_out, 1)
    left = np.arange(n_in)[None, :]                                       # (1, n_in) input pixel [left, left+1)
    overlap = np.clip(np.minimum(hi, left + 1) - np.maximum(lo, left), 0.0, None)  # (n_out, n_in)
    return overlap / overlap.sum(axis=1, keepdims=True)


def resize_image(image, size):
    """Resize a 2-D image to ``size x size`` (or ``(rows, cols)``) by area averaging.

    Each output pixel is the mean of the part of the input it covers (weighted by the
    covered fraction), so a constant image stays constant and the mean brightness is kept.
    Shape ``(H, W)`` -> ``(rows, cols)``.
    """
    image = _as_2d(image, "image").astype(np.float64)
    rows, cols = pair(size, "size")
    if rows < 1 or cols < 1:
        raise ValueError(f"size must be at least 1, got {size!r}")
    A, B = _area_weights(image.shape[0], rows), _area_weights(image.shape[1], cols)
    return A @ image @ B.T                                                # (rows, cols)


def shift_image(x, rows=0, cols=0):
    """Shift images by whole pixels along the last two axes, filling with zeros (no wrap).

    Positive ``rows`` moves the content down, positive ``cols`` to the right. Same shape.
    """
    x = np.asarray(x)
    out = np.zeros_like(x)
    H, W = x.shape[-2:]
    if abs(rows) >= H or abs(cols) >= W:
        return out
    src_r = slice(max(0, -rows), H - max(0, rows))
    dst_r = slice(max(0, rows), H - max(0, -rows))
    src_c = slice(max(0, -cols), W - max(0, cols))
    dst_c = slice(max(0, cols), W - max(0, -cols))
    out[..., dst_r, dst_c] = x[..., src_r, src_c]
    return out
