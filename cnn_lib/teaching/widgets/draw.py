"""Draw a digit: turn a drawing into an MNIST-like image, classify it, show the feature maps.

The pipeline (:func:`preprocess`) follows what MNIST's authors did to the NIST digits:

1. crop the drawing to the bounding box of its ink;
2. resize it (area averaging) so that its longer side is 20 pixels, keeping the aspect ratio;
3. paste it in a 28 x 28 box so that its centre of mass lands on the centre of the box
   (row 14, column 14: where the training digits' centres of mass lie on average);
4. standardize like :func:`cnn_lib.load_mnist`: ``(x - MNIST_MEAN) / MNIST_STD``.

Plain functions do the work and are unit-tested: :func:`render_strokes` (synthetic strokes
to an ink image), :func:`canvas_to_ink`, :func:`preprocess`, :func:`predict_drawing`
(probabilities and every layer's output), :func:`plot_pipeline` and :func:`plot_prediction`
(matplotlib Figures). An empty drawing gives a message string, never a traceback.

Two front ends: :func:`draw_widget` (ipycanvas + ipywidgets, needs a kernel: classifies at
the end of each stroke) and :func:`explorer_html` (a self-contained HTML + JavaScript page
fragment: a ``<canvas>`` to draw on, the same preprocessing and the network's forward pass
in plain JavaScript, the weights embedded as base64 float32; no kernel, no CDN).
The JavaScript core (:data:`JS_CORE`) is exported for node when run outside a browser, so
the tests can compare it with the Python functions.
"""

from __future__ import annotations

import base64
import html
import json
import uuid

import numpy as np

from ..conv_teaching import resize_image
from ...data import MNIST_MEAN, MNIST_STD
from ..zoo import layer_outputs
from .common import Message, static_text

__all__ = [
    "CANVAS_SIZE", "PEN_WIDTH", "BOX", "FIELD", "MAX_INK_SIDE", "render_strokes", "canvas_to_ink", "preprocess",
    "predict_drawing", "plot_pipeline", "plot_prediction", "Sketch", "draw_widget", "explorer_html",
    "network_spec", "JS_CORE",
]

CANVAS_SIZE = 280       #: side of the drawing canvas, in pixels
PEN_WIDTH = 20          #: width of the pen on that canvas
BOX = 20                #: the longer side of a digit after resizing (MNIST: 20 pixels)
FIELD = 28              #: side of the final image
INK_THRESHOLD = 0.05    #: ink below this does not count for the bounding box
#: The largest drawing :func:`preprocess` accepts, in pixels per side.
MAX_INK_SIDE = 2048
EMPTY_MESSAGE = "The canvas is empty: draw a digit (white ink, one or more strokes) to classify it."


def _share(p):
    """A probability as a percentage, never rounded up to a certainty: 0.9999994 is "over 99.9%", not "100.0%"."""
    return f"{p:.1%}" if p < 0.999 else "over 99.9%"


# --------------------------------------------------------------------------- drawings
def render_strokes(strokes, size=CANVAS_SIZE, width=PEN_WIDTH):
    """Ink image of strokes drawn with a round pen, as on the canvas.

    ``strokes``: a list of polylines, each a sequence of ``(x, y)`` points in canvas pixels
    (x to the right, y down). A pixel's ink is its coverage by the pen (anti-aliased edge).
    Returns ``(size, size)`` float64 values in ``[0, 1]``.
    """
    yy, xx = np.mgrid[0:size, 0:size] + 0.5                               # pixel centres, (size, size)
    dist = np.full((size, size), np.inf)
    for stroke in strokes:
        pts = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 1:
            pts = np.vstack([pts, pts])
        for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
            dx, dy = x1 - x0, y1 - y0
            length2 = dx * dx + dy * dy
            t = 0.0 if length2 == 0 else np.clip(((xx - x0) * dx + (yy - y0) * dy) / length2, 0, 1)
            dist = np.minimum(dist, np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy)))
    return np.clip(width / 2 - dist + 0.5, 0.0, 1.0)


