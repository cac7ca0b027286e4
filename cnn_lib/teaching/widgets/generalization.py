"""The explorer of the chapter on generalization: learning curves for several values of a knob
(a weight decay λ, a dropout probability p), one run per value, computed by
:func:`cnn_lib.teaching.generalization.learning_curves` when the page is built.

:func:`curves_view` draws one run (a plain function, called by the tests);
:func:`curves_slider_html` draws every run with the same axes and embeds the pictures in a
self-contained HTML + JavaScript slider, which works in the online book (no kernel, no network)
as well as in Jupyter. Invalid input gives a :class:`Message`, never a traceback.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import math

import numpy as np

from .. import plots
from .common import Message, static_text

__all__ = ["Message", "CURVE_KEYS", "curves_view", "curves_slider_html"]

#: The arrays a run must have, each of the same length (index 0: before training).
CURVE_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def _check_curves(curves):
    if not isinstance(curves, dict) or any(k not in curves for k in CURVE_KEYS):
        return Message(f"A run must be a dict with the arrays {', '.join(CURVE_KEYS)}.")
    lengths = {len(np.ravel(curves[k])) for k in CURVE_KEYS}
    if len(lengths) != 1 or lengths == {0}:
        return Message("The curves of a run must be non-empty and of the same length.")
    if not all(np.all(np.isfinite(curves[k])) for k in CURVE_KEYS):
        return Message("The curves contain a value that is not finite (did the training diverge?).")
    return None


def curves_view(curves, title=None, loss_max=None, accuracy_min=None, fig=None):
    """One run's learning curves: the loss (left) and the accuracy (right) on the training and
    on the validation data, against the epoch (0 = before training). ``loss_max`` and
    ``accuracy_min`` fix the vertical ranges, so that several runs can be compared.

    Returns the matplotlib Figure, or a :class:`Message` for invalid curves."""
    message = _check_curves(curves)
    if message:
        return message
    if fig is None:
        fig, (ax_loss, ax_acc) = plots.new_figure(1, 2, figsize=(9.5, 3.4))
    else:
        ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = np.arange(len(curves["train_loss"]))
    colors = {"train": plots.PALETTE[0], "val": plots.PALETTE[3]}
    names = {"train": "training", "val": "validation"}
    for part in ("train", "val"):
        ax_loss.plot(epochs, curves[f"{part}_loss"], color=colors[part], linewidth=2, label=names[part])
        ax_acc.plot(epochs, curves[f"{part}_accuracy"], color=colors[part], linewidth=2, label=names[part])
    best = int(np.argmin(curves["val_loss"]))
    ax_loss.axvline(best, color="gray", linestyle=":", linewidth=1)
    ax_loss.annotate(f"lowest validation loss\n(epoch {best})", (best, curves["val_loss"][best]),
                     xytext=(6, 18), textcoords="offset points", fontsize=9, color="gray")
    ax_loss.set_ylim(0, loss_max if loss_max is not None else 1.05 * max(np.max(curves["train_loss"]),
                                                                          np.max(curves["val_loss"])))
    ax_acc.set_ylim(accuracy_min if accuracy_min is not None else
                    min(np.min(curves["train_accuracy"]), np.min(curves["val_accuracy"])) - 0.02, 1.005)
    ax_loss.set_ylabel("cross-entropy loss")
    ax_acc.set_ylabel("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right" if ax is ax_loss else "lower right", fontsize=9)
    gap = curves["train_accuracy"][-1] - curves["val_accuracy"][-1]
    ax_acc.set_title(f"final: training {curves['train_accuracy'][-1]:.1%}, validation "
                     f"{curves['val_accuracy'][-1]:.1%} (gap {gap:.1%})", fontsize=10)
    ax_loss.set_title(f"final: training {curves['train_loss'][-1]:.3f}, validation "
                      f"{curves['val_loss'][-1]:.3f}", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def curves_slider_html(runs, knob="λ", dpi=72):
    """A self-contained HTML + JavaScript explorer: a slider over ``runs``, a list of
    ``(value, curves)`` pairs (``value`` a number, shown as ``knob = value``), that shows the
    learning curves of the chosen run. Every picture is drawn here, with the same axes, and
    embedded as a PNG; the browser only swaps them. No external script or network access.

    Returns the HTML as a string, or a :class:`Message` for invalid input."""
    runs = list(runs)
    if not runs:
        return Message("Give at least one run: a list of (value, curves) pairs.")
    for item in runs:
        if not (isinstance(item, tuple) and len(item) == 2):
            return Message("Each run must be a pair (value, curves).")
        try:
            value = float(item[0])
        except (TypeError, ValueError):
            return Message(f"The value of a run must be a number, got {item[0]!r}.")
        if not math.isfinite(value):
            return Message(f"The value of a run must be finite, got {item[0]!r}.")
        message = _check_curves(item[1])
        if message:
            return message
    if not (isinstance(dpi, (int, float)) and 20 <= dpi <= 300):
        return Message(f"dpi must be a number between 20 and 300, got {dpi!r}.")
    import matplotlib.pyplot as plt

    loss_max = 1.05 * max(max(np.max(c["train_loss"]), np.max(c["val_loss"])) for _, c in runs)
    accuracy_min = min(min(np.min(c["train_accuracy"]), np.min(c["val_accuracy"])) for _, c in runs) - 0.02
    labels, pngs = [], []
    for value, curves in runs:
        label = f"{knob} = {float(value):g}"
        fig = curves_view(curves, title=label, loss_max=loss_max, accuracy_min=accuracy_min)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
        plt.close(fig)
        labels.append(label)
        pngs.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    uid = "cnnlib-curves-" + hashlib.sha1("".join(labels + pngs).encode()).hexdigest()[:10]
    images = "\n".join(
        f'<img src="{png}" alt="Learning curves for {html.escape(label)}" '
        f'style="display:{"block" if k == 0 else "none"}">' for k, (label, png) in enumerate(zip(labels, pngs)))
    return f"""<div id="{uid}" class="cnnlib-curves">
<style>{static_text("curves.css")}</style>
<label>{html.escape(knob)} <input class="knob" type="range" min="0" max="{len(runs) - 1}" step="1" value="0">
 <b class="knob-out">{html.escape(labels[0])}</b></label>
<div class="frames">{images}</div></div>
<script>
{static_text("curves.js", uid=uid)}</script>"""
