"""Part II (convolutional networks): the logic, figures and fallbacks of the chapters' widgets.

Every function that a widget calls is a plain function of its parameters that returns data,
a matplotlib ``Figure`` or an HTML string; for an invalid setting it returns a **message
string** (never raises), so that a slider dragged to an impossible value shows why. The
``*_widget`` functions only wire ipywidgets controls to them. Each chapter also shows the
idea without a kernel: a static figure, an animation (:func:`scan_animation`, to embed with
``HTML(anim.to_jshtml())``) or the self-contained HTML + JavaScript stride/padding explorer
(:func:`explorer_html`), which responds to its controls in the online book.

Chapters and their functions:

* *Why convolutions*: :func:`param_counts`, :func:`param_count_figure`,
  :func:`connection_matrix_figure`, :func:`permutation_figure`, :func:`accuracy_figure`.
* *The convolutional neuron*: :func:`feature_map`, :func:`feature_map_figure`,
  :func:`kernel_gallery_figure`, :func:`scan_animation`, :func:`feature_map_widget`.
* *Convolution versus cross-correlation*: :func:`flip_figure`, :func:`flip_widget`.
* *Channels, stride and padding*: :func:`explorer_state`, :func:`explorer_figure`,
  :func:`explorer_data`, :func:`explorer_js`, :func:`explorer_html`, :func:`explorer_widget`.
* *Pooling*: :func:`pool_figure`, :func:`pool_grid_figure`, :func:`pooling_widget`.
* *Back-propagation*: :func:`grad_input_figure`, :func:`maxpool_routing_figure`,
  :func:`backprop_widget`.

Matplotlib and ipywidgets are imported inside the functions that need them.
"""

from __future__ import annotations

import base64
import html
import json
import math

import numpy as np

from .. import conv_teaching as T
from ... import functional as F
from .common import Message, finite_array, finite_number, show_result, static_text, whole_number
from ...shapes import pair

__all__ = [
    "OKABE_ITO", "draw_grid", "show_result", "param_counts", "param_count_figure", "connection_matrix_figure",
    "permutation_figure", "accuracy_figure",
    "feature_map", "feature_map_figure", "kernel_gallery_figure", "SCAN_MAX_SIDE", "SCAN_MAX_FRAMES", "scan_animation", "feature_map_widget",
    "NUMBERED_KERNEL", "flip_figure", "correlation_vs_convolution_figure", "flip_widget",
    "EXPLORER_RANGES", "EXPLORER_DEFAULTS", "EXPLORER_LIMITS", "explorer_state", "explorer_figure", "explorer_data",
    "explorer_js", "explorer_html", "explorer_widget",
    "pool_figure", "pool_grid_figure", "pooling_widget",
    "grad_input_figure", "maxpool_routing_figure", "backprop_widget",
]

#: Okabe & Ito's colour-blind-safe palette.
OKABE_ITO = {
    "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "black": "#000000",
}
HIGHLIGHT = OKABE_ITO["orange"]
#: Diverging colour map for signed values (red/blue: readable with the common colour-vision deficiencies).
DIVERGING = "RdBu_r"


# --------------------------------------------------------------------------- helpers
def _figure(nrows=1, ncols=1, figsize=(8, 3), dpi=None, **kw):
    """A figure with an opaque white background (legible in dark mode) and its axes array."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, dpi=dpi, facecolor="white", squeeze=False,
                             layout="constrained", **kw)
    return fig, axes


def _image2d(image):
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 4 and image.shape[:2] == (1, 1):
        image = image[0, 0]
    elif image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2:
        raise ValueError(f"expected one image (H, W), (1, H, W) or (1, 1, H, W), got shape {image.shape}")
    return image


def _text_color(value, vmin, vmax, cmap):
    """Black or white, whichever reads better on the colour ``cmap`` gives ``value``."""
    import matplotlib

    t = 0.5 if vmax == vmin else (value - vmin) / (vmax - vmin)
    r, g, b, _ = matplotlib.colormaps.get_cmap(cmap)(float(np.clip(t, 0, 1)))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def _fmt(v):
    v = float(v)
    if abs(v - round(v)) < 1e-9:
        return f"{int(round(v))}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def draw_grid(ax, A, *, cmap="gray", vmin=None, vmax=None, annotate=True, fontsize=10, title=None,
              fmt=_fmt, mask=None):
    """Draw a 2-D array as a grid of cells (optionally with the value in each cell).

    ``mask`` (boolean, same shape) hides the cells where it is False (drawn grey, darker than
    the near-white that diverging colour maps give to 0).
    Returns ``ax``.
    """
    A = np.asarray(A, dtype=np.float64)
    if vmin is None:
        vmin = float(A.min()) if mask is None else float(A[mask].min(initial=0))
    if vmax is None:
        vmax = float(A.max()) if mask is None else float(A[mask].max(initial=1))
    if vmax == vmin:
        vmax = vmin + 1.0
    shown = np.ma.masked_array(A, mask=None if mask is None else ~mask)
    import matplotlib

    cm = matplotlib.colormaps.get_cmap(cmap).with_extremes(bad="#c8c8c8")   # cells not computed yet
    ax.imshow(shown, cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest")
    H, W = A.shape
    from matplotlib.collections import LineCollection

    lines = [[(c - 0.5, -0.5), (c - 0.5, H - 0.5)] for c in range(W + 1)]
    lines += [[(-0.5, r - 0.5), (W - 0.5, r - 0.5)] for r in range(H + 1)]
    ax.add_collection(LineCollection(lines, colors="#888888", linewidths=0.5))
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if annotate:
        for r in range(H):
            for c in range(W):
                if mask is None or mask[r, c]:
                    ax.text(c, r, fmt(A[r, c]), ha="center", va="center", fontsize=fontsize,
                            color=_text_color(A[r, c], vmin, vmax, cmap))
    if title:
        ax.set_title(title, fontsize=11)
    return ax


def _rect(ax, r, c, h, w, color=HIGHLIGHT, lw=3, ls="-", fill=False, alpha=1.0):
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((c - 0.5, r - 0.5), w, h, fill=fill, edgecolor=color, facecolor=color,
                           linewidth=lw, linestyle=ls, alpha=alpha))


# =========================================================================== 1. why convolutions
def param_counts(n, k):
    """Parameters of a layer mapping an ``n x n`` image to the ``(n-k+1) x (n-k+1)`` map of
    one ``k x k`` filter, with three kinds of connections.

    Returns ``{"full": ..., "local": ..., "shared": ...}`` (weights + biases): ``full``, every
    output connected to every pixel (a dense layer); ``local``, each output connected to its
    ``k x k`` window only, with its own weights; ``shared``, the same ``k x k`` weights and
    bias everywhere (a convolution). Raises ``ValueError`` if the kernel does not fit.
    """
    n_out = F.conv_output_size(n, k)
    outputs = n_out * n_out
    return {"full": outputs * n * n + outputs, "local": outputs * k * k + outputs, "shared": k * k + 1}


def param_count_figure(k=5, sizes=(8, 12, 16, 20, 28, 40, 64, 128, 224), ax=None):
    """Log-scale plot of :func:`param_counts` against the image size, for a ``k x k`` kernel.

    Returns the Figure, or a message string for an invalid ``k``.
    """
    k, err = whole_number(k, "kernel size", 1, 1024)
    if err:
        return err
    if not 1 <= len(sizes) <= 20:
        return Message(f"Give 1 to 20 image sizes, got {len(sizes)}.")
    checked = []
    for n in sizes:
        n, err = whole_number(n, "An image size", 1, 10 ** 5)
        if err:
            return err
        checked.append(n)
    sizes = [n for n in checked if n >= k]
    if not sizes:
        return f"No image size in {sizes!r} is at least the kernel size {k}."
    counts = [param_counts(n, k) for n in sizes]
    if ax is None:
        fig, axes = _figure(figsize=(7, 4))
        ax = axes[0, 0]
    styles = [("full", "fully connected (dense)", OKABE_ITO["vermillion"], "o-"),
              ("local", "local, not shared", OKABE_ITO["blue"], "s--"),
              ("shared", "local and shared (convolution)", OKABE_ITO["green"], "^-")]
    for key, label, color, style in styles:
        ax.plot(sizes, [c[key] for c in counts], style, color=color, label=label, linewidth=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("image side n (pixels)")
    ax.set_ylabel("parameters (log scale)")
    ax.set_title(f"Parameters of one {k}×{k} feature map of an n×n image")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=10)
    return ax.figure


def connection_matrix_figure(K, H=6, W=6):
    """The weight matrix of a convolution seen as a dense layer (:func:`cnn_lib.teaching.conv_teaching.conv_as_matrix`):
    each row is one output, each column one input pixel; the colour says which kernel
    weight sits there (grey: no connection). Sizes: kernel at most 7×7, image at most 16×16.
    Returns the Figure, or a message for an invalid setting."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    K, err = finite_array(K, "The kernel", ndim=2, max_side=7)
    if err:
        return err
    KH, KW = K.shape
    H, err = whole_number(H, "The image height H", KH, 16)
    if err:
        return err
    W, err = whole_number(W, "The image width W", KW, 16)
    if err:
        return err
    index_kernel = np.arange(1, KH * KW + 1, dtype=np.float64).reshape(KH, KW)  # which weight
    A = T.conv_as_matrix(index_kernel, H, W)                                     # (H_out*W_out, H*W)
    fig, axes = _figure(1, 2, figsize=(11, 4.2), width_ratios=[3.2, 1])
    ax = axes[0, 0]
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 1, KH * KW))
    cmap = ListedColormap(colors).with_extremes(bad="#f2f2f2")
    ax.imshow(np.ma.masked_equal(A, 0), cmap=cmap, vmin=0.5, vmax=KH * KW + 0.5, interpolation="nearest",
              aspect="auto")
    ax.set_xlabel(f"input pixel (the {H}×{W} image, flattened: {H * W} columns)")
    ax.set_ylabel(f"output (the {A.shape[0]} feature-map values)")
    ax.set_title(f"A {KH}×{KW} convolution as a {A.shape[0]}×{A.shape[1]} weight matrix")
    ax2 = axes[0, 1]
    draw_grid(ax2, index_kernel, cmap=ListedColormap(colors), vmin=0.5, vmax=KH * KW + 0.5,
              fmt=lambda v: f"w{int(v)}", title="kernel weights (colours)")
    return fig


