"""Training loop: seeded minibatches (shuffle, then slice), ``fit`` with a progress bar and
a history, ``evaluate`` and ``predict`` in batches of bounded memory."""

from __future__ import annotations

import math
import time

import numpy as np

from .losses import softmax_cross_entropy
from .optim import Adam, Optimizer
from .shapes import check_count, check_inputs

__all__ = ["minibatches", "fit", "evaluate", "predict"]


def minibatches(n, batch_size, rng=None, shuffle=True):
    """Index arrays covering ``range(n)`` once: a permutation drawn from ``rng`` (a numpy
    Generator or a seed), cut into consecutive slices of ``batch_size`` (the last may be
    shorter). Every example is seen exactly once per epoch."""
    n, batch_size = check_count(n, "n", minimum=0), check_count(batch_size, "batch_size")
    order = np.random.default_rng(rng).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def _check_xy(x, y):
    """``(x, y)`` as arrays (lists are converted), or a clear error: as many labels as inputs,
    at least one, floating-point inputs (:func:`cnn_lib.shapes.check_inputs`)."""
    x, y = check_inputs(x), np.asarray(y)
    if y.ndim == 0:
        raise ValueError(f"expected integer labels of shape ({len(x)},) for {len(x)} inputs, got a single number")
    if len(x) != len(y):
        raise ValueError(f"{len(x)} inputs but {len(y)} labels")
    if len(x) == 0:
        raise ValueError("no examples")
    return x, y


def _check_optimizer(optimizer, model):
    """Refuses an optimizer class (not an object), and an optimizer whose arrays are not the
    model's parameters (made for another model, or before its arrays were replaced): it would
    step those arrays with this model's gradients, and the model would never change."""
    if isinstance(optimizer, type) or not callable(getattr(optimizer, "step", None)):
        raise TypeError(f"optimizer must be an optimizer object, e.g. Adam(model.params(), lr=1e-3), got {optimizer!r}")
    if isinstance(optimizer, Optimizer):
        own = model.params()
        foreign = [k for k, p in optimizer.params.items() if own.get(k) is not p]
        if foreign:
            raise ValueError(f"the optimizer's arrays {foreign} are not the model's parameters (it was made "
                             "for another model?): create it with e.g. Adam(model.params(), lr=1e-3)")


def evaluate(model, x, y, batch_size=256):
    """Mean cross-entropy loss and accuracy of ``model`` on ``(x, y)``, ``batch_size`` at a time.
    Zero examples are an error (``ValueError``: no mean to compute).
    Shapes: ``x (N, ...)``, ``y (N,)`` integer labels -> ``(loss, accuracy)``, two floats."""
    x, y = _check_xy(x, y)
    check_count(batch_size, "batch_size")
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = model.forward(x[i:i + batch_size], train=False)
        loss, _ = softmax_cross_entropy(logits, y[i:i + batch_size])
        total_loss += loss * len(logits)
        correct += int((logits.argmax(axis=1) == y[i:i + batch_size]).sum())
    return total_loss / len(x), correct / len(x)


def predict(model, x, batch_size=256):
    """Predicted classes ``(N,)`` (an empty ``(0,)`` array for zero images)."""
    return model.predict(x, batch_size)


def _schedule_value(lr_schedule, epoch):
    value = lr_schedule(epoch)
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise TypeError(f"lr_schedule({epoch}) returned {value!r}, not a learning rate")
    try:
        lr = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"lr_schedule({epoch}) returned {value!r}, not a learning rate") from None
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr_schedule({epoch}) returned {lr}: a learning rate must be a positive finite number")
    return lr


def _where(epoch, step, epochs, steps):
    return f"training stopped at epoch {epoch + 1}, step {step + 1} (of {epochs} epochs x {steps} steps): "


_KEPT = " The model's weights are those before this step."


def _why_loss(xb, logits):
    """Why the loss of a batch is not finite (called only when it is not)."""
    xb = np.asarray(xb)
    if xb.dtype.kind in "fc" and not np.isfinite(xb).all():
        return "the input batch contains NaN or inf values." + _KEPT
    if not np.isfinite(logits).all():
        return ("the network's outputs overflowed (NaN or inf logits): the weights grew too large, "
                "usually because the learning rate is too large." + _KEPT)
    return "the loss overflowed." + _KEPT


def _why_update(model, optimizer):
    grads = model.grads()
    bad = [k for k, g in grads.items() if not np.isfinite(g).all()]
    if bad:
        return f"the gradients of {bad} are not finite (overflow in the backward pass)." + _KEPT
    return (f"the update of the weights is not finite (NaN or inf) with learning rate "
            f"{getattr(optimizer, 'lr', '?')}: it is too large for float arithmetic." + _KEPT)


