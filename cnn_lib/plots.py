"""Matplotlib helpers used by the book's chapters.

Every function takes an existing ``ax`` (or ``axes``) or creates a new figure, draws on it
and returns it, so that a chapter can combine several plots in one figure.

Matplotlib is a dependency of the book, not of the library: it is imported inside the
functions, so ``import cnn_lib`` and ``import cnn_lib.plots`` never import it.
Figures created here have an opaque white background, which stays legible when the book
is read with a dark theme.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["plot_digits", "plot_class_counts", "plot_history"]

#: Colour of a title whose prediction differs from the label.
WRONG_COLOR = "tab:red"


def _new_axes(nrows=1, ncols=1, figsize=None):
    """Create a figure with an opaque white background and return its axes."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        nrows, ncols, figsize=figsize, facecolor="white", squeeze=False, layout="constrained"
    )
    return fig, axes


def _as_images(images):
    """Return ``images`` as an array of shape (N, H, W).

    Accepts (N, 1, H, W) (the library's NCHW layout with one channel) or (N, H, W).
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] == 1:
        return images[:, 0]  # (N, H, W)
    if images.ndim == 3:
        return images
    raise ValueError(
        f"images must have shape (N, 1, H, W) or (N, H, W); got shape {images.shape}"
    )


def _as_labels(labels, name, n=None):
    """Return ``labels`` as a 1-D integer array, checking its length against ``n``."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices; got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integers; got dtype {labels.dtype}")
    if n is not None and labels.shape[0] != n:
        raise ValueError(f"{name} has {labels.shape[0]} entries but there are {n} images")
    return labels


def plot_digits(images, labels, *, predictions=None, ncols=10, axes=None):
    """Show images in a grid, each titled with its label.

    Parameters
    ----------
    images : array, shape (N, 1, H, W) or (N, H, W)
        The images, e.g. MNIST digits (raw or normalized: each image is scaled to its own
        minimum and maximum).
    labels : array of int, shape (N,)
        The true class of each image.
    predictions : array of int, shape (N,), optional
        Predicted classes. Titles then read ``true y / pred p`` and are red where the
        prediction differs from the label.
    ncols : int
        Number of columns of the grid created when ``axes`` is not given.
    axes : array of Axes, optional
        At least N axes to draw into (any shape); axes left over are hidden.

    Returns
    -------
    numpy.ndarray of Axes
        The grid, shape (ceil(N / ncols), ncols) when created here, else ``axes`` as given.

    Raises
    ------
    ValueError
        If the shapes do not match, there are no images, or there are not enough axes.
    """
    images = _as_images(images)  # (N, H, W)
    n = images.shape[0]
    if n == 0:
        raise ValueError("plot_digits needs at least one image")
    labels = _as_labels(labels, "labels", n)
    if predictions is not None:
        predictions = _as_labels(predictions, "predictions", n)
    if axes is None:
        if not isinstance(ncols, (int, np.integer)) or ncols < 1:
            raise ValueError(f"ncols must be a positive integer; got {ncols!r}")
        ncols = min(int(ncols), n)
        nrows = math.ceil(n / ncols)
        row_height = 1.45 if predictions is not None else 1.25
        _, axes = _new_axes(nrows, ncols, figsize=(1.1 * ncols, row_height * nrows))
    axes = np.asarray(axes)
    flat = axes.ravel()
    if flat.size < n:
        raise ValueError(f"got {flat.size} axes for {n} images")

    for i, ax in enumerate(flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.set_axis_off()
            continue
        ax.imshow(images[i], cmap="gray", interpolation="nearest")
        if predictions is None:
            ax.set_title(str(labels[i]), fontsize=11)
        else:
            wrong = predictions[i] != labels[i]
            ax.set_title(
                f"true {labels[i]}\npred {predictions[i]}",
                fontsize=9,
                color=WRONG_COLOR if wrong else "black",
                fontweight="bold" if wrong else "normal",
            )
    return axes


def plot_class_counts(labels, ax=None, *, num_classes=10, title="Images per class"):
    """Bar chart of how many examples each class has.

    Parameters
    ----------
    labels : array of int, shape (N,)
        Class indices in ``0 .. num_classes - 1``.
    ax : Axes, optional
        Where to draw; a new figure is created when omitted.
    num_classes : int
        Number of bars (classes that never occur get a bar of height 0).
    title : str
        Title of the axes.

    Returns
    -------
    Axes
        With one bar per class, each annotated with its count.

    Raises
    ------
    ValueError
        If ``labels`` is not a 1-D integer array with values in ``0 .. num_classes - 1``.
    """
    labels = _as_labels(labels, "labels")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1}; got values from {labels.min()} "
            f"to {labels.max()}"
        )
    counts = np.bincount(labels, minlength=num_classes)  # (num_classes,)
    if ax is None:
        _, axs = _new_axes(figsize=(6.4, 3.6))
        ax = axs[0, 0]
    classes = np.arange(num_classes)
    bars = ax.bar(classes, counts, color="tab:blue", edgecolor="black", linewidth=0.5)
    ax.bar_label(bars, labels=[f"{c:,}" for c in counts], fontsize=8, padding=2)
    ax.set_xticks(classes)
    ax.set_xlabel("class (digit)")
    ax.set_ylabel("number of images")
    ax.set_title(title)
    ax.set_ylim(0, 1.12 * max(int(counts.max()), 1))  # room for the labels above the bars
    return ax


def plot_history(history, ax=None):
    """Plot the training loss and accuracy per epoch.

    The loss uses the left y-axis of ``ax``; the accuracies use a twin y-axis on the
    right (``ax.twinx()``), from 0 to 1.

    Parameters
    ----------
    history : dict
        Lists of per-epoch values: ``"loss"`` and ``"accuracy"`` (required),
        ``"val_accuracy"`` (optional), all of the same length.
    ax : Axes, optional
        Where to draw; a new figure is created when omitted.

    Returns
    -------
    Axes
        The loss axes; the accuracy axes is in ``ax.figure.axes`` as its twin.

    Raises
    ------
    ValueError
        If a required key is missing, the lists are empty or have different lengths.
    """
    from matplotlib.ticker import MaxNLocator

    missing = [key for key in ("loss", "accuracy") if key not in history]
    if missing:
        raise ValueError(f"history lacks {missing}; it has keys {sorted(history)}")
    series = {
        key: np.asarray(history[key], dtype=float)
        for key in ("loss", "accuracy", "val_accuracy")
        if key in history
    }
    lengths = {key: values.shape for key, values in series.items()}
    epochs = len(series["loss"])
    if epochs == 0 or any(shape != (epochs,) for shape in lengths.values()):
        raise ValueError(f"history needs non-empty 1-D lists of the same length; got {lengths}")

    if ax is None:
        _, axs = _new_axes(figsize=(6.4, 3.6))
        ax = axs[0, 0]
    x = np.arange(1, epochs + 1)
    lines = ax.plot(x, series["loss"], "o-", color="tab:blue", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Training history")

    ax_acc = ax.twinx()
    lines += ax_acc.plot(x, series["accuracy"], "s--", color="tab:orange", label="training accuracy")
    if "val_accuracy" in series:
        lines += ax_acc.plot(
            x, series["val_accuracy"], "^:", color="tab:green", label="validation accuracy"
        )
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1.02)
    ax.legend(lines, [line.get_label() for line in lines], loc="center right")
    return ax
