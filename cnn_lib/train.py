"""Training loop: seeded minibatches (shuffle, then slice), ``fit`` with a progress bar and
a history, ``evaluate`` and ``predict`` in batches of bounded memory."""

from __future__ import annotations

import time

import numpy as np

from .losses import softmax_cross_entropy
from .optim import Adam

__all__ = ["minibatches", "fit", "evaluate", "predict"]


def minibatches(n, batch_size, rng=None, shuffle=True):
    """Index arrays covering ``range(n)`` once: a permutation drawn from ``rng`` (a numpy
    Generator or a seed), cut into consecutive slices of ``batch_size`` (the last may be
    shorter). Every example is seen exactly once per epoch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = np.random.default_rng(rng).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def _check_xy(x, y):
    if len(x) != len(y):
        raise ValueError(f"{len(x)} inputs but {len(y)} labels")
    if len(x) == 0:
        raise ValueError("no examples")


def evaluate(model, x, y, batch_size=256):
    """Mean cross-entropy loss and accuracy of ``model`` on ``(x, y)``, ``batch_size`` at a time."""
    _check_xy(x, y)
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = model.forward(x[i:i + batch_size], train=False)
        loss, _ = softmax_cross_entropy(logits, y[i:i + batch_size])
        total_loss += loss * len(logits)
        correct += int((logits.argmax(axis=1) == y[i:i + batch_size]).sum())
    return total_loss / len(x), correct / len(x)


def predict(model, x, batch_size=256):
    """Predicted classes ``(N,)``."""
    return model.predict(x, batch_size)


def fit(model, x, y, *, epochs=1, batch_size=32, optimizer=None, lr=1e-3, seed=0,
        x_val=None, y_val=None, progress=True, log=None, lr_schedule=None, augment=None):
    """Trains ``model`` with softmax cross-entropy; returns the history.

    Each epoch visits every example once, in an order drawn from ``seed``; the same seed,
    data and initial weights give the same weights bit for bit.

    Parameters
    ----------
    optimizer : an :mod:`cnn_lib.optim` optimizer over ``model.params()``;
        default ``Adam(model.params(), lr=lr)``.
    x_val, y_val : optional held-out set evaluated after each epoch.
    progress : show a tqdm progress bar (text in a terminal, a widget in Jupyter).
    log : optional callable ``log(epoch, step, loss)`` called after every step.
    lr_schedule : optional callable ``lr_schedule(epoch) -> lr`` (epochs count from 0),
        applied to ``optimizer.lr`` at the start of each epoch.
    augment : optional callable ``augment(xb, rng) -> xb`` applied to each training batch
        (e.g. random shifts); ``rng`` is the fit's seeded Generator, so runs stay reproducible.

    Returns
    -------
    history : dict of per-epoch lists ``loss``, ``accuracy`` (running means over the
        epoch's batches), ``seconds`` and, with a validation set, ``val_loss``,
        ``val_accuracy``; plus ``step_loss``, the loss of every step.
    """
    _check_xy(x, y)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if optimizer is None:
        optimizer = Adam(model.params(), lr=lr)
    rng = np.random.default_rng(seed)
    history = {"loss": [], "accuracy": [], "seconds": [], "step_loss": [], "lr": []}
    if x_val is not None:
        history["val_loss"], history["val_accuracy"] = [], []
    steps = -(-len(x) // batch_size)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs * steps, unit="batch", desc="training")
    try:
        for epoch in range(epochs):
            if lr_schedule is not None:
                optimizer.lr = float(lr_schedule(epoch))
            start, loss_sum, correct = time.perf_counter(), 0.0, 0
            for step, idx in enumerate(minibatches(len(x), batch_size, rng)):
                xb, yb = x[idx], y[idx]
                if augment is not None:
                    xb = augment(xb, rng)
                logits = model.forward(xb, train=True)
                loss, dlogits = softmax_cross_entropy(logits, yb)
                model.backward(dlogits)
                optimizer.step(model.grads())
                loss_sum += loss * len(idx)
                correct += int((logits.argmax(axis=1) == yb).sum())
                history["step_loss"].append(loss)
                if log is not None:
                    log(epoch, step, loss)
                if bar is not None:
                    bar.update(1)
                    if step % 50 == 0:
                        bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.4f}", refresh=False)
            history["seconds"].append(time.perf_counter() - start)
            history["lr"].append(optimizer.lr)
            history["loss"].append(loss_sum / len(x))
            history["accuracy"].append(correct / len(x))
            if x_val is not None:
                val_loss, val_acc = evaluate(model, x_val, y_val)
                history["val_loss"].append(val_loss)
                history["val_accuracy"].append(val_acc)
    finally:
        if bar is not None:
            bar.close()
    return history