def fit(model, x, y, *, epochs=1, batch_size=32, optimizer=None, lr=None, seed=0,
        x_val=None, y_val=None, progress=True, log=None, lr_schedule=None, augment=None):
    """Trains ``model`` with softmax cross-entropy; returns the history.

    Each epoch visits every example once, in an order drawn from ``seed``; the same seed,
    data and initial weights give the same weights bit for bit. Each step is
    :meth:`cnn_lib.Sequential.train_step` (forward, loss and backward; on two cores, the two
    halves of a batch side by side), then ``optimizer.step``.

    Parameters
    ----------
    optimizer : an :mod:`cnn_lib.optim` optimizer over ``model.params()``;
        default ``Adam(model.params(), lr=lr)``.
    lr : the learning rate of that default Adam (``1e-3`` when not given). With ``optimizer``,
        the learning rate is the optimizer's own: giving ``lr`` too is an error.
    x_val, y_val : optional held-out set evaluated after each epoch.
    progress : show a tqdm progress bar (text in a terminal, a widget in Jupyter).
    log : optional callable ``log(epoch, step, loss)`` called after every step.
    lr_schedule : optional callable ``lr_schedule(epoch) -> lr`` (epochs count from 0),
        applied to ``optimizer.lr`` at the start of each epoch.
    augment : optional callable ``augment(xb, rng) -> xb`` applied to each training batch
        (e.g. random shifts); ``rng`` is the fit's seeded Generator, so runs stay reproducible.

    Errors
    ------
    Arguments are checked before the first step (``x_val`` needs ``y_val``). ``fit`` stops with
    ``FloatingPointError`` at the first step whose loss or update is not finite (NaN or inf
    pixels, a learning rate far too large...), naming the epoch, the step and the reason; the
    model's weights are then exactly those before that step (the optimizer's state may have
    moved: make a new one to continue). A schedule value or an optimizer setting that is not
    a positive finite number (``optimizer.check()``) is refused at the start of its epoch.

    Returns
    -------
    history : dict of per-epoch lists ``loss``, ``accuracy`` (running means over the
        epoch's batches), ``seconds`` and, with a validation set, ``val_loss``,
        ``val_accuracy``; plus ``step_loss``, the loss of every step.
    """
    x, y = _check_xy(x, y)
    epochs, batch_size = check_count(epochs, "epochs"), check_count(batch_size, "batch_size")
    if (x_val is None) != (y_val is None):
        raise ValueError("give both x_val and y_val, or neither: "
                         + ("y_val is missing" if y_val is None else "x_val is missing"))
    if x_val is not None:
        x_val, y_val = _check_xy(x_val, y_val)
        if x_val.shape[1:] != x.shape[1:]:      # else the error would come after a whole epoch
            raise ValueError(f"x_val holds inputs of shape {x_val.shape[1:]}, x of shape {x.shape[1:]}: "
                             "they must match")
    if optimizer is None:
        optimizer = Adam(model.params(), lr=1e-3 if lr is None else lr)
    elif lr is not None:                          # it would be ignored: the optimizer has its own
        raise ValueError(f"lr={lr!r} is the learning rate of fit's default Adam; with optimizer=... give the "
                         f"learning rate to the optimizer instead, e.g. SGD(model.params(), lr={lr!r})")
    _check_optimizer(optimizer, model)
    params = list(model.params().values())
    before = [np.empty_like(p) for p in params]  # the weights before the current step (restored on failure)
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
                optimizer.lr = _schedule_value(lr_schedule, epoch)
            if hasattr(optimizer, "check"):
                optimizer.check()
            start, loss_sum, correct = time.perf_counter(), 0.0, 0
            for step, idx in enumerate(minibatches(len(x), batch_size, rng)):
                xb, yb = x[idx], y[idx]
                if augment is not None:
                    xb = augment(xb, rng)
                    if np.shape(xb)[:1] != (len(idx),):
                        raise ValueError(f"augment(xb, rng) must return a batch of {len(idx)} inputs like xb "
                                         f"{x[idx].shape}, got {type(xb).__name__} of shape {np.shape(xb)}")
                loss, logits = model.train_step(xb, yb)   # forward, loss, backward: fills the gradients
                if not math.isfinite(loss):       # a scalar: free to check
                    raise FloatingPointError(_where(epoch, step, epochs, steps)
                                             + f"the loss is {loss}: " + _why_loss(xb, logits))
                for b, p in zip(before, params):
                    np.copyto(b, p)
                optimizer.step(model.grads())
                if not all(np.isfinite(p.sum()) for p in params) and not all(np.isfinite(p).all() for p in params):
                    # one reduction per array; the exact test only if a sum overflowed or is NaN
                    for b, p in zip(before, params):
                        np.copyto(p, b)
                    raise FloatingPointError(_where(epoch, step, epochs, steps) + _why_update(model, optimizer))
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
