"""Explorers for part I of the book (neural networks).

Each explorer is a plain function that takes the knob settings and returns a matplotlib
``Figure`` (or an HTML string), or a :class:`Message` when a setting is invalid — never a
traceback. The unit tests call these functions directly. The ``*_explorer`` functions
only wire ipywidgets controls to them; they need a running kernel. For the online book,
which has none, :func:`descent_explorer_html` builds a self-contained HTML + JavaScript
explorer with precomputed gradient-descent paths, and the chapters show static figures
made by the same functions.

===========================  ======================================  ======================
chapter                      plain function(s)                       ipywidgets wrapper
===========================  ======================================  ======================
The multi-layer perceptron   architecture_view, param_table_html,    architecture_explorer,
                             approximation_view                      approximation_explorer
Training, gradient descent   descent_view, descent_status,           descent_explorer
                             descent_explorer_html
Activation functions         activation_view                         activation_explorer
Softmax and NLL              softmax_numbers, softmax_view           softmax_explorer
Forward and backward         prediction_view                         prediction_explorer
===========================  ======================================  ======================
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math

import numpy as np

from ... import functional as F
from .. import mlp, plots
from ...layers import Arctan, ReLU, Sigmoid
from .common import Message, finite_number, show_result, static_text, whole_number

__all__ = [
    "Message", "architecture_view", "param_table_html", "approximation_view",
    "EXTENT", "DESCENT_LRS", "DESCENT_STARTS", "descent_status", "descent_view", "descent_explorer_html",
    "ACTIVATION_FUNCTIONS", "activation_view", "parse_logits", "softmax_numbers", "softmax_view",
    "prediction_view", "architecture_explorer", "approximation_explorer", "descent_explorer",
    "activation_explorer", "softmax_explorer", "prediction_explorer",
]


# =========================================================================== chapter 1: the MLP
MAX_LAYERS = 8


def _sizes_or_message(spec):
    try:
        sizes = mlp.parse_sizes(spec)
    except ValueError as e:
        return None, Message(f"Cannot read these layer sizes: {e}. Type them separated by dashes, "
                             "input first and output last, e.g. 784-128-10.")
    if len(sizes) > MAX_LAYERS:
        return None, Message(f"This explorer draws at most {MAX_LAYERS} layers; got {len(sizes)}.")
    return sizes, None


def architecture_view(spec="784-128-10", max_shown=8):
    """Diagram of the MLP with layer sizes ``spec`` (e.g. ``"784-128-10"``), titled with its
    parameter count. Returns a ``Figure``, or a :class:`Message` for sizes that are not valid."""
    sizes, message = _sizes_or_message(spec)
    if message:
        return message
    max_shown, message = whole_number(max_shown, "The number of neurons drawn per layer", 2, 20)
    if message:
        return message
    fig, ax = plots.new_figure(figsize=(max(4.5, 1.9 * len(sizes)), 4.4))
    plots.plot_mlp(sizes, ax, max_shown=max_shown)
    return fig


def param_table_html(spec="784-128-10"):
    """HTML table of the weights and biases of each layer of the MLP ``spec`` and their total,
    or a :class:`Message` for sizes that are not valid."""
    sizes, message = _sizes_or_message(spec)
    if message:
        return message
    rows = mlp.param_counts(sizes)
    cell = 'style="padding: 2px 10px; text-align: right"'
    body = "".join(
        f"<tr><td {cell}>{r['layer']}</td><td {cell}>{r['inputs']:,} &rarr; {r['outputs']:,}</td>"
        f"<td {cell}>{r['inputs']:,} &times; {r['outputs']:,} = {r['weights']:,}</td>"
        f"<td {cell}>{r['biases']:,}</td><td {cell}>{r['total']:,}</td></tr>" for r in rows)
    total = sum(r["total"] for r in rows)
    return (f'<table style="border-collapse: collapse"><thead><tr><th {cell}>layer</th><th {cell}>sizes</th>'
            f"<th {cell}>weights</th><th {cell}>biases</th><th {cell}>parameters</th></tr></thead>"
            f"<tbody>{body}<tr><td {cell} colspan=\"4\"><b>total</b></td><td {cell}><b>{total:,}</b></td></tr>"
            "</tbody></table>")


APPROX_RANGE = (-2.0, 2.0)
MAX_HIDDEN = 64


def approximation_view(n_hidden=4):
    """How well ``n_hidden`` ReLU neurons (one hidden layer, see :func:`cnn_lib.teaching.mlp.fit_hinges`)
    approximate :func:`cnn_lib.teaching.mlp.wavy` on ``APPROX_RANGE``.

    Left: the target and the network's output, with the knots (where a hinge bends) marked.
    Right: the hinges ``a_k relu(x - c_k)`` that the output neuron adds up, plus its bias.
    Returns a ``Figure``, or a :class:`Message` for an invalid ``n_hidden``.
    """
    K, message = whole_number(n_hidden, "The number of hidden neurons", 1, MAX_HIDDEN)
    if message:
        return message
    x = np.linspace(*APPROX_RANGE, 801)
    t = mlp.wavy(x)
    net = mlp.fit_hinges(x, t, K)
    y = net.forward(x[:, None])[:, 0]
    hidden, _, output = net.layers.values()
    knots = -hidden.params["b"]                                       # (K,)
    terms = F.relu(x[:, None] - knots) * output.params["w"][:, 0]     # (801, K)
    err = float(np.max(np.abs(y - t)))

    fig, (ax, ax_terms) = plots.new_figure(1, 2, figsize=(11, 4.0))
    ax.plot(x, t, "--", color="black", linewidth=2, label="target $\\sin(3x) + x/2$")
    ax.plot(x, y, color=plots.PALETTE[0], linewidth=2, label=f"network, {K} hidden neurons")
    ax.plot(knots, np.interp(knots, x, y), "o", color=plots.PALETTE[1],
            markeredgecolor="black", label="knots (where a hinge bends)")
    ax.set_xlabel("input $x$")
    ax.set_ylabel("output")
    ax.set_title(f"{K} hidden ReLU neurons: largest error {err:.3f}")
    ax.legend(loc="upper left", fontsize=10)
    shown = range(K) if K <= 12 else np.linspace(0, K - 1, 12).round().astype(int)
    for n, k in enumerate(shown):
        ax_terms.plot(x, terms[:, k], color=plots.PALETTE[n % 6], linewidth=1.3)
    ax_terms.axhline(float(output.params["b"][0]), color="black", linestyle=":", linewidth=1.5,
                     label=f"output bias {float(output.params['b'][0]):+.2f}")
    ax_terms.set_xlabel("input $x$")
    ax_terms.set_ylabel("contribution to the output")
    ax_terms.set_title("The pieces that add up to the output" + ("" if K <= 12 else " (12 shown)"))
    ax_terms.legend(loc="upper left", fontsize=10)
    return fig


# =========================================================================== chapter 2: gradient descent
#: Half-width of the square ``[-EXTENT, EXTENT]^2`` of the landscape that the explorers draw.
EXTENT = 3.5
#: Learning rates of the in-browser explorer, and its starting points.
DESCENT_LRS = (0.003, 0.03, 0.1, 0.3, 1.0, 4.0)
DESCENT_STARTS = ((2.8, -2.9), (-3.0, 2.6), (3.0, 3.1), (-2.4, -3.2), (0.4, 3.1), (-3.1, -0.7))
MAX_STEPS = 500


def descent_status(run, tol=1e-3):
    """One sentence on how a :func:`cnn_lib.teaching.mlp.gradient_descent` run on the landscape ended."""
    w = run["path"][-1]
    if run["diverged"]:
        return f"diverged: |w| exceeded the limit after {run['steps']} step{'s' * (run['steps'] != 1)}"
    if np.linalg.norm(mlp.landscape_gradient(w)) < tol:
        c = float(mlp.landscape_cost(w))
        where = "the global minimum" if c < 1e-6 else "a local minimum"
        return f"reached {where} at ({w[0]:.2f}, {w[1]:.2f}), cost {c:.3f}"
    return f"still moving after {run['steps']} step{'s' * (run['steps'] != 1)}, at ({w[0]:.2f}, {w[1]:.2f}), cost {float(mlp.landscape_cost(w)):.3f}"


def _landscape_grid(n=161):
    g = np.linspace(-EXTENT, EXTENT, n)
    return g, mlp.landscape_cost(np.stack(np.meshgrid(g, g), axis=-1))


def _descent_args(lr, w1, w2, steps):
    lr, message = finite_number(lr, "The learning rate")
    if message:
        return None, message
    if lr <= 0:
        return None, Message(f"The learning rate must be positive, got {lr}: a step of 0 or against "
                             "the descent direction goes nowhere or uphill.")
    steps, message = whole_number(steps, "The number of steps", 0, MAX_STEPS)
    if message:
        return None, message
    start = []
    for v, name in ((w1, "start w1"), (w2, "start w2")):
        v, message = finite_number(v, f"The {name}")
        if message:
            return None, message
        if abs(v) > EXTENT:
            return None, Message(f"The {name} must lie in the drawn square, between {-EXTENT} and {EXTENT}; got {v}.")
        start.append(v)
    return (lr, start, steps), None


def descent_view(lr=0.1, w1=2.8, w2=-2.9, steps=50):
    """Gradient descent on the landscape of :func:`cnn_lib.teaching.mlp.landscape_cost` from
    ``(w1, w2)`` with learning rate ``lr`` for ``steps`` steps.

    Left: the path on the contour plot. Right: the cost at every step (log scale).
    Returns a ``Figure``, or a :class:`Message` for an invalid setting.
    """
    args, message = _descent_args(lr, w1, w2, steps)
    if message:
        return message
    lr, start, steps = args
    run = mlp.gradient_descent(mlp.landscape_gradient, start, lr, steps, cost=mlp.landscape_cost)
    fig, (ax, ax_cost) = plots.new_figure(1, 2, figsize=(11, 4.6), width_ratios=(1.15, 1))
    g, cost = _landscape_grid()
    plots.plot_cost_surface(g, g, cost, ax, title=f"Gradient descent, learning rate {lr:g}")
    plots.plot_path(run["path"], ax, color=plots.PALETTE[3])
    costs = np.maximum(run["costs"], 1e-16)
    costs = costs[np.isfinite(costs)]                 # a diverging run may end on an overflowed cost
    ax_cost.semilogy(np.arange(len(costs)), costs, "o-", color=plots.PALETTE[3], markersize=3)
    from matplotlib.ticker import MaxNLocator

    ax_cost.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_cost.set_xlabel("step $t$")
    ax_cost.set_ylabel("cost $C(w_t)$ (log scale)")
    ax_cost.set_title("\n".join(_wrap(descent_status(run), 48)))
    ax_cost.grid(True, which="major", alpha=0.3)
    return fig


def _wrap(text, width):
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line]


def descent_explorer_html(lrs=DESCENT_LRS, starts=DESCENT_STARTS, steps=60, dpi=80):
    """A self-contained HTML + JavaScript gradient-descent explorer for pages without a kernel.

    Every run (each learning rate in ``lrs`` from each point in ``starts``, ``steps`` steps)
    is computed here with :func:`cnn_lib.teaching.mlp.gradient_descent` and embedded, with the
    contour plot as a PNG; the browser only draws the chosen path up to the chosen step.
    No external script or network access is needed.

    Returns the HTML as a string, or a :class:`Message` for invalid settings.
    """
    lrs = [float(v) for v in lrs]
    if not lrs or min(lrs) <= 0 or not all(math.isfinite(v) for v in lrs):
        return Message("Give at least one positive, finite learning rate.")
    starts = [tuple(float(v) for v in s) for s in starts]
    if not starts or any(len(s) != 2 or max(abs(v) for v in s) > EXTENT for s in starts):
        return Message(f"Give at least one start (w1, w2) inside the square [{-EXTENT}, {EXTENT}]^2.")
    steps, message = whole_number(steps, "The number of steps", 1, MAX_STEPS)
    if message:
        return message

    fig, ax = plots.new_figure(figsize=(5.6, 4.8))
    fig.set_dpi(dpi)
    g, cost = _landscape_grid()
    plots.plot_cost_surface(g, g, cost, ax, title="Gradient descent on a cost with several minima")
    for k, (a, b) in enumerate(starts):
        ax.annotate(chr(65 + k), (a, b), xytext=(6, 6), textcoords="offset points", fontsize=11,
                    color="white", fontweight="bold")
    fig.canvas.draw()                      # fixes the layout: transData now maps to image pixels
    width, height = fig.canvas.get_width_height()
    to_pixels = ax.transData.transform
    box = ax.get_window_extent()                                       # the axes, in pixels from the bottom left
    clip = [round(box.x0, 1), round(height - box.y1, 1), round(box.width, 1), round(box.height, 1)]

    runs = []
    for lr in lrs:
        row = []
        for s in starts:
            run = mlp.gradient_descent(mlp.landscape_gradient, s, lr, steps, cost=mlp.landscape_cost, max_norm=100)
            px = to_pixels(run["path"])
            row.append({
                "px": np.round(np.column_stack([px[:, 0], height - px[:, 1]]), 1).tolist(),
                "w": np.round(run["path"], 4).tolist(),
                "cost": [float(f"{c:.4g}") for c in run["costs"]],
                "status": descent_status(run) if run["diverged"] else "",
            })
        runs.append(row)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    import matplotlib.pyplot as plt
    plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    data = {"lrs": lrs, "starts": starts, "steps": steps, "clip": clip, "color": plots.PALETTE[3], "runs": runs}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    uid = "cnnlib-gd-" + hashlib.sha1((payload + png).encode()).hexdigest()[:10]
    options = "".join(f'<option value="{k}">{chr(65 + k)}: ({a:g}, {b:g})</option>'
                      for k, (a, b) in enumerate(starts))
    good = min(range(len(lrs)), key=lambda i: abs(math.log(lrs[i] / 0.1)))
    return f"""<div id="{uid}" class="cnnlib-descent">
