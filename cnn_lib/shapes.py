"""Sizes and shapes: the argument checks that every layer and operation shares.

* :func:`integer` and :func:`pair` accept whole numbers only (a Python ``int`` or a NumPy
  integer; never a float, a string or a bool) and say which argument was wrong;
* :func:`conv_output_size` is the book's ``n_out = floor((n + 2p - k) / s) + 1``;
* :func:`check_conv2d` and :func:`check_pool2d` check the arrays and hyper-parameters of a
  convolution or a pooling and return the output size;
* :func:`check_labels` and :func:`check_dropout_p` check a loss's labels and a dropout
  probability (shared by :mod:`cnn_lib.functional`, :mod:`cnn_lib.losses` and :mod:`cnn_lib.layers`);
* :func:`check_inputs` checks what a network is given (:mod:`cnn_lib.model`, :mod:`cnn_lib.train`);
* :func:`check_dy` checks that a gradient ``dy`` has the shape of the forward pass's output
  (every backward pass), and :func:`check_count` a count such as a batch size or a number of epochs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["integer", "pair", "conv_output_size", "check_conv2d", "check_pool2d", "check_labels", "check_dropout_p",
           "check_inputs", "check_dy", "check_count"]


def _is_integer(value):
    if type(value) is int:               # the common case first (a bool's type is bool, not int)
        return True
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def integer(value, name, minimum=None):
    """``value`` as an ``int``; ``TypeError`` unless it is a whole number (an ``int`` or a NumPy
    integer, not a bool, a float or a string), ``ValueError`` if it is below ``minimum``."""
    if not _is_integer(value):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def pair(value, name, minimum=None):
    """``(v, v)`` for an integer ``v``, or the pair ``(vertical, horizontal)`` itself for a pair
    of integers, as Python ints.

    Anything else is refused with an error naming ``name``: ``TypeError`` for a float, a string,
    a bool or a pair of those (``stride=(1.5, 2.7)`` is not silently truncated to ``(1, 2)``),
    ``ValueError`` for a sequence that is not of length 2 or a value below ``minimum``.
    """
    expected = f"{name} must be an integer or a pair of integers"
    if _is_integer(value):
        values = (value, value)
    elif isinstance(value, (tuple, list, np.ndarray)):
        values = tuple(value.tolist() if isinstance(value, np.ndarray) else value)
        if len(values) != 2:
            raise ValueError(f"{expected} (vertical, horizontal), got {len(values)} values: {value!r}")
        if not all(_is_integer(v) for v in values):
            raise TypeError(f"{expected}, got {value!r}")
    else:
        raise TypeError(f"{expected}, got {value!r} ({type(value).__name__})")
    if minimum is not None and min(values) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return int(values[0]), int(values[1])


def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1):
    """Output length of a convolution or pooling along one axis.

    ``n_out = floor((n + 2 p - d (k - 1) - 1) / s) + 1``, which for ``d = 1`` is the
    book's ``n_out = floor((n + 2p - k) / s) + 1``.

    Raises ``ValueError`` with the reason when the combination is impossible
    (a kernel larger than the padded input, a stride below 1, ...).
    """
    for name, v in (("input size", n), ("kernel size", kernel_size), ("stride", stride),
                    ("padding", padding), ("dilation", dilation)):
        if not _is_integer(v):
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


def check_conv2d(x, w, b, stride, padding):
    """Checks the arguments of a convolution; returns ``(sh, sw, ph, pw, H_out, W_out)``.

    Shapes: ``x (N, C, H, W)``, ``w (F, C, KH, KW)``, ``b (F,)`` or ``None``.
    """
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
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    H_out = conv_output_size(x.shape[2], w.shape[2], sh, ph)
    W_out = conv_output_size(x.shape[3], w.shape[3], sw, pw)
    return sh, sw, ph, pw, H_out, W_out


def check_pool2d(x, kernel_size, stride):
    """Checks the arguments of a pooling (``stride=None``: the window size); returns
    ``(KH, KW, sh, sw, H_out, W_out)``. Shapes: ``x (N, C, H, W)``."""
    if x.ndim != 4:
        raise ValueError(f"pooling expects x of shape (N, C, H, W), got shape {x.shape}")
    (KH, KW) = pair(kernel_size, "kernel_size")
    (sh, sw) = pair(kernel_size if stride is None else stride, "stride")
    H_out = conv_output_size(x.shape[2], KH, sh)
    W_out = conv_output_size(x.shape[3], KW, sw)
    return KH, KW, sh, sw, H_out, W_out


def check_labels(logits, y, mean=False):
    """``y`` as an array, or a clear error: integer labels of shape ``(N,)`` in ``0..K-1`` for
    ``logits (N, K)``. With ``mean=True`` (a loss averaged over the batch) ``N`` must be at least 1:
    the mean over zero examples is not a number."""
    y = np.asarray(y)
    if logits.ndim != 2:
        raise ValueError(f"expected logits of shape (N, K), got shape {logits.shape}")
    if logits.shape[1] == 0:
        raise ValueError(f"expected logits of shape (N, K) with at least one class, got shape {logits.shape}")
    if mean and logits.shape[0] == 0:
        raise ValueError("a loss averaged over the batch needs at least one example, "
                         f"got logits of shape {logits.shape}")
    if y.shape != (logits.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"expected integer labels of shape ({logits.shape[0]},), got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in 0..{logits.shape[1] - 1}, got {y.min()}..{y.max()}")
    return y


def check_dropout_p(p):
    """``p`` as a float, or a clear error: a finite real number with ``0 <= p < 1``."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"dropout probability p must be a real number, got {p!r}")
    p = float(p)
    if not (np.isfinite(p) and 0.0 <= p < 1.0):
        raise ValueError(f"dropout probability p must satisfy 0 <= p < 1 (the probability of "
                         f"dropping a unit), got {p}")
    return p


def check_inputs(x):
    """``x`` as an array of floating-point inputs ``(N, ...)``, or a clear error.

    A list is converted (``np.asarray``); an array is returned as it is (no copy, no scan of
    its values). Integer and bool arrays are refused with ``TypeError``: raw ``uint8`` pixels
    would go through the network unscaled (0..255 where it expects ``load_mnist``'s
    standardized float32), a loss in the hundreds and no error."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind != "f":
        hint = (": scale raw pixels first, as load_mnist does: (x / 255 - MNIST_MEAN) / MNIST_STD "
                "(cnn_lib.data), in float32") if x.dtype.kind in "uib" else ""
        raise TypeError(f"expected floating-point inputs (float32, as load_mnist returns), got dtype {x.dtype}{hint}")
    if x.ndim == 0:
        raise ValueError("expected a batch of inputs (N, ...), got a single number")
    return x


def check_dy(dy, expected, name):
    """Raises ``ValueError`` unless ``dy`` has the shape ``expected``, that of the forward pass's
    output: a ``dy`` that broadcasts against it, or that reshapes into it, would give a wrong
    gradient without an error. ``name`` is the backward pass, for the message."""
    if np.shape(dy) != tuple(expected):
        raise ValueError(f"{name} expects dy of shape {tuple(expected)}, the shape of the forward pass's output; "
                         f"got {np.shape(dy)}")


def check_count(value, name, minimum=1):
    """``value`` as an ``int``, or ``ValueError``: a whole number (not a bool or a float) of at
    least ``minimum``, such as a batch size or a number of epochs."""
    if not _is_integer(value) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)