def canvas_to_ink(rgba):
    """Ink in ``[0, 1]`` from canvas pixels ``(H, W, 4)`` uint8: dark, opaque strokes are ink.

    Works for black strokes on a white or on a transparent background:
    ``ink = alpha * (1 - mean(R, G, B))``, all scaled to ``[0, 1]``.
    """
    rgba = np.asarray(rgba, dtype=np.float64) / 255.0
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"expected canvas pixels of shape (H, W, 4), got {rgba.shape}")
    return rgba[..., 3] * (1.0 - rgba[..., :3].mean(axis=2))


# --------------------------------------------------------------------------- preprocessing
def _center_of_mass(img):
    total = img.sum()
    rows, cols = np.arange(img.shape[0]), np.arange(img.shape[1])
    return float(img.sum(axis=1) @ rows / total), float(img.sum(axis=0) @ cols / total)


def preprocess(ink):
    """The MNIST steps of the module docstring, applied to an ink image ``(H, W)`` in ``[0, 1]``.

    Returns a dict: ``bbox`` (top, bottom, left, right; bottom/right exclusive),
    ``cropped`` (the bounding box), ``scaled`` (longer side :data:`BOX`), ``offset`` (row and
    column where ``scaled`` is pasted), ``centred`` (``(28, 28)`` in ``[0, 1]``), ``com``
    (its centre of mass) and ``x`` (``(1, 1, 28, 28)`` float32, standardized: the network's input).

    Raises ``ValueError`` with :data:`EMPTY_MESSAGE` when there is no ink, and with a message
    for NaN or infinite pixels or an image larger than :data:`MAX_INK_SIDE` per side.
    """
    ink = np.asarray(ink, dtype=np.float64)
    if ink.ndim != 2:
        raise ValueError(f"expected a 2-D ink image, got shape {ink.shape}")
    if max(ink.shape) > MAX_INK_SIDE:
        raise ValueError(f"The drawing is {ink.shape[0]}×{ink.shape[1]} pixels; at most "
                         f"{MAX_INK_SIDE} per side are accepted.")
    if not np.isfinite(ink).all():
        raise ValueError("The drawing has NaN or infinite pixels; ink values must be finite numbers in [0, 1].")
    mask = ink > INK_THRESHOLD
    if not mask.any():
        raise ValueError(EMPTY_MESSAGE)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    cropped = ink[top:bottom, left:right]                                # (h, w)
    h, w = cropped.shape
    scale = BOX / max(h, w)
    size = (max(1, int(round(h * scale))), max(1, int(round(w * scale))))
    scaled = np.clip(resize_image(cropped, size), 0.0, 1.0)             # longer side BOX
    r, c = _center_of_mass(scaled)
    centre = FIELD // 2
    off_r = int(np.clip(round(centre - r), 0, FIELD - size[0]))          # whole-pixel shift, kept inside
    off_c = int(np.clip(round(centre - c), 0, FIELD - size[1]))
    centred = np.zeros((FIELD, FIELD))
    centred[off_r:off_r + size[0], off_c:off_c + size[1]] = scaled
    x = ((centred - MNIST_MEAN) / MNIST_STD).astype(np.float32).reshape(1, 1, FIELD, FIELD)
    return {"bbox": (int(top), int(bottom), int(left), int(right)), "cropped": cropped, "scaled": scaled,
            "offset": (off_r, off_c), "centred": centred, "com": _center_of_mass(centred), "x": x}


def predict_drawing(model, ink):
    """Preprocess an ink image and run ``model`` on it.

    Returns the dict of :func:`preprocess` plus ``probs`` (10 class probabilities),
    ``label`` (the most probable class) and ``layers`` (``[(name, output (C, H, W) or (D,))]``
    for every layer, from :func:`cnn_lib.teaching.zoo.layer_outputs`) — or, for an empty drawing,
    the message string :data:`EMPTY_MESSAGE`.
    """
    try:
        result = preprocess(ink)
    except ValueError as exc:
        return Message(str(exc))
    from ...functional import softmax
    outs = layer_outputs(model, result["x"])
    probs = softmax(outs[-1][1].astype(np.float64))[0]
    result.update(probs=probs, label=int(np.argmax(probs)), layers=[(n, a[0]) for n, a in outs])
    return result


# --------------------------------------------------------------------------- figures
def _fig(nrows, ncols, figsize, **kw):
    import matplotlib.pyplot as plt
    return plt.subplots(nrows, ncols, figsize=figsize, facecolor="white", layout="constrained", **kw)