def permutation_figure(images, perm, n=6):
    """Digits before (top) and after (bottom) one fixed permutation of their pixels.

    ``images`` (N, 1, H, W) or (N, H, W); ``perm`` a permutation of ``range(H*W)``; ``n`` at
    most 12. Returns the Figure, or a message for an invalid ``n``."""
    imgs = np.asarray(images)
    imgs = imgs[:, 0] if imgs.ndim == 4 else imgs
    n, err = whole_number(n, "The number of images n", 1, 12)
    if err:
        return err
    n = min(n, len(imgs))
    H, W = imgs.shape[1:]
    fig, axes = _figure(2, n, figsize=(1.6 * n, 3.6))
    for j in range(n):
        for row, img in enumerate((imgs[j], imgs[j].reshape(-1)[perm].reshape(H, W))):
            ax = axes[row, j]
            ax.imshow(img, cmap="gray", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, j].set_title(f"image {j + 1}", fontsize=10)
    axes[0, 0].set_ylabel("original", fontsize=11)
    axes[1, 0].set_ylabel("permuted", fontsize=11)
    fig.suptitle("The same fixed pixel permutation applied to every image", fontsize=12)
    return fig


def accuracy_figure(results):
    """Grouped bars of test accuracy: ``results = {model name: {"original": acc, "permuted": acc}}``.
    Returns the Figure."""
    names = list(results)
    fig, axes = _figure(figsize=(7, 4))
    ax = axes[0, 0]
    x = np.arange(len(names))
    for offset, key, color, hatch in ((-0.2, "original", OKABE_ITO["blue"], ""),
                                      (0.2, "permuted", OKABE_ITO["orange"], "//")):
        vals = [100 * results[m][key] for m in names]
        bars = ax.bar(x + offset, vals, 0.4, color=color, hatch=hatch, edgecolor="black", label=f"{key} pixels")
        ax.bar_label(bars, labels=[f"{v:.1f}%" for v in vals], fontsize=10, padding=2)
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    lo = min(100 * min(r.values()) for r in results.values())
    bottom = max(0, 5 * math.floor(lo / 5) - 5)
    ax.set_ylim(bottom, 100)
    ax.set_ylabel(f"test accuracy (%, axis from {bottom})" if bottom else "test accuracy (%)")
    ax.set_title("Original versus permuted pixels")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=10, frameon=False)
    return fig


# =========================================================================== 2. the convolutional neuron
_ACTIVATIONS = {"none": lambda z: z, "relu": F.relu, "sigmoid": F.sigmoid}


def feature_map(image, kernel, bias=0.0, activation="none"):
    """The feature map ``phi(K ⋆ M + b)`` of one image (``phi`` the activation) (valid positions, stride 1), computed
    with :func:`cnn_lib.functional.conv2d`. Shapes ``(H, W)``, ``(KH, KW)`` -> ``(H-KH+1, W-KW+1)``."""
    M = _image2d(image)
    K = np.asarray(kernel, dtype=np.float64)
    z = F.conv2d(M[None, None], K[None, None], np.array([float(bias)]))[0, 0]
    return _ACTIVATIONS[activation](z)


def feature_map_figure(image, kernel_name="sobel_x", bias=0.0, activation="relu"):
    """Input digit, kernel (with its numbers) and feature map, side by side.

    ``kernel_name`` is a key of :data:`cnn_lib.teaching.conv_teaching.KERNELS`; ``activation`` one of
    ``"none"``, ``"relu"``, ``"sigmoid"``; ``bias`` in [-1000, 1000]. Returns the Figure, or a
    message for invalid settings.
    """
    if kernel_name not in T.KERNELS:
        return f"Unknown kernel {kernel_name!r}; choose one of {', '.join(T.KERNELS)}."
    if activation not in _ACTIVATIONS:
        return f"Unknown activation {activation!r}; choose one of {', '.join(_ACTIVATIONS)}."
    bias, err = finite_number(bias, "The bias", -1000, 1000)
    if err:
        return err
    M = _image2d(image)
    K = T.KERNELS[kernel_name]
    fmap = feature_map(M, K, bias, activation)
    fig, axes = _figure(1, 3, figsize=(10, 3.6), width_ratios=[1, 0.6, 1])
    axes[0, 0].imshow(M, cmap="gray", interpolation="nearest")
    axes[0, 0].set_title(f"input M ({M.shape[0]}×{M.shape[1]})")
    draw_grid(axes[0, 1], K, cmap=DIVERGING, vmin=-np.abs(K).max(), vmax=np.abs(K).max(),
              title=f"kernel K: {kernel_name}")
    vmax = max(float(np.abs(fmap).max()), 1e-12)
    im = axes[0, 2].imshow(fmap, cmap=DIVERGING, vmin=-vmax, vmax=vmax, interpolation="nearest")
    axes[0, 2].set_title(f"feature map ({fmap.shape[0]}×{fmap.shape[1]}), {activation}, b = {bias:g}")
    fig.colorbar(im, ax=axes[0, 2], shrink=0.8).set_label("value of the feature map")
    for ax in (axes[0, 0], axes[0, 2]):
        ax.set_xlabel("column j")
        ax.set_ylabel("row i")
    return fig


