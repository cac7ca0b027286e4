"""Matplotlib helpers used by the book's chapters.

Every function takes an existing ``ax`` (or ``axes``) or creates a new figure, draws on it
and returns it, so that a chapter can combine several plots in one figure.

Matplotlib is a dependency of the book, not of the library: it is imported inside the
functions, so ``import cnn_lib`` and ``import cnn_lib.teaching.plots`` never import it.
Figures created here have an opaque white background, which stays legible when the book
is read with a dark theme.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "plot_digits", "plot_class_counts", "plot_history",
    "PALETTE", "new_figure", "plot_mlp", "plot_cost_surface", "plot_path", "plot_probabilities",
]

#: Colour of a title whose prediction differs from the label.
WRONG_COLOR = "tab:red"

#: The Okabe-Ito palette (distinguishable with the common forms of colour blindness):
#: blue, orange, bluish green, vermillion, reddish purple, sky blue, yellow, black.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


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
                fontsize=10,
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
    ax.bar_label(bars, labels=[f"{c:,}" for c in counts], fontsize=10, padding=2)
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


# --------------------------------------------------------------------------- part I helpers
def new_figure(nrows=1, ncols=1, figsize=None, **kwargs):
    """``plt.subplots`` with an opaque white background and constrained layout.

    Returns ``(fig, ax)`` for one axes, else ``(fig, axes)`` with ``axes`` squeezed like
    ``plt.subplots`` does. Other keyword arguments (e.g. ``width_ratios``) go to ``plt.subplots``.
    """
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=figsize, facecolor="white", layout="constrained", **kwargs)


def _shown_neurons(size, max_shown):
    """Which neurons of a layer of ``size`` to draw, and where a gap (an ellipsis) goes.

    Returns ``(indices, gap)``: all neurons when ``size <= max_shown``; else the first and
    last ``max_shown - 1`` ones, and ``gap``, the row of the ellipsis between them.
    """
    if size <= max_shown:
        return list(range(size)), None
    head = max_shown // 2
    tail = max(1, max_shown - 1 - head)
    return list(range(head)) + list(range(size - tail, size)), head


def plot_mlp(sizes, ax=None, *, max_shown=8, title=None, layer_names=None):
    """Draw a fully connected network: one column of neurons per layer, every neuron of a
    layer linked to every neuron of the next.

    Parameters
    ----------
    sizes : sequence of int, e.g. ``(784, 128, 10)``
        Number of neurons per layer, input first (at least two layers).
    ax : Axes, optional
        Where to draw; a new figure is created when omitted.
    max_shown : int
        Largest number of rows drawn per layer (at least 2): a layer with more neurons shows
        ``max_shown - 1`` of them, its first and last ones, with a vertical ellipsis between.
    title : str, optional
        Default: the sizes and the parameter count, e.g. ``784-128-10: 101,770 parameters``.
    layer_names : sequence of str, optional
        One name per layer; default ``input``, ``hidden 1``, ..., ``output``.

    Returns
    -------
    Axes
        With one circle per drawn neuron (``ax.patches``) and each layer's size below it.

    Raises
    ------
    ValueError
        Fewer than two layers, a size below 1, ``max_shown < 2`` or a wrong number of names.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Circle

    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"need at least two layers of at least one neuron each; got sizes {sizes}")
    if int(max_shown) < 2:
        raise ValueError(f"max_shown must be at least 2; got {max_shown}")
    L = len(sizes)
    if layer_names is None:
        layer_names = ["input"] + [f"hidden {l}" for l in range(1, L - 1)] + ["output"]
    if len(layer_names) != L:
        raise ValueError(f"got {len(layer_names)} layer names for {L} layers")
    if ax is None:
        _, axs = _new_axes(figsize=(max(4.0, 1.9 * L), 4.2))
        ax = axs[0, 0]

    radius = 0.16
    columns = []                                                     # per layer: [(x, y), ...], gap y
    for l, size in enumerate(sizes):
        shown, gap = _shown_neurons(size, int(max_shown))
        slots = len(shown) + (gap is not None)
        ys = (np.arange(slots)[::-1] - (slots - 1) / 2) * 0.5        # top to bottom, centred on 0
        points, gap_y = [], None
        for k, y in enumerate(ys):
            if gap is not None and k == gap:
                gap_y = y
                continue
            points.append((1.6 * l, y))
        columns.append((points, gap_y))

    segments = [(p, q) for (a, _), (b, _) in zip(columns[:-1], columns[1:]) for p in a for q in b]
    ax.add_collection(LineCollection(segments, colors="0.55", linewidths=0.5, alpha=0.6, zorder=1))
    colors = [PALETTE[0]] + [PALETTE[1]] * (L - 2) + [PALETTE[2]]
    bottom = min(y for points, _ in columns for _, y in points)
    for l, ((points, gap_y), size) in enumerate(zip(columns, sizes)):
        for (x, y) in points:
            ax.add_patch(Circle((x, y), radius, facecolor=colors[l], edgecolor="black", linewidth=0.8, zorder=2))
        if gap_y is not None:
            ax.text(1.6 * l, gap_y, "⋮", ha="center", va="center", fontsize=16, zorder=2)
        ax.text(1.6 * l, bottom - 0.45, f"{layer_names[l]}\n{size:,}", ha="center", va="top", fontsize=11)
    top = max(y for points, _ in columns for _, y in points)
    ax.set_xlim(-0.6, 1.6 * (L - 1) + 0.6)
    ax.set_ylim(bottom - 1.25, top + 0.4)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if title is None:
        total = sum((d + 1) * m for d, m in zip(sizes[:-1], sizes[1:]))
        title = f"{'-'.join(str(s) for s in sizes)}: {total:,} parameters"
    ax.set_title(title, fontsize=12)
    return ax