def plot_pipeline(ink, result=None, title=None):
    """The preprocessing steps side by side: the drawing with its bounding box, the crop,
    the 20-pixel version, the centred 28 x 28 image with its centre of mass (and the
    centre of the box). ``result`` is :func:`preprocess`'s output (computed if omitted).
    Returns the Figure (or a message string for an empty drawing)."""
    from matplotlib.patches import Rectangle

    if result is None:
        try:
            result = preprocess(ink)
        except ValueError as exc:
            return Message(str(exc))
    fig, axes = _fig(1, 4, (11, 3.2))
    top, bottom, left, right = result["bbox"]
    axes[0].imshow(ink, cmap="gray", vmin=0, vmax=1)
    axes[0].add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                                edgecolor="#E69F00", linewidth=2))
    axes[0].set_title(f"1. drawing {ink.shape[0]}×{ink.shape[1]},\nbounding box", fontsize=11)
    axes[1].imshow(result["cropped"], cmap="gray", vmin=0, vmax=1)
    axes[1].set_title(f"2. cropped\n{result['cropped'].shape[0]}×{result['cropped'].shape[1]}", fontsize=11)
    axes[2].imshow(result["scaled"], cmap="gray", vmin=0, vmax=1)
    axes[2].set_title(f"3. longer side {BOX} px\n{result['scaled'].shape[0]}×{result['scaled'].shape[1]}",
                      fontsize=11)
    axes[3].imshow(result["centred"], cmap="gray", vmin=0, vmax=1)
    r, c = result["com"]
    axes[3].plot([c], [r], "x", color="#E69F00", markersize=10, mew=2, label="centre of mass")
    axes[3].plot([FIELD // 2], [FIELD // 2], "+", color="#56B4E9", markersize=12, mew=2, label="box centre")
    axes[3].legend(loc="lower center", fontsize=9, bbox_to_anchor=(0.5, -0.32), ncol=2, frameon=False)
    axes[3].set_title(f"4. centred by mass\nin {FIELD}×{FIELD}", fontsize=11)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def plot_prediction(result, max_maps=8, title=None):
    """Probabilities as a bar chart and the feature maps of every conv / pooling layer
    (one row per layer, at most ``max_maps`` maps). ``result`` is :func:`predict_drawing`'s
    output; a message string is returned unchanged. Returns the Figure."""
    if isinstance(result, str):
        return result
    maps = [(n, a) for n, a in result["layers"] if a.ndim == 3 and not n.startswith("relu")]
    # show each conv layer after its ReLU: that is what the next layer sees
    shown = []
    names = [n for n, _ in result["layers"]]
    for name, a in maps:
        k = names.index(name)
        if name.startswith("conv") and k + 1 < len(names) and names[k + 1].startswith("relu"):
            shown.append((f"{name} + ReLU", result["layers"][k + 1][1]))
        else:
            shown.append((name, a))
    import matplotlib.pyplot as plt

    ncols = max_maps
    fig = plt.figure(figsize=(11, 2.6 + 1.25 * len(shown)), facecolor="white", layout="constrained")
    grid = fig.add_gridspec(1 + len(shown), ncols, height_ratios=[2.2] + [1] * len(shown))
    ax = fig.add_subplot(grid[0, :])
    probs = result["probs"]
    colors = ["#0072B2"] * 10
    colors[result["label"]] = "#D55E00"
    bars = ax.bar(np.arange(10), probs, color=colors, edgecolor="black", linewidth=0.5)
    ax.bar_label(bars, labels=[f"{p:.0%}" if p >= 0.005 else "" for p in probs], fontsize=9, padding=2)
    ax.set_xticks(np.arange(10))
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("digit")
    ax.set_ylabel("probability")
    ax.set_title(title or f"The network reads a {result['label']} ({_share(probs[result['label']])})", fontsize=12)
    for row, (name, a) in enumerate(shown, start=1):
        for j in range(ncols):
            sub = fig.add_subplot(grid[row, j])
            sub.set_xticks([])
            sub.set_yticks([])
            if j < len(a):
                sub.imshow(a[j], cmap="magma")
                if row == 1:
                    sub.set_title(f"map {j}", fontsize=9)      # the maps' numbers, as exercise 3 asks
            else:
                sub.set_axis_off()
            if j == 0:
                sub.set_ylabel(f"{name}\n{a.shape[0]}×{a.shape[1]}×{a.shape[2]}", fontsize=9, rotation=0,
                               ha="right", va="center")
    return fig


# --------------------------------------------------------------------------- kernel widget
class Sketch:
    """The strokes drawn so far, as points in canvas pixels: what the kernel widget records
    from mouse events. :meth:`ink` renders them with :func:`render_strokes`, so the widget
    classifies exactly what the tests check, whatever the browser's anti-aliasing."""

    def __init__(self, size=CANVAS_SIZE, pen_width=PEN_WIDTH):
        self.size, self.pen_width, self.strokes, self.drawing = size, pen_width, [], False

    def down(self, x, y):
        self.strokes.append([(float(x), float(y))])
        self.drawing = True

    def move(self, x, y):
        if self.drawing:
            self.strokes[-1].append((float(x), float(y)))

    def up(self):
        """Ends the stroke; returns True if one was being drawn."""
        was, self.drawing = self.drawing, False
        return was

    def clear(self):
        self.strokes, self.drawing = [], False

    def ink(self):
        return render_strokes(self.strokes, self.size, self.pen_width)


def draw_widget(model, size=CANVAS_SIZE, pen_width=PEN_WIDTH):
    """An ipycanvas canvas to draw on with the mouse; at the end of each stroke the drawing
    is preprocessed and classified, and the pipeline, the probabilities and the feature
    maps are redrawn below it. "Clear" empties the canvas. Needs a running kernel."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display
    from ipycanvas import Canvas, hold_canvas

    canvas = Canvas(width=size, height=size,
                    layout=widgets.Layout(border="1px solid #888", width=f"{size}px", height=f"{size}px"))
    clear = widgets.Button(description="Clear", icon="eraser")
    status = widgets.HTML("Draw a digit with the mouse.")
    out = widgets.Output()
    sketch = Sketch(size, pen_width)

    def reset(*_):
        sketch.clear()
        with hold_canvas():
            canvas.fill_style = "white"
            canvas.fill_rect(0, 0, size, size)
            canvas.line_width, canvas.line_cap, canvas.line_join = pen_width, "round", "round"
            canvas.stroke_style = canvas.fill_style = "black"
        out.clear_output()
        status.value = "Draw a digit with the mouse."

    def down(x, y):
        sketch.down(x, y)
        canvas.fill_circle(x, y, pen_width / 2)

    def move(x, y):
        if sketch.drawing:
            x0, y0 = sketch.strokes[-1][-1]
            sketch.move(x, y)
            canvas.stroke_line(x0, y0, x, y)

    def up(x, y):
        if not sketch.up():
            return
        ink = sketch.ink()
        result = predict_drawing(model, ink)
        out.clear_output(wait=True)
        if isinstance(result, str):
            status.value = result
            return
        status.value = f"The network reads a <b>{result['label']}</b> ({_share(result['probs'][result['label']])})."
        with out:
            for fig in (plot_pipeline(ink, result), plot_prediction(result)):
                display(fig)
                plt.close(fig)

    canvas.on_mouse_down(down)
    canvas.on_mouse_move(move)
    canvas.on_mouse_up(up)
    canvas.on_mouse_out(up)
    clear.on_click(reset)
    reset()
    return widgets.VBox([widgets.HBox([canvas, widgets.VBox([clear, status])]), out])


# --------------------------------------------------------------------------- JavaScript version
def network_spec(model, input_shape=(1, FIELD, FIELD)):
    """The layers of a ``Sequential`` as JSON-ready dicts for the JavaScript forward pass:
    ``conv`` (``shape`` (F, C, KH, KW), ``stride``, ``padding``, base64 float32 ``w`` and ``b``),
    ``pool`` (``size``, ``stride``), ``relu``, ``flatten``, ``dense`` (``shape`` (D, M), ``w``, ``b``)."""
    from ...layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

    def b64(a):
        return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")

    spec = []
    for name, layer in model.layers.items():
        if isinstance(layer, Conv2D):
            spec.append({"type": "conv", "name": name, "shape": list(layer.params["w"].shape),
                         "stride": layer.stride[0], "padding": layer.padding[0],
                         "w": b64(layer.params["w"]), "b": b64(layer.params["b"])})
        elif isinstance(layer, MaxPool2D):
            spec.append({"type": "pool", "name": name, "size": layer.kernel_size[0], "stride": layer.stride[0]})
        elif isinstance(layer, ReLU):
            spec.append({"type": "relu", "name": name})
        elif isinstance(layer, Flatten):
            spec.append({"type": "flatten", "name": name})
        elif isinstance(layer, Dense):
            spec.append({"type": "dense", "name": name, "shape": list(layer.params["w"].shape),
                         "w": b64(layer.params["w"]), "b": b64(layer.params["b"])})
        else:
            raise ValueError(f"the JavaScript forward pass has no {type(layer).__name__} layer")
    return spec


#: Pure JavaScript: preprocessing and forward pass, the same steps as the Python functions.
#: The explorer's core in JavaScript (preprocessing and forward pass; exported with
#: ``module.exports`` under Node.js): the package file ``static/draw-core.js`` with this module's
#: constants filled in.
JS_CORE = static_text("draw-core.js", box=BOX, field=FIELD, threshold=repr(float(INK_THRESHOLD)),
                      mean=repr(float(MNIST_MEAN)), std=repr(float(MNIST_STD)))


def explorer_html(model, pen_width=PEN_WIDTH, size=CANVAS_SIZE, max_maps=8):
    """A self-contained HTML fragment: draw a digit on a ``<canvas>`` and see, as you draw,
    the centred 28 x 28 image, the class probabilities and the feature maps of every conv /
    pooling layer (after its ReLU), all computed in the browser by :data:`JS_CORE` with the
    weights of ``model`` embedded as base64 float32. No kernel, no network access.

    Stable hooks: root ``div.cnn-draw`` (with a unique ``id``), ``canvas.cnn-draw-canvas``,
    ``button.cnn-draw-clear``, ``.cnn-draw-msg`` (the verdict), ``.cnn-draw-bar`` (ten bars,
    ``data-digit``), ``canvas.cnn-draw-small`` (the centred image), ``.cnn-draw-row``
    (``data-layer``: the index of the layer output shown) with ``canvas.cnn-draw-map``.
    """
    spec = network_spec(model)
    root_id = "cnn-draw-" + uuid.uuid4().hex[:10]
    shapes = [s for _, _, s, _ in model.summary()]
    rows = []
    for k, L in enumerate(spec):
        if L["type"] == "conv" and k + 1 < len(spec) and spec[k + 1]["type"] == "relu":
            rows.append((k + 1, f"{L['name']} + ReLU"))
        elif L["type"] == "pool":
            rows.append((k, L["name"]))
    bars = "".join(
        f'<div class="cnn-draw-column"><span class="cnn-draw-p"></span>'
        f'<div class="cnn-draw-track"><div class="cnn-draw-bar" data-digit="{d}" style="height:0%"></div></div>'
        f'<span class="cnn-draw-digit">{d}</span></div>' for d in range(10))
    map_rows = "".join(
        f'<div class="cnn-draw-row" data-layer="{k}">'
        f'<span class="cnn-draw-label">{html.escape(label)}<br>{"×".join(map(str, shapes[k]))}</span>'
        + "".join('<canvas class="cnn-draw-map" width="1" height="1"></canvas>'
                  for _ in range(min(max_maps, shapes[k][0])))
        + "</div>" for k, label in rows)
    net_json = json.dumps(spec).replace("</", "<\\/")
    return f"""
<div class="cnn-draw" id="{root_id}">
 <style>{static_text("draw.css")}</style>
 <div class="cnn-draw-top">
  <div>
   <canvas class="cnn-draw-canvas" width="{size}" height="{size}" style="width:{size}px;height:{size}px"></canvas><br>
   <button class="cnn-draw-clear" type="button">Clear</button>
   <span class="cnn-draw-msg"></span>
  </div>
  <div>
   <div class="cnn-draw-caption">network input (centred, 28×28)</div>
   <canvas class="cnn-draw-small" width="28" height="28"></canvas>
   <div class="cnn-draw-caption cnn-draw-caption-next">probabilities</div>
   <div class="cnn-draw-bars">{bars}</div>
  </div>
 </div>
 <div class="cnn-draw-maps">{map_rows}</div>
 <script type="application/json" class="cnn-draw-net">{net_json}</script>
 <script>{JS_CORE}</script>
 <script>{static_text("draw-ui.js", uid=root_id, pen=pen_width)}</script>
</div>
"""