def kernel_gallery_figure(image, names=("sobel_x", "sobel_y", "laplacian", "blur"), activation="relu"):
    """Static figure: a row of kernels and, under each, its feature map of ``image``.
    Returns the Figure, or a message for an unknown name."""
    bad = [n for n in names if n not in T.KERNELS]
    if bad:
        return f"Unknown kernel(s) {bad}; choose among {', '.join(T.KERNELS)}."
    if activation not in _ACTIVATIONS:
        return f"Unknown activation {activation!r}; choose one of {', '.join(_ACTIVATIONS)}."
    M = _image2d(image)
    fig, axes = _figure(2, len(names) + 1, figsize=(2.6 * (len(names) + 1), 5.4),
                        height_ratios=[0.75, 1])
    axes[0, 0].set_axis_off()
    axes[1, 0].imshow(M, cmap="gray", interpolation="nearest")
    axes[1, 0].set_title("input digit")
    axes[1, 0].set_xticks([])
    axes[1, 0].set_yticks([])
    for col, name in enumerate(names, start=1):
        K = T.KERNELS[name]
        draw_grid(axes[0, col], K, cmap=DIVERGING, vmin=-np.abs(K).max(), vmax=np.abs(K).max(),
                  title=name)
        fmap = feature_map(M, K, 0.0, activation)
        vmax = max(float(np.abs(fmap).max()), 1e-12)
        axes[1, col].imshow(fmap, cmap=DIVERGING, vmin=-vmax, vmax=vmax, interpolation="nearest")
        axes[1, col].set_title(f"{activation}(K ⋆ M)" if activation != "none" else "K ⋆ M")
        axes[1, col].set_xticks([])
        axes[1, col].set_yticks([])
    fig.suptitle("Kernels (top) and the feature maps they produce from one digit (bottom; red > 0 > blue)",
                 fontsize=12)
    return fig


#: Bounds of :func:`scan_animation`: cells per side of the padded input, and frames.
SCAN_MAX_SIDE = 20
SCAN_MAX_FRAMES = 400