def plot_cost_surface(x, y, cost, ax=None, *, levels=25, xlabel="$w_1$", ylabel="$w_2$",
                      title="Cost surface", colorbar=True):
    """Filled contour plot of a cost over a 2-D grid of parameters, with contour lines.

    The levels are spaced evenly in the square root of the cost (a cost that grows like a
    bowl then gets evenly spaced rings), from the minimum to the maximum of ``cost``.

    Parameters
    ----------
    x : array, shape (nx,)
        Values of the first parameter (the horizontal axis).
    y : array, shape (ny,)
        Values of the second parameter (the vertical axis).
    cost : array, shape (ny, nx)
        ``cost[i, j]`` is the cost at ``(x[j], y[i])`` (as ``np.meshgrid(x, y)`` gives).
    ax : Axes, optional
        Where to draw; a new figure is created when omitted.
    levels : int
        Number of filled levels.
    colorbar : bool
        Add a colour bar labelled "cost".

    Returns
    -------
    Axes

    Raises
    ------
    ValueError
        If the shapes do not match, or ``cost`` has values that are negative or not finite.
    """
    x, y, cost = np.asarray(x, float), np.asarray(y, float), np.asarray(cost, float)
    if x.ndim != 1 or y.ndim != 1 or cost.shape != (y.size, x.size):
        raise ValueError(f"cost must have shape (len(y), len(x)) = ({y.size}, {x.size}); got {cost.shape}")
    if not np.all(np.isfinite(cost)) or cost.min() < 0:
        raise ValueError("cost must be finite and non-negative to be drawn on a square-root scale")
    if ax is None:
        _, axs = _new_axes(figsize=(6.0, 5.0))
        ax = axs[0, 0]
    lo, hi = np.sqrt(cost.min()), np.sqrt(cost.max())
    bounds = np.linspace(lo, hi if hi > lo else lo + 1, int(levels) + 1) ** 2
    filled = ax.contourf(x, y, cost, levels=bounds, cmap="viridis")
    ax.contour(x, y, cost, levels=bounds[::2], colors="black", linewidths=0.4, alpha=0.6)
    if colorbar:
        from matplotlib.ticker import MaxNLocator

        bar = ax.figure.colorbar(filled, ax=ax)
        ticks = MaxNLocator(6).tick_values(bounds[0], bounds[-1])
        bar.set_ticks(ticks[(ticks >= bounds[0]) & (ticks <= bounds[-1])])
        bar.set_label("cost")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="box")
    return ax