<style>{static_text("descent.css")}</style>
<div class="cnnlib-descent-stage" style="width:{width}px;height:{height}px">
<img src="data:image/png;base64,{png}" width="{width}" height="{height}"
 alt="Contour plot of a cost with one global and four local minima">
<canvas width="{width}" height="{height}"></canvas></div>
<div class="cnnlib-descent-controls">
<label>learning rate <input class="lr" type="range" min="0" max="{len(lrs) - 1}" step="1" value="{good}">
 <b class="lr-out"></b></label><br>
<label>start <select class="start">{options}</select></label>&nbsp;&nbsp;
<label>steps <input class="steps" type="range" min="0" max="{steps}" step="1" value="{steps}">
 <b class="steps-out"></b></label></div>
<div class="readout" style="max-width:{width}px"></div></div>
<script>
{static_text("descent.js", uid=uid, data=payload)}</script>"""


# =========================================================================== chapter 3: activations
#: name -> (function, backward ``(dy, x) -> dx``, layer class), from :mod:`cnn_lib.functional`.
ACTIVATION_FUNCTIONS = {
    "sigmoid": (F.sigmoid, F.sigmoid_backward, Sigmoid),
    "arctan": (F.arctan, F.arctan_backward, Arctan),
    "relu": (F.relu, F.relu_backward, ReLU),
}
_ACTIVATION_LABELS = {  # name -> (label of the function, label of its derivative)
    "sigmoid": ("sigmoid $\\sigma(x)$", "$\\sigma'(x) = \\sigma(x)(1 - \\sigma(x))$"),
    "arctan": ("$\\arctan(x)$", "$\\arctan'(x) = 1 / (1 + x^2)$"),
    "relu": ("ReLU $\\max(0, x)$", "ReLU$'(x)$: 0 for $x \\leq 0$, 1 for $x > 0$"),
}


def activation_view(names=("sigmoid", "arctan", "relu"), x_min=-6.0, x_max=6.0):
    """The chosen activation functions (left) and their derivatives (right) on ``[x_min, x_max]``.

    The derivatives are the library's backward functions applied to ``dy = 1``.
    Returns a ``Figure``, or a :class:`Message` for an invalid setting.
    """
    if isinstance(names, str):
        names = (names,)
    names = list(names)
    if not names:
        return Message("Choose at least one activation function to draw.")
    unknown = [n for n in names if n not in ACTIVATION_FUNCTIONS]
    if unknown:
        return Message(f"Unknown activation {unknown[0]!r}; choose among {', '.join(ACTIVATION_FUNCTIONS)}.")
    lo, message = finite_number(x_min, "The left end of the range")
    if message:
        return message
    hi, message = finite_number(x_max, "The right end of the range")
    if message:
        return message
    if not lo < hi:
        return Message(f"The range is empty: the left end ({lo:g}) must be smaller than the right end ({hi:g}).")
    if hi - lo > 1e4:
        return Message("The range is too wide to see anything; keep it under 10,000.")
    x = np.linspace(lo, hi, 1001)
    fig, (ax_f, ax_d) = plots.new_figure(1, 2, figsize=(11, 4.0))
    for k, name in enumerate(ACTIVATION_FUNCTIONS):
        if name not in names:
            continue
        f, df, _ = ACTIVATION_FUNCTIONS[name]
        style = dict(color=plots.PALETTE[k], linewidth=2, linestyle=("-", "--", "-.")[k])
        ax_f.plot(x, f(x), label=_ACTIVATION_LABELS[name][0], **style)
        ax_d.plot(x, df(np.ones_like(x), x), label=_ACTIVATION_LABELS[name][1], **style)
    for ax, title, ylabel in ((ax_f, "Activation functions", "$f(x)$"), (ax_d, "Their derivatives", "$f'(x)$")):
        ax.axhline(0, color="0.6", linewidth=0.8)
        ax.axvline(0, color="0.6", linewidth=0.8)
        ax.set_xlabel("input $x$")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.set_xlim(lo, hi)
    ax_f.legend(loc="upper left", fontsize=10)
    ax_d.legend(loc="center right", fontsize=10)
    return fig


# =========================================================================== chapter 4: softmax
MAX_CLASSES = 20


def parse_logits(text):
    """Logits from ``"2, 1, 0.1"`` (commas or spaces) or a sequence of numbers -> float64 ``(K,)``.
    Raises ``ValueError`` saying what is wrong."""
    if isinstance(text, str):
        parts = [p for p in text.replace(";", ",").replace(",", " ").split() if p]
        values = []
        for p in parts:
            try:
                values.append(float(p))
            except ValueError:
                raise ValueError(f"{p!r} is not a number") from None
    else:
        try:
            values = [float(v) for v in np.ravel(text)]
        except (TypeError, ValueError):
            raise ValueError(f"logits must be numbers, got {text!r}") from None
    z = np.array(values, dtype=np.float64)
    if z.size < 2:
        raise ValueError(f"need at least two logits (one per class), got {z.size}")
    if z.size > MAX_CLASSES:
        raise ValueError(f"at most {MAX_CLASSES} logits, got {z.size}")
    if not np.all(np.isfinite(z)):
        raise ValueError("every logit must be a finite number")
    return z


def softmax_numbers(logits="2, 1, 0.1", temperature=1.0, label=0):
    """Probabilities ``softmax(z / T)`` (the report's eq. 4) and the loss ``-log p_label`` (its eq. 5), computed
    stably by :mod:`cnn_lib.functional`.

    Returns a dict with ``z`` (K,), ``scaled`` (``z / T``), ``p`` (K,), ``loss`` and
    ``label``, or a :class:`Message` for an invalid setting.
    """
    try:
        z = parse_logits(logits)
    except ValueError as e:
        return Message(f"Cannot read the logits: {e}. Type numbers separated by commas, e.g. 2, 1, 0.1.")
    T, message = finite_number(temperature, "The temperature")
    if message:
        return message
    if T <= 0:
        return Message(f"The temperature must be positive, got {T:g}: the logits are divided by it.")
    label, message = whole_number(label, "The true class", 0, z.size - 1)
    if message:
        return message
    with np.errstate(over="ignore"):
        scaled = z / T
    if not np.all(np.abs(scaled) <= 1e100):
        return Message("The logits divided by the temperature are too large to compute with (above 1e100); "
                       "use smaller logits or a higher temperature.")
    p = F.softmax(scaled[None])[0]
    loss = float(F.cross_entropy(scaled[None], np.array([label]))) + 0.0      # + 0.0: no "-0.000"
    return {"z": z, "scaled": scaled, "p": p, "loss": loss, "label": label}


def softmax_view(logits="2, 1, 0.1", temperature=1.0, label=0):
    """Bars of the logits divided by the temperature (left) and of their softmax
    probabilities (right), with the true class highlighted and the loss in the title.
    Returns a ``Figure``, or a :class:`Message` for an invalid setting."""
    out = softmax_numbers(logits, temperature, label)
    if isinstance(out, Message):
        return out
    K = out["z"].size
    fig, (ax_z, ax_p) = plots.new_figure(1, 2, figsize=(11, 3.8))
    colors = [plots.PALETTE[1] if k == out["label"] else plots.PALETTE[0] for k in range(K)]
    hatches = ["//" if k == out["label"] else "" for k in range(K)]
    ax_z.bar(np.arange(K), out["scaled"], color=colors, edgecolor="black", linewidth=0.6, hatch=hatches)
    ax_z.axhline(0, color="black", linewidth=0.8)
    ax_z.set_xticks(np.arange(K))
    ax_z.set_xlabel("class $k$")
    ax_z.set_ylabel("$z_k / T$")
    ax_z.set_title(f"Logits divided by the temperature T = {float(temperature):g}")
    plots.plot_probabilities(out["p"], ax_p, label=out["label"],
                             title=f"softmax: loss $-\\log p_{{{out['label']}}}$ = {out['loss']:.3f}")
    return fig


# =========================================================================== chapter 5: predictions
def _grid_shape(n):
    rows = int(math.isqrt(n))
    while n % rows:
        rows -= 1
    return rows, n // rows


def prediction_view(model, images, labels, index=0):
    """What an MLP does with one image: the image, the activations of each hidden layer
    (one square per neuron), and the predicted probabilities.

    ``model`` is a ``Sequential`` MLP (its activation layers' outputs are shown), ``images``
    ``(N, 1, H, W)``, ``labels (N,)``. Returns a ``Figure``, or a :class:`Message` for an
    invalid index.
    """
    n = len(images)
    index, message = whole_number(index, "The image index", 0, n - 1)
    if message:
        return message
    x = images[index:index + 1]
    hidden = []
    for name, layer in model.layers.items():
        x = layer.forward(x, train=False)
        if isinstance(layer, (ReLU, Sigmoid, Arctan)):
            hidden.append((name, x[0]))
    p = F.softmax(x.astype(np.float64))[0]
    pred = int(np.argmax(p))
    widths = [1.0] + [1.3] * len(hidden) + [2.2]
    fig, axes = plots.new_figure(1, len(widths), figsize=(3.0 * sum(widths) + 0.5, 3.6), width_ratios=widths)
    axes[0].imshow(images[index].reshape(images.shape[-2:]), cmap="gray")
    axes[0].set_title(f"test image {index}\nlabel {int(labels[index])}")
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    for ax, (name, act) in zip(axes[1:], hidden):
        r, c = _grid_shape(act.size)
        im = ax.imshow(act.reshape(r, c), cmap="viridis", vmin=0)
        ax.set_title(f"{name}: {act.size} neurons\n{int(np.count_nonzero(act > 0))} active")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8).set_label("activation")
    right = "right" if pred == int(labels[index]) else "WRONG"
    plots.plot_probabilities(p, axes[-1], label=int(labels[index]), title=f"prediction {pred} ({right})")
    return fig


# =========================================================================== ipywidgets wrappers
def _show(result):
    """Display a Figure, an HTML string or a Message in the current output (then close the figure)."""
    show_result(result, html_strings=True)


def _explorer(view, controls, description=None):
    import ipywidgets as widgets

    out = widgets.interactive_output(lambda **kw: [_show(r) for r in view(**kw)], controls)
    children = ([widgets.HTML(description)] if description else []) + [
        widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap")), out]
    return widgets.VBox(children)


def _style():
    return {"description_width": "initial"}


def architecture_explorer(spec="784-128-10"):
    """Type layer sizes, see the network drawn and its parameters counted."""
    import ipywidgets as widgets

    controls = {"spec": widgets.Text(value=spec, description="layer sizes", continuous_update=False, style=_style())}
    return _explorer(lambda spec: (architecture_view(spec), param_table_html(spec)), controls)


def approximation_explorer(n_hidden=4):
    """Slide the number of hidden ReLU neurons, see the approximation of a wavy function."""
    import ipywidgets as widgets

    controls = {"n_hidden": widgets.IntSlider(value=n_hidden, min=1, max=MAX_HIDDEN, description="hidden neurons",
                                              continuous_update=False, style=_style())}
    return _explorer(lambda n_hidden: (approximation_view(n_hidden),), controls)


def descent_explorer(lr=0.1, w1=2.8, w2=-2.9, steps=50):
    """Learning rate, start point and number of steps -> the gradient-descent path."""
    import ipywidgets as widgets

    opts = dict(continuous_update=False, style=_style())
    controls = {
        "lr": widgets.FloatLogSlider(value=lr, base=10, min=-3, max=math.log10(5), step=0.05,
                                     description="learning rate", readout_format=".3g", **opts),
        "w1": widgets.FloatSlider(value=w1, min=-EXTENT, max=EXTENT, step=0.1, description="start w1", **opts),
        "w2": widgets.FloatSlider(value=w2, min=-EXTENT, max=EXTENT, step=0.1, description="start w2", **opts),
        "steps": widgets.IntSlider(value=steps, min=0, max=300, description="steps", **opts),
    }
    return _explorer(lambda **kw: (descent_view(**kw),), controls)


def activation_explorer():
    """Tick activation functions and choose the range; see them and their derivatives."""
    import ipywidgets as widgets

    controls = {
        "names": widgets.SelectMultiple(options=list(ACTIVATION_FUNCTIONS), value=list(ACTIVATION_FUNCTIONS),
                                        description="functions", rows=3, style=_style()),
        "x_range": widgets.FloatRangeSlider(value=(-6, 6), min=-20, max=20, step=0.5, description="x range",
                                            continuous_update=False, style=_style()),
    }
    return _explorer(lambda names, x_range: (activation_view(names, *x_range),), controls)


def softmax_explorer(logits="2, 1, 0.1", temperature=1.0, label=0):
    """Edit the logits, the temperature and the true class; see the probabilities and the loss."""
    import ipywidgets as widgets

    controls = {
        "logits": widgets.Text(value=logits, description="logits", continuous_update=False, style=_style()),
        "temperature": widgets.FloatLogSlider(value=temperature, base=10, min=-1.5, max=1.5, step=0.05,
                                              description="temperature T", readout_format=".3g",
                                              continuous_update=False, style=_style()),
        "label": widgets.BoundedIntText(value=label, min=0, max=MAX_CLASSES - 1, description="true class",
                                        style=_style()),
    }
    return _explorer(lambda **kw: (softmax_view(**kw),), controls)


def prediction_explorer(model, images, labels, index=0):
    """Slide through images; see the hidden activations and the predicted probabilities."""
    import ipywidgets as widgets

    controls = {"index": widgets.IntSlider(value=index, min=0, max=len(images) - 1, description="image",
                                           continuous_update=False, style=_style())}
    return _explorer(lambda index: (prediction_view(model, images, labels, index),), controls)