def scan_animation(M, K=None, b=0.0, *, stride=1, padding=0, op="conv", interval=700, dpi=80,
                   title=None):
    """Animation of a window scanning an input, one output value per frame.

    ``op="conv"``: each frame shows the window of the (padded) input, the Hadamard product of
    the window with ``K`` (the report's eq. 6) and the feature map filled so far, ``F = K ⋆ M + b``.
    ``op="max"`` or ``"avg"``: a pooling window of ``K``'s shape (pass ``K=(kh, kw)``) and
    the pooled output. Show it in a notebook with ``HTML(anim.to_jshtml())`` (self-contained:
    plays in the online book). The figure is closed, so it is not displayed twice.

    Sizes are bounded so that the animation stays quick to build and legible: the padded
    input at most :data:`SCAN_MAX_SIDE` cells per side, at most :data:`SCAN_MAX_FRAMES` frames.

    Returns a ``matplotlib.animation.FuncAnimation``, or a message string for an invalid setting.
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    if op not in ("conv", "max", "avg"):
        return Message(f"Unknown operation {op!r}; choose 'conv', 'max' or 'avg'.")
    M, err = finite_array(M, "The input", ndim=2, max_side=SCAN_MAX_SIDE)
    if err:
        return err
    if op == "conv":
        K, err = finite_array(K, "The kernel", ndim=2, max_side=SCAN_MAX_SIDE)
        if err:
            return err
        KH, KW = K.shape
        b, err = finite_number(b, "The bias b")
        if err:
            return err
    else:
        if K is None:
            return Message(f"Pooling needs a window: pass K=(kh, kw), e.g. K=(2, 2), for op={op!r}.")
        window = K if isinstance(K, (tuple, list)) and len(K) == 2 else (K, K)
        KH, err = whole_number(window[0], "The window height", 1, SCAN_MAX_SIDE)
        if err:
            return err
        KW, err = whole_number(window[1], "The window width", 1, SCAN_MAX_SIDE)
        if err:
            return err
    pairs = []
    for value, name, lo in ((stride, "The stride", 1), (padding, "The padding", 0)):
        both = value if isinstance(value, (tuple, list)) and len(value) == 2 else (value, value)
        for v in both:
            v, err = whole_number(v, name, lo, SCAN_MAX_SIDE)
            if err:
                return err
            pairs.append(v)
    sh, sw, ph, pw = pairs
    if max(M.shape[0] + 2 * ph, M.shape[1] + 2 * pw) > SCAN_MAX_SIDE:
        return Message(f"The padded input would be {M.shape[0] + 2 * ph}×{M.shape[1] + 2 * pw}: this animation "
                       f"draws at most {SCAN_MAX_SIDE}×{SCAN_MAX_SIDE} cells; use a smaller input or padding.")
    try:
        H_out = F.conv_output_size(M.shape[0], KH, sh, ph)
        W_out = F.conv_output_size(M.shape[1], KW, sw, pw)
    except (TypeError, ValueError) as e:
        return Message(f"Invalid setting: {e}.")
    if H_out * W_out > SCAN_MAX_FRAMES:
        return Message(f"{H_out * W_out} output values: this animation shows at most {SCAN_MAX_FRAMES} frames.")
    Mp = np.pad(M, ((ph, ph), (pw, pw)))
    if op == "conv":
        out = F.conv2d(M[None, None], K[None, None], np.array([float(b)]), (sh, sw), (ph, pw))[0, 0]
    elif op == "max":
        out = F.maxpool2d(Mp[None, None], (KH, KW), (sh, sw))[0, 0]
    else:
        out = F.avgpool2d(Mp[None, None], (KH, KW), (sh, sw))[0, 0]
    from matplotlib.patches import Rectangle

    pad_mask = np.zeros(Mp.shape, dtype=bool)
    pad_mask[ph:ph + M.shape[0], pw:pw + M.shape[1]] = True
    lo, hi = float(min(Mp.min(), 0)), float(max(Mp.max(), 0))
    hi = hi if hi > lo else lo + 1.0
    ovmax = max(float(np.abs(out).max()), 1e-12)
    fig, axes = _figure(1, 3, figsize=(10, 3.7), dpi=dpi,
                        width_ratios=[Mp.shape[1], max(KW, 3) + 0.5, max(W_out, 3)])
    ax_in, ax_mid, ax_out = axes[0]
    frames = [(i, j) for i in range(H_out) for j in range(W_out)]

    # Everything is drawn once; each frame only moves rectangles and changes texts and data.
    draw_grid(ax_in, Mp, cmap="Greys", vmin=lo, vmax=hi,
              title="input" + (f" (zero padding {ph})" if ph or pw else ""))
    for r, c in zip(*np.nonzero(~pad_mask)):
        _rect(ax_in, r, c, 1, 1, color=OKABE_ITO["sky"], lw=0, fill=True, alpha=0.35)
    window_box = Rectangle((-0.5, -0.5), KW, KH, fill=False, edgecolor=HIGHLIGHT, linewidth=3)
    ax_in.add_patch(window_box)

    mid_cmap = DIVERGING if op == "conv" else "Greys"
    draw_grid(ax_mid, np.zeros((KH, KW)), cmap=mid_cmap, vmin=-1, vmax=1, annotate=False,
              title="window ⊙ K" if op == "conv" else "window")
    im_mid = ax_mid.images[0]
    mid_texts = [[ax_mid.text(v, u, "", ha="center", va="center", fontsize=10) for v in range(KW)]
                 for u in range(KH)]
    arg_box = Rectangle((-0.5, -0.5), 1, 1, fill=False, edgecolor=OKABE_ITO["vermillion"], linewidth=3,
                        visible=op == "max")
    ax_mid.add_patch(arg_box)

    out_cmap = DIVERGING if op == "conv" else "Greys"
    vmin_o, vmax_o = (-ovmax, ovmax) if op == "conv" else (lo, hi)
    draw_grid(ax_out, out, cmap=out_cmap, vmin=vmin_o, vmax=vmax_o, annotate=False,
              mask=np.zeros(out.shape, dtype=bool), title=f"output ({H_out}×{W_out})")
    im_out = ax_out.images[0]
    out_texts = [ax_out.text(j, i, _fmt(out[i, j]), ha="center", va="center", fontsize=10, visible=False,
                             color=_text_color(out[i, j], vmin_o, vmax_o, out_cmap)) for i, j in frames]
    out_box = Rectangle((-0.5, -0.5), 1, 1, fill=False, edgecolor=HIGHLIGHT, linewidth=3)
    ax_out.add_patch(out_box)
    if title:
        fig.suptitle(title, fontsize=12)

    def update(frame):
        i, j = frames[frame]
        r0, c0 = i * sh, j * sw
        window_box.set_xy((c0 - 0.5, r0 - 0.5))
        window = Mp[r0:r0 + KH, c0:c0 + KW]
        if op == "conv":
            shown = window * K
            v = max(float(np.abs(shown).max()), 1e-12)
            vmin_m, vmax_m = -v, v
            ax_mid.set_xlabel(f"sum {_fmt(shown.sum())} + b {_fmt(b)} = {_fmt(out[i, j])}", fontsize=11)
        else:
            shown, vmin_m, vmax_m = window, lo, hi
            if op == "max":
                u, v = np.unravel_index(np.argmax(window), window.shape)
                arg_box.set_xy((v - 0.5, u - 0.5))
                ax_mid.set_xlabel(f"max = {_fmt(out[i, j])}", fontsize=11)
            else:
                ax_mid.set_xlabel(f"mean = {_fmt(out[i, j])}", fontsize=11)
        im_mid.set_data(shown)
        im_mid.set_clim(vmin_m, vmax_m)
        for u in range(KH):
            for v in range(KW):
                mid_texts[u][v].set_text(_fmt(shown[u, v]))
                mid_texts[u][v].set_color(_text_color(shown[u, v], vmin_m, vmax_m, mid_cmap))
        done = np.arange(len(frames)).reshape(out.shape) <= frame
        im_out.set_data(np.ma.masked_array(out, mask=~done))
        for t, (a, c) in zip(out_texts, frames):
            t.set_visible(bool(done[a, c]))
        out_box.set_xy((j - 0.5, i - 0.5))
        ax_out.set_title(f"output ({H_out}×{W_out}), [{i}, {j}]", fontsize=11)
        return []

    update(0)
    fig.canvas.draw()                     # lay the figure out once, then keep that layout
    fig.set_layout_engine("none")
    anim = FuncAnimation(fig, update, frames=len(frames), interval=interval, blit=False)
    plt.close(fig)
    return anim


def feature_map_widget(images):
    """ipywidgets explorer: digit, kernel, bias and activation -> :func:`feature_map_figure`."""
    import ipywidgets as W

    images = np.asarray(images)
    index = W.IntSlider(0, 0, len(images) - 1, description="digit")
    kernel = W.Dropdown(options=list(T.KERNELS), value="sobel_x", description="kernel")
    bias = W.FloatSlider(0.0, min=-3.0, max=3.0, step=0.25, description="bias b")
    act = W.Dropdown(options=list(_ACTIVATIONS), value="relu", description="activation")
    out = W.interactive_output(lambda i, k, b, a: show_result(feature_map_figure(images[i], k, b, a)),
                               {"i": index, "k": kernel, "b": bias, "a": act})
    return W.VBox([W.HBox([index, kernel]), W.HBox([bias, act]), out])


# =========================================================================== 3. convolution vs cross-correlation
#: An asymmetric kernel whose entries are their own labels: the flip is easy to follow.
NUMBERED_KERNEL = np.arange(1.0, 10.0).reshape(3, 3)


def flip_figure(kernel=None, size=7):
    """The flip, seen on an impulse: cross-correlating a single 1 with a kernel stamps the
    kernel *flipped*; convolving stamps it as it is. Panels: K, flip(K), the impulse, K ⋆ impulse,
    K * impulse. Returns the Figure, or a message string for an invalid setting."""
    K, err = finite_array(NUMBERED_KERNEL if kernel is None else kernel, "The kernel", ndim=2, max_side=9)
    if err:
        return err
    size, err = whole_number(size, "image size", max(K.shape), 25)
    if err:
        return err
    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1.0
    # 'same'-sized outputs: pad the impulse so that the kernel fits everywhere
    ph, pw = K.shape[0] // 2, K.shape[1] // 2
    dp = np.pad(delta, ((ph, K.shape[0] - 1 - ph), (pw, K.shape[1] - 1 - pw)))
    corr = T.correlate2d_naive(dp, K)
    conv = T.convolve2d_naive(dp, K)
    vmax = float(np.abs(K).max())
    fig, axes = _figure(1, 5, figsize=(15, 3.6), width_ratios=[K.shape[1]] * 2 + [size] * 3)
    cmap = "YlGnBu"
    draw_grid(axes[0, 0], K, cmap=cmap, vmin=min(0, K.min()), vmax=vmax, title="kernel K")
    draw_grid(axes[0, 1], K[::-1, ::-1], cmap=cmap, vmin=min(0, K.min()), vmax=vmax,
              title="flip(K): rotated 180°")
    draw_grid(axes[0, 2], delta, cmap="Greys", vmin=0, vmax=1, title="input: one impulse")
    mask = np.ones_like(delta, dtype=bool)
    draw_grid(axes[0, 3], corr, cmap=cmap, vmin=min(0, K.min()), vmax=vmax, mask=mask,
              title="cross-correlation K ⋆ M")
    draw_grid(axes[0, 4], conv, cmap=cmap, vmin=min(0, K.min()), vmax=vmax, mask=mask,
              title="convolution K * M")
    fig.suptitle("An impulse reveals the flip: correlation stamps flip(K), convolution stamps K", fontsize=12)
    return fig


def flip_widget(images):
    """ipywidgets: a kernel among a few asymmetric ones, applied to a digit with correlation
    and with convolution (:func:`correlation_vs_convolution_figure`)."""
    import ipywidgets as W

    images = np.asarray(images)
    choices = ["numbered", "sobel_x", "sobel_y", "diagonal"]
    index = W.IntSlider(0, 0, len(images) - 1, description="digit")
    kernel = W.Dropdown(options=choices, value="sobel_x", description="kernel")
    out = W.interactive_output(lambda i, k: show_result(correlation_vs_convolution_figure(images[i], k)),
                               {"i": index, "k": kernel})
    return W.VBox([W.HBox([index, kernel]), out])


def correlation_vs_convolution_figure(image, kernel_name="sobel_x"):
    """A digit cross-correlated and convolved with the same kernel, and the difference.
    ``kernel_name``: ``"numbered"`` (:data:`NUMBERED_KERNEL`, scaled) or a key of
    :data:`cnn_lib.teaching.conv_teaching.KERNELS`. Returns the Figure or a message string."""
    if kernel_name == "numbered":
        K = (NUMBERED_KERNEL - NUMBERED_KERNEL.mean()) / 10
    elif kernel_name in T.KERNELS:
        K = T.KERNELS[kernel_name]
    else:
        return f"Unknown kernel {kernel_name!r}; choose 'numbered' or one of {', '.join(T.KERNELS)}."
    M = _image2d(image)
    corr = T.correlate2d_naive(M, K)
    conv = T.convolve2d_naive(M, K)
    vmax = max(float(np.abs(corr).max()), float(np.abs(conv).max()), 1e-12)
    fig, axes = _figure(1, 4, figsize=(13, 3.6), width_ratios=[0.7, 1, 1, 1])
    draw_grid(axes[0, 0], K, cmap=DIVERGING, vmin=-np.abs(K).max(), vmax=np.abs(K).max(),
              title=f"K: {kernel_name}")
    for ax, A, t in ((axes[0, 1], corr, "cross-correlation K ⋆ M"), (axes[0, 2], conv, "convolution K * M"),
                     (axes[0, 3], corr - conv, "difference")):
        ax.imshow(A, cmap=DIVERGING, vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(t, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    same = np.allclose(corr, conv)
    fig.suptitle("Symmetric kernel (180° rotation): both agree" if same else
                 "Asymmetric kernel: the two differ (convolution = correlation with flip(K))", fontsize=12)
    return fig


# =========================================================================== 4. the stride/padding explorer
#: Slider ranges of the explorer: ``name -> (min, max)`` (step 1).
EXPLORER_RANGES = {"n": (4, 28), "k": (1, 7), "s": (1, 4), "p": (0, 3), "d": (1, 3)}
#: Its initial setting.
EXPLORER_DEFAULTS = {"n": 8, "k": 3, "s": 1, "p": 0, "d": 1}
#: The largest value of each setting that :func:`explorer_state` and :func:`explorer_figure`
#: accept (beyond, the figure would take long to draw and be unreadable).
EXPLORER_LIMITS = {"n": 64, "k": 15, "s": 16, "p": 16, "d": 8}
_PARAM_NAMES = {"n": "input size n", "k": "kernel size k", "s": "stride s", "p": "padding p",
                "d": "dilation d"}


def _explorer_input(image, n):
    """The digit resized to ``n x n`` and rounded to 1/255 steps (what the explorer shows)."""
    small = np.clip(T.resize_image(_image2d(image), n), 0.0, 1.0)
    return np.round(small * 255) / 255


def explorer_state(image, n, k, s, p, d=1):
    """Everything the stride/padding explorer shows for one setting, computed with ``cnn_lib``.

    ``image`` is a digit with pixels in [0, 1] (e.g. 28 x 28); it is resized to ``n x n``
    (:func:`cnn_lib.teaching.conv_teaching.resize_image`), zero-padded by ``p``, and cross-correlated
    with the ``k x k`` edge kernel :func:`cnn_lib.teaching.conv_teaching.edge_kernel` dilated by
    ``d``, moved by the stride ``s``.

    Returns a dict. Valid settings: ``valid=True``, ``n_out`` (from
    :func:`cnn_lib.functional.conv_output_size`), ``macs`` (multiply-adds,
    ``n_out**2 * k**2``), ``span`` (``d (k - 1) + 1``), ``same`` (``n_out == n``),
    ``input`` (n, n), ``padded`` (n + 2p, n + 2p), ``kernel`` (span, span; dilated),
    ``feature_map`` (n_out, n_out; :func:`cnn_lib.functional.conv2d`), ``positions`` (the
    top-left corner of each window in padded coordinates, in scan order). Invalid settings:
    ``valid=False`` and ``message`` (why, in words).
    """
    vals = {}
    for name, value, lo in (("n", n, 1), ("k", k, 1), ("s", s, 1), ("p", p, 0), ("d", d, 1)):
        v, err = whole_number(value, _PARAM_NAMES[name].capitalize(), lo, EXPLORER_LIMITS[name])
        if err:
            return {"valid": False, "message": err}
        vals[name] = v
    n, k, s, p, d = (vals[c] for c in "nkspd")
    try:
        macs, (_, n_out, _) = T.conv_macs((1, n, n), 1, k, s, p, d)
    except ValueError as e:
        return {"valid": False, "message": f"Impossible setting: the {e}."}
    x = _explorer_input(image, n)
    kernel = T.dilate(T.edge_kernel(k), d)
    fmap = F.conv2d(x[None, None], kernel[None, None], None, s, p)[0, 0]
    return {
        "valid": True, "n": n, "k": k, "s": s, "p": p, "d": d, "n_out": n_out, "macs": macs,
        "span": d * (k - 1) + 1, "same": n_out == n, "input": x, "padded": np.pad(x, p),
        "kernel": kernel, "feature_map": fmap,
        "positions": [(i * s, j * s) for i in range(n_out) for j in range(n_out)],
    }


def explorer_figure(image, n, k, s, p, d=1, step=None):
    """Matplotlib version of the explorer (for the ipywidgets wrapper): the padded input with
    the kernel's taps at window number ``step`` (default: the last), and the feature map
    computed up to that window. Returns the Figure or the message string of an invalid setting."""
    st = explorer_state(image, n, k, s, p, d)
    if not st["valid"]:
        return st["message"]
    positions = st["positions"]
    if step is None:
        step = len(positions) - 1
    else:
        step, err = whole_number(step, "The window number (step)", 0)
        if err:
            return err
        step = min(step, len(positions) - 1)
    r0, c0 = positions[step]
    fig, axes = _figure(1, 2, figsize=(10, 4.6))
    ax_in, ax_out = axes[0]
    P = st["padded"]
    ann = P.shape[0] <= 12
    draw_grid(ax_in, P, cmap="gray", vmin=0, vmax=1, annotate=ann, fontsize=10,
              fmt=lambda v: f"{v:.1f}".lstrip("0") if v else "0",
              title=f"input {st['n']}×{st['n']}, padded by {st['p']}: {P.shape[0]}×{P.shape[1]}")
    if st["p"]:
        inner = np.zeros(P.shape, dtype=bool)
        inner[st["p"]:st["p"] + st["n"], st["p"]:st["p"] + st["n"]] = True
        for r, c in zip(*np.nonzero(~inner)):
            _rect(ax_in, r, c, 1, 1, color=OKABE_ITO["sky"], lw=0, fill=True, alpha=0.45)
    for u in range(st["k"]):
        for v in range(st["k"]):
            _rect(ax_in, r0 + u * st["d"], c0 + v * st["d"], 1, 1, lw=2.5)
    _rect(ax_in, r0, c0, st["span"], st["span"], lw=1.2, ls="--")
    fm = st["feature_map"]
    vmax = max(float(np.abs(fm).max()), 1e-12)
    done = np.zeros(fm.shape, dtype=bool)
    done.reshape(-1)[: step + 1] = True
    draw_grid(ax_out, fm, cmap=DIVERGING, vmin=-vmax, vmax=vmax, annotate=fm.shape[0] <= 8, mask=done,
              title=f"feature map {st['n_out']}×{st['n_out']}")
    i, j = divmod(step, st["n_out"])
    _rect(ax_out, i, j, 1, 1)
    same = "  (“same” size)" if st["same"] else ""
    fig.suptitle(f"n_out = ⌊({st['n']} + 2·{st['p']} − {st['span']}) / {st['s']}⌋ + 1 = {st['n_out']}{same};"
                 f"   multiply-adds: {st['macs']:,};   window {step + 1} of {len(positions)}", fontsize=12)
    return fig


def _b64(a):
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def explorer_data(image, ranges=None, defaults=None):
    """The data the JavaScript explorer embeds (a JSON-able dict), computed with ``cnn_lib``.

    * ``ranges``: ``{"n": [min, max], "k": ..., "s": ..., "p": ..., "d": ...}``; ``defaults``.
    * ``combos``: for **every** combination ``"n,k,s,p,d"`` within the ranges, either
      ``[n_out, macs]`` (from :func:`cnn_lib.teaching.conv_teaching.conv_macs`, i.e.
      :func:`cnn_lib.functional.conv_output_size`) or the message string of an impossible one.
    * ``images``: for each ``n``, the digit resized to ``n x n`` as uint8 (base64, row-major).
    * ``base``: for each ``"n,k,d"``, the stride-1 feature map with the largest padding
      ``pad_base = max p`` (:func:`cnn_lib.functional.conv2d` of the image above with the
      dilated edge kernel), as ``{"size", "lo", "hi", "vmax", "data"}``: uint16 codes
      (little-endian, base64) of ``lo + code / 65535 * (hi - lo)``.

    Every combination's map is an exact slice of its base map: a smaller padding ``p`` crops
    ``pad_base - p`` rows and columns on each side, and a stride ``s`` keeps every ``s``-th
    row and column, i.e. ``base[o : o + s*(n_out-1) + 1 : s]`` (both axes) with
    ``o = pad_base - p``. The JavaScript does exactly that (``outputMap``).
    """
    ranges = {key: tuple(int(v) for v in (ranges or EXPLORER_RANGES)[key]) for key in "nkspd"}
    defaults = dict(defaults or EXPLORER_DEFAULTS)
    pad_base = ranges["p"][1]
    rng = {key: range(lo, hi + 1) for key, (lo, hi) in ranges.items()}
    images, base, combos = {}, {}, {}
    for n in rng["n"]:
        x = _explorer_input(image, n)
        images[str(n)] = _b64(np.round(x * 255).astype(np.uint8))
        for k in rng["k"]:
            for d in rng["d"]:
                span = d * (k - 1) + 1
                if span <= n + 2 * pad_base:
                    kernel = T.dilate(T.edge_kernel(k), d)
                    m = F.conv2d(x[None, None], kernel[None, None], None, 1, pad_base)[0, 0]
                    lo, hi = float(m.min()), float(m.max())
                    codes = np.zeros(m.shape, np.uint16) if hi == lo else np.round(
                        (m - lo) / (hi - lo) * 65535).astype("<u2")
                    base[f"{n},{k},{d}"] = {"size": int(m.shape[0]), "lo": lo, "hi": hi,
                                            "vmax": float(np.abs(m).max()), "data": _b64(codes)}
                for s in rng["s"]:
                    for p in rng["p"]:
                        try:
                            macs, (_, n_out, _) = T.conv_macs((1, n, n), 1, k, s, p, d)
                            combos[f"{n},{k},{s},{p},{d}"] = [n_out, macs]
                        except ValueError as e:
                            combos[f"{n},{k},{s},{p},{d}"] = f"Impossible setting: the {e}."
    if not isinstance(combos.get(",".join(str(defaults[c]) for c in "nkspd")), list):
        raise ValueError(f"the default setting {defaults} is not a valid combination within {ranges}")
    return {"version": 1, "ranges": {k: list(v) for k, v in ranges.items()}, "defaults": defaults,
            "pad_base": pad_base, "kernel": "edge", "images": images, "base": base, "combos": combos}


def explorer_js():
    """The explorer's JavaScript (also runnable under Node.js: it exports its functions with
    ``module.exports`` — ``key, span, lookup, outputMap, inputImage, positions, taps, formula, mount``):
    the package file ``static/conv-explorer.js``."""
    return static_text("conv-explorer.js")


def explorer_html(image, ranges=None, defaults=None, uid="cnn-explorer-1", title=None):
    """A self-contained HTML + JavaScript stride/padding explorer (no kernel, no CDN).

    Display it in a notebook with ``IPython.display.HTML(explorer_html(digit))``: it works in
    the built book without a kernel, and in Jupyter. All numbers are precomputed by
    :func:`explorer_data` and embedded as JSON; the script looks them up and draws.

    Stable structure (for tests and styling) — inside the root element
    ``<div class="cnn-explorer" id="{uid}">``:

    * ``input[type=range][data-param=P]`` for ``P`` in ``n`` (input size), ``k`` (kernel
      size), ``s`` (stride), ``p`` (padding), ``d`` (dilation); each with an
      ``output[data-param=P]`` showing its value. Moving one fires ``input`` and redraws.
    * ``.cnn-explorer-out-size``: the output size ``n_out`` as a bare integer, or ``—`` for
      an impossible setting; the root's attribute ``data-out-size`` holds the same integer
      (empty when impossible).
    * ``.cnn-explorer-formula``: the formula with the numbers substituted;
      ``.cnn-explorer-macs``: the multiply-adds (``n_out² k²``, with thousands commas).
    * ``.cnn-explorer-message``: the reason a setting is impossible (``hidden`` otherwise);
      the root then also has the class ``cnn-explorer-invalid``.
    * ``.cnn-explorer-same``: a badge shown when the output keeps the input size.
    * ``canvas.cnn-explorer-input`` (padded input, kernel taps in orange) and
      ``canvas.cnn-explorer-output`` (feature map filled window by window), 300×300.
    * ``button.cnn-explorer-play`` (play/pause the scan), ``input[type=range][data-role=step]``
      (choose the window), ``.cnn-explorer-position`` (which window, which rows and
      columns), ``.cnn-explorer-value`` (the current output value).
    * ``script[type="application/json"]#{uid}-data``: the embedded :func:`explorer_data`.
    * The root gets ``data-ready="1"`` once the script has wired the controls.

    ``uid`` must be unique in the page (letters, digits, ``-`` and ``_``).
    """
    if not all(ch.isalnum() or ch in "-_" for ch in uid) or not uid:
        raise ValueError(f"uid must be letters, digits, '-' or '_', got {uid!r}")
    data = explorer_data(image, ranges, defaults)
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    title = title or "Stride, padding and dilation explorer"
    rows = []
    for name in "nkspd":
        lo, hi = data["ranges"][name]
        value = data["defaults"][name]
        rows.append(
            f'<label for="{uid}-{name}">{html.escape(_PARAM_NAMES[name])}</label>'
            f'<input type="range" id="{uid}-{name}" data-param="{name}" min="{lo}" max="{hi}" step="1" '
            f'value="{value}">'
            f'<output data-param="{name}" for="{uid}-{name}">{value}</output>')
    return f"""<div class="cnn-explorer" id="{uid}" data-ready="0" data-out-size="">
