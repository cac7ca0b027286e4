"""Helpers of the chapter on generalization: learning curves measured on the training and the
validation data after every epoch, and the size of a network's parameters.

``cnn_lib.fit`` reports the *running* mean of the training loss and accuracy over an epoch: the
weights change while it is summed, and layers such as :class:`cnn_lib.Dropout` behave
differently in training. To compare training and validation data fairly, both are evaluated
here with :func:`cnn_lib.evaluate`, with the same weights, in evaluation mode.
"""

from __future__ import annotations

import numpy as np

from ..train import evaluate, fit

__all__ = ["learning_curves", "parameter_norm"]


def learning_curves(model, x, y, x_val, y_val, *, optimizer, epochs, batch_size=50, seed=0):
    """Trains ``model`` one epoch at a time with :func:`cnn_lib.fit` and evaluates it on the
    training data ``(x, y)`` and on the validation data ``(x_val, y_val)`` before training and
    after every epoch, with :func:`cnn_lib.evaluate`.

    ``optimizer`` keeps its state across epochs; epoch ``e`` shuffles with seed ``seed + e``,
    so a run is reproducible.

    Returns
    -------
    dict of float arrays of length ``epochs + 1`` (index 0: before training):
    ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``.
    """
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    curves = {"train_loss": [], "train_accuracy": [], "val_loss": [], "val_accuracy": []}

    def measure():
        for part, (xs, ys) in (("train", (x, y)), ("val", (x_val, y_val))):
            loss, accuracy = evaluate(model, xs, ys)
            curves[f"{part}_loss"].append(loss)
            curves[f"{part}_accuracy"].append(accuracy)

    measure()
    for epoch in range(int(epochs)):
        fit(model, x, y, epochs=1, batch_size=batch_size, optimizer=optimizer, seed=seed + epoch,
            progress=False)
        measure()
    return {k: np.array(v, dtype=np.float64) for k, v in curves.items()}


def parameter_norm(model, suffix=None):
    """The Euclidean norm ``sqrt(sum of squares)`` of all the parameters of ``model`` (the
    quantity an L2 penalty ``λ/2 ||θ||²`` acts on), or only of those whose name ends with
    ``suffix`` (e.g. ``".w"`` for the weights without the biases)."""
    squares = [float(np.sum(np.square(p, dtype=np.float64))) for name, p in model.params().items()
               if suffix is None or name.endswith(suffix)]
    if not squares:
        raise ValueError(f"the model has no parameter whose name ends with {suffix!r}")
    return float(np.sqrt(sum(squares)))
