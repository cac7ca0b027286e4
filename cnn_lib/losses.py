"""Losses on logits. The softmax and the negative log-likelihood are fused so that the
log of a probability is never taken (log-sum-exp instead), and the gradient
``(p - onehot(y)) / N`` comes with the value at the cost of one softmax."""

from __future__ import annotations

import numpy as np

from .functional import log_softmax
from .shapes import check_labels

__all__ = ["softmax_cross_entropy"]


def softmax_cross_entropy(logits, y):
    """Mean negative log-likelihood of the labels under ``softmax(logits)``, and its gradient.

    ``L = -(1/N) sum_n log softmax(z_n)[y_n]``;  ``dL/dz = (softmax(z) - onehot(y)) / N``.

    Shapes: ``logits (N, K)``, ``y (N,)`` integers in ``0..K-1`` -> ``(loss: float, dlogits (N, K))``.
    """
    y = check_labels(logits, y, mean=True)
    logp = log_softmax(logits)                         # (N, K), finite for any finite logits
    rows = np.arange(len(y))
    loss = -float(logp[rows, y].mean())
    d = np.exp(logp)                                   # softmax, (N, K)
    d[rows, y] -= 1
    d /= np.asarray(len(y), dtype=d.dtype)
    return loss, d