<style>{static_text("conv-explorer.css")}</style>
<div class="cnn-explorer-title">{html.escape(title)}</div>
<div class="cnn-explorer-controls">
{chr(10).join(rows)}
</div>
<div class="cnn-explorer-readout">
output size n_out = <b class="cnn-explorer-out-size">—</b><span class="cnn-explorer-same" hidden>same size</span>
&nbsp;&nbsp; multiply-adds = <b class="cnn-explorer-macs">—</b><br>
<span class="cnn-explorer-formula"></span>
</div>
<div class="cnn-explorer-message" role="alert" hidden></div>
<noscript><p class="cnn-explorer-message">This explorer needs JavaScript.</p></noscript>
<div class="cnn-explorer-panels">
<figure><canvas class="cnn-explorer-input" width="300" height="300"
  aria-label="padded input with the kernel's position"></canvas>
<figcaption>input (grey: the digit, blue: zero padding); orange: the kernel's taps</figcaption></figure>
<figure><canvas class="cnn-explorer-output" width="300" height="300"
  aria-label="feature map"></canvas>
<figcaption>feature map of a vertical-edge kernel (red &gt; 0 &gt; blue; grey: not computed yet)</figcaption></figure>
</div>
<div><button type="button" class="cnn-explorer-play">❚❚ Pause</button>
<label>window <input type="range" data-role="step" min="0" max="0" step="1" value="0"></label></div>
<div class="cnn-explorer-position">—</div>
<div>output value at this window: <b class="cnn-explorer-value">—</b></div>
<script type="application/json" id="{uid}-data">{payload}</script>
<script>{static_text("conv-explorer.js")}</script>
<script>{static_text("conv-explorer-mount.js", uid=uid)}</script>
</div>"""


def explorer_widget(image):
    """ipywidgets version of the explorer (needs a kernel): sliders -> :func:`explorer_figure`."""
    import ipywidgets as W

    sliders = {name: W.IntSlider(EXPLORER_DEFAULTS[name], lo, hi, description=name,
                                 tooltip=_PARAM_NAMES[name])
               for name, (lo, hi) in EXPLORER_RANGES.items()}
    step = W.IntSlider(0, 0, 1000, description="window")

    def sync_step(_=None):
        # the window slider covers the positions of the current setting (0 when impossible)
        st = explorer_state(image, *(sliders[c].value for c in "nkspd"))
        step.max = len(st["positions"]) - 1 if st["valid"] else 0

    for slider in sliders.values():
        slider.observe(sync_step, names="value")
    sync_step()
    step.value = step.max                                 # start with the whole feature map

    def show(n, k, s, p, d, step):
        show_result(explorer_figure(image, n, k, s, p, d, step))

    out = W.interactive_output(show, dict(sliders, step=step))
    return W.VBox([W.HBox([sliders["n"], sliders["k"], sliders["s"]]),
                   W.HBox([sliders["p"], sliders["d"], step]), out])


# =========================================================================== 5. pooling
def _pool_setting(x, window, stride):
    window, err = whole_number(window, "Window size", 1, 64)
    if err:
        return None, err
    stride, err = whole_number(stride, "Stride", 1, 64)
    if err:
        return None, err
    try:
        n_out = (F.conv_output_size(x.shape[0], window, stride), F.conv_output_size(x.shape[1], window, stride))
    except ValueError as e:
        return None, f"Impossible setting: the {str(e).replace('kernel', 'window')}."
    return (window, stride, n_out), None


def pool_figure(image, window=2, stride=2):
    """A feature map (or image), its max pooling and its average pooling, with the first
    window outlined. Returns the Figure, or a message string for an invalid setting."""
    x = _image2d(image)
    setting, err = _pool_setting(x, window, stride)
    if err:
        return err
    window, stride, (ho, wo) = setting
    mx = F.maxpool2d(x[None, None], window, stride)[0, 0]
    av = F.avgpool2d(x[None, None], window, stride)[0, 0]
    fig, axes = _figure(1, 3, figsize=(12, 4.8))
    lo, hi = float(min(x.min(), 0)), float(max(x.max(), 1e-12))
    axes[0, 0].imshow(x, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    axes[0, 0].set_title(f"input {x.shape[0]}×{x.shape[1]}")
    for i in range(min(ho, 2)):
        for j in range(min(wo, 3)):
            _rect(axes[0, 0], i * stride, j * stride, window, window, lw=2 if (i, j) == (0, 0) else 1,
                  ls="-" if (i, j) == (0, 0) else "--")
    for ax, A, name in ((axes[0, 1], mx, "max"), (axes[0, 2], av, "average")):
        ax.imshow(A, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"{name} pooling {window}×{window}, stride {stride}: {ho}×{wo}")
    for ax in axes[0]:
        ax.set_xlabel("column")
        ax.set_ylabel("row")
    cover = "overlapping windows" if stride < window else ("windows tile the input" if stride == window
                                                           else "gaps: some pixels are never read")
    fig.suptitle(f"{x.shape[0] * x.shape[1]} values → {ho * wo} values ({cover})", fontsize=12)
    return fig


def pool_grid_figure(image, windows=(2, 3, 4), strides=(1, 2, 3), mode="max"):
    """Static figure: the pooled image for every (window, stride) pair. Returns the Figure or a message."""
    if mode not in ("max", "avg"):
        return f"Unknown pooling {mode!r}; choose 'max' or 'avg'."
    if not 1 <= len(windows) <= 6 or not 1 <= len(strides) <= 6:
        return Message(f"Give 1 to 6 windows and 1 to 6 strides, got {len(windows)} and {len(strides)}.")
    x = _image2d(image)
    fig, axes = _figure(len(windows), len(strides), figsize=(2.6 * len(strides) + 1, 2.6 * len(windows)))
    fn = F.maxpool2d if mode == "max" else F.avgpool2d
    for a, w in enumerate(windows):
        for b, s in enumerate(strides):
            ax = axes[a, b]
            ax.set_xticks([])
            ax.set_yticks([])
            setting, err = _pool_setting(x, w, s)
            if err:
                ax.text(0.5, 0.5, "impossible", ha="center", va="center", transform=ax.transAxes)
                continue
            y = fn(x[None, None], w, s)[0, 0]
            ax.imshow(y, cmap="gray", interpolation="nearest")
            ax.set_title(f"window {w}, stride {s}: {y.shape[0]}×{y.shape[1]}", fontsize=10)
    fig.suptitle(f"{'Max' if mode == 'max' else 'Average'} pooling of a {x.shape[0]}×{x.shape[1]} image: "
                 "rows = window, columns = stride", fontsize=12)
    return fig


def pooling_widget(images):
    """ipywidgets: digit, window and stride -> :func:`pool_figure`."""
    import ipywidgets as W

    images = np.asarray(images)
    index = W.IntSlider(0, 0, len(images) - 1, description="digit")
    window = W.IntSlider(2, 1, 8, description="window")
    stride = W.IntSlider(2, 1, 8, description="stride")
    out = W.interactive_output(lambda i, w, s: show_result(pool_figure(images[i], w, s)),
                               {"i": index, "w": window, "s": stride})
    return W.VBox([W.HBox([index, window, stride]), out])


# =========================================================================== 6. back-propagation
def grad_input_figure(kernel_size=3, stride=1, n_out=3, seed=0):
    """How ``dL/dM`` is a full convolution: the upstream gradient ``G = dL/dZ`` (``n_out x n_out``,
    small integers), ``G`` dilated by the stride and padded by ``k - 1``, the flipped kernel,
    and the resulting ``dL/dM`` (:func:`cnn_lib.teaching.conv_teaching.conv2d_grad_input`, which the
    tests check against :func:`cnn_lib.functional.conv2d_backward`).
    Returns the Figure, or a message string for an invalid setting."""
    k, err = whole_number(kernel_size, "Kernel size", 1, 5)
    if err:
        return err
    s, err = whole_number(stride, "Stride", 1, 4)
    if err:
        return err
    n_out, err = whole_number(n_out, "Output size", 1, 5)
    if err:
        return err
    seed, err = whole_number(seed, "The seed", 0, 2 ** 32 - 1)
    if err:
        return err
    rng = np.random.default_rng(seed)
    K = rng.integers(-2, 3, size=(k, k)).astype(np.float64)
    G = rng.integers(-2, 3, size=(n_out, n_out)).astype(np.float64)
    n = (n_out - 1) * s + k                              # the input size these windows exactly cover
    g = T.dilate(G, s)
    gp = np.pad(g, k - 1)
    dM = T.conv2d_grad_input(G[None, None], K[None, None], (1, 1, n, n), s)[0, 0]
    fig, axes = _figure(1, 4, figsize=(14, 4.0), width_ratios=[n_out, gp.shape[1], k, n])
    v = max(float(np.abs(G).max()), 1.0)
    draw_grid(axes[0, 0], G, cmap=DIVERGING, vmin=-v, vmax=v, title=f"G = dL/dZ ({n_out}×{n_out})")
    pv = max(float(np.abs(gp).max()), 1.0)
    mask = np.zeros(gp.shape, dtype=bool)
    mask[k - 1:k - 1 + g.shape[0], k - 1:k - 1 + g.shape[1]] = True
    draw_grid(axes[0, 1], gp, cmap=DIVERGING, vmin=-pv, vmax=pv,
              title=f"dilated by {s}, padded by {k - 1}")
    _rect(axes[0, 1], k - 1, k - 1, g.shape[0], g.shape[1], color=OKABE_ITO["blue"], lw=2, ls="--")
    kv = max(float(np.abs(K).max()), 1.0)
    draw_grid(axes[0, 2], K[::-1, ::-1], cmap=DIVERGING, vmin=-kv, vmax=kv, title="flip(K)")
    _rect(axes[0, 1], 0, 0, k, k)
    mv = max(float(np.abs(dM).max()), 1.0)
    draw_grid(axes[0, 3], dM, cmap=DIVERGING, vmin=-mv, vmax=mv, title=f"dL/dM ({n}×{n})")
    fig.suptitle(f"dL/dM = flip(K) ⋆ (G dilated and padded) = full convolution;  k = {k}, stride {s}",
                 fontsize=12)
    return fig


def maxpool_routing_figure(x, window=2, stride=2, dy=None):
    """Where max pooling sends its gradient: the input with each window's winner outlined
    (ties: the first maximum in row-major order, as :func:`cnn_lib.functional.maxpool2d_backward`),
    the upstream gradient, and ``dL/dx`` from the library. Returns the Figure or a message."""
    x, err = finite_array(x, "x", ndim=2, max_side=16)
    if err:
        return err
    setting, err = _pool_setting(x, window, stride)
    if err:
        return err
    window, stride, (ho, wo) = setting
    if dy is None:
        dy = np.arange(1.0, ho * wo + 1).reshape(ho, wo)
    else:
        dy, err = finite_array(dy, "dy", ndim=2)
        if err:
            return err
        if dy.shape != (ho, wo):
            return Message(f"dy must have the pooled shape {(ho, wo)}, got {dy.shape}.")
    _, cache = F.maxpool2d_forward(x[None, None], window, stride)
    dx = F.maxpool2d_backward(dy[None, None], cache)[0, 0]
    fig, axes = _figure(1, 3, figsize=(12, 4.0), width_ratios=[x.shape[1], max(wo, 2), x.shape[1]])
    draw_grid(axes[0, 0], x, cmap="Greys", vmin=min(0, x.min()), vmax=max(1, x.max()) * 1.6,
              title="input x (winners outlined)")
    colors = [OKABE_ITO[c] for c in ("orange", "blue", "green", "vermillion", "purple", "sky")]
    tied = []
    for i in range(ho):
        for j in range(wo):
            win = x[i * stride:i * stride + window, j * stride:j * stride + window]
            u, v = np.unravel_index(np.argmax(win), win.shape)
            color = colors[(i * wo + j) % len(colors)]
            _rect(axes[0, 0], i * stride, j * stride, window, window, color=color, lw=1.5, ls="--")
            _rect(axes[0, 0], i * stride + u, j * stride + v, 1, 1, color=color, lw=3.5)
            ties = int((win == win.max()).sum())
            if ties > 1:
                tied.append(f"[{i}, {j}] ({ties} equal maxima)")
    axes[0, 0].set_xlabel("ties in windows " + ", ".join(tied) + ":\nthe first maximum (row by row) wins"
                          if tied else "no ties", fontsize=10)
    draw_grid(axes[0, 1], dy, cmap="Greys", vmin=0, vmax=max(1, dy.max()) * 1.6, title="dL/dy")
    draw_grid(axes[0, 2], dx, cmap="Greys", vmin=0, vmax=max(1, dy.max()) * 1.6, title="dL/dx")
    fig.suptitle(f"Max pooling {window}×{window}, stride {stride}: each gradient goes to its window's maximum",
                 fontsize=12)
    return fig


def backprop_widget():
    """ipywidgets: kernel size, stride and output size -> :func:`grad_input_figure`."""
    import ipywidgets as W

    k = W.IntSlider(3, 1, 5, description="kernel k")
    s = W.IntSlider(1, 1, 4, description="stride s")
    n = W.IntSlider(3, 1, 5, description="G size")
    seed = W.IntSlider(0, 0, 20, description="seed")
    out = W.interactive_output(lambda k, s, n, seed: show_result(grad_input_figure(k, s, n, seed)),
                               {"k": k, "s": s, "n": n, "seed": seed})
    return W.VBox([W.HBox([k, s]), W.HBox([n, seed]), out])