def plot_path(path, ax, *, color=PALETTE[3], label=None, clip=True):
    """Draw a path of parameter values (e.g. gradient-descent iterates) on ``ax``.

    The start is a large circle, each step a small dot, the end a cross. With ``clip``
    the axes keep their limits, so a path that flies off (a divergent run) leaves the
    picture instead of rescaling it.

    Parameters
    ----------
    path : array, shape (T + 1, 2)
        The points, start first.
    ax : Axes
        Where to draw (typically one made by :func:`plot_cost_surface`).

    A diverged run is drawn up to its last finite point; with ``clip``, points far outside
    the axes are pulled in to 1000 axis spans (off the drawing either way).

    Returns
    -------
    Axes
    """
    path = np.array(path, dtype=float)
    if path.ndim != 2 or path.shape[1] != 2 or len(path) == 0:
        raise ValueError(f"path must have shape (T + 1, 2); got {path.shape}")
    finite = np.isfinite(path).all(axis=1)
    if not finite.all():                  # a diverged run ends on overflowed points: draw up to them
        path = path[:np.argmin(finite)] if finite[0] else path[:0]
        if len(path) == 0:
            return ax
    limits = (tuple(map(float, ax.get_xlim())), tuple(map(float, ax.get_ylim())))
    if clip:                              # points far outside (up to 1e308) break matplotlib's autoscale
        for axis, (lo, hi) in enumerate(limits):
            span = 1e3 * max(abs(hi - lo), 1.0)
            path[:, axis] = np.clip(path[:, axis], lo - span, hi + span)
    ax.plot(path[:, 0], path[:, 1], "-", color=color, linewidth=1.8, label=label, zorder=3)
    ax.plot(path[:, 0], path[:, 1], ".", color=color, markersize=4, zorder=3)
    ax.plot(*path[0], "o", color=color, markersize=9, markeredgecolor="white", zorder=4)
    ax.plot(*path[-1], "X", color=color, markersize=10, markeredgecolor="white", zorder=4)
    if clip:
        ax.set_xlim(limits[0])
        ax.set_ylim(limits[1])
    return ax


def plot_probabilities(probs, ax=None, *, label=None, title="Predicted probabilities", class_names=None):
    """Bar chart of a probability vector, the true class highlighted.

    Parameters
    ----------
    probs : array, shape (K,)
        Probabilities of the ``K`` classes (each in [0, 1]).
    label : int, optional
        The true class: its bar is drawn in a second colour and hatched, and its tick label
        reads "(true)" below the class name.
    class_names : sequence of str, optional
        Tick labels; default ``0 .. K-1``.

    Returns
    -------
    Axes
        With one bar per class, each annotated with its probability when it is at least 0.01.

    Raises
    ------
    ValueError
        Wrong shape, values outside [0, 1], or a label outside ``0 .. K-1``.
    """
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 1 or probs.size == 0:
        raise ValueError(f"probs must be a non-empty 1-D array; got shape {probs.shape}")
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1:
        raise ValueError("probabilities must lie in [0, 1]")
    K = probs.size
    if label is not None and not 0 <= int(label) < K:
        raise ValueError(f"label must lie in 0..{K - 1}; got {label}")
    if class_names is None:
        class_names = [str(k) for k in range(K)]
    if len(class_names) != K:
        raise ValueError(f"got {len(class_names)} class names for {K} classes")
    if ax is None:
        _, axs = _new_axes(figsize=(6.0, 3.4))
        ax = axs[0, 0]
    colors = [PALETTE[0]] * K
    hatches = [""] * K
    if label is not None:
        colors[int(label)], hatches[int(label)] = PALETTE[1], "//"
    bars = ax.bar(np.arange(K), probs, color=colors, edgecolor="black", linewidth=0.6, hatch=hatches)
    ax.bar_label(bars, labels=[f"{p:.2f}" if p >= 0.01 else "" for p in probs], fontsize=8, padding=2)
    names = list(class_names)
    if label is not None:
        names[int(label)] = f"{names[int(label)]}\n(true)"
    ax.set_xticks(np.arange(K), names)
    if label is not None:
        tick = ax.get_xticklabels()[int(label)]
        tick.set_fontweight("bold")
        tick.set_color(PALETTE[3])
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("class")
    ax.set_ylabel("probability")
    ax.set_title(title)
    return ax
