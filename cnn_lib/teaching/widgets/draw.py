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
from .common import Message

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
    ax.set_title(title or f"The network reads a {result['label']} ({probs[result['label']]:.1%})", fontsize=12)
    for row, (name, a) in enumerate(shown, start=1):
        for j in range(ncols):
            sub = fig.add_subplot(grid[row, j])
            sub.set_xticks([])
            sub.set_yticks([])
            if j < len(a):
                sub.imshow(a[j], cmap="magma")
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
        status.value = f"The network reads a <b>{result['label']}</b> ({result['probs'][result['label']]:.1%})."
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
JS_CORE = r"""
var CnnDraw = (function () {
  "use strict";
  var BOX = %(box)d, FIELD = %(field)d, THRESHOLD = %(threshold)r, MEAN = %(mean)r, STD = %(std)r;

  function decode(b64) {                       // base64 little-endian float32 -> Float32Array
    var bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  function areaWeights(nIn, nOut) {            // (nOut x nIn): share of input pixel k in output pixel i
    var W = [], step = nIn / nOut;
    for (var i = 0; i < nOut; i++) {
      var lo = i * step, hi = (i + 1) * step, row = new Float64Array(nIn), total = 0;
      for (var k = Math.floor(lo); k < Math.min(nIn, Math.ceil(hi)); k++) {
        var o = Math.max(0, Math.min(hi, k + 1) - Math.max(lo, k));
        row[k] = o; total += o;
      }
      for (var k2 = 0; k2 < nIn; k2++) row[k2] /= total;
      W.push(row);
    }
    return W;
  }

  function resize(img, h, w, rows, cols) {     // area averaging, img row-major (h x w)
    var A = areaWeights(h, rows), B = areaWeights(w, cols), tmp = new Float64Array(rows * w);
    for (var i = 0; i < rows; i++) for (var k = 0; k < h; k++) {
      var a = A[i][k]; if (a === 0) continue;
      for (var c = 0; c < w; c++) tmp[i * w + c] += a * img[k * w + c];
    }
    var out = new Float64Array(rows * cols);
    for (var i2 = 0; i2 < rows; i2++) for (var j = 0; j < cols; j++) {
      var s = 0, Bj = B[j];
      for (var c2 = 0; c2 < w; c2++) s += tmp[i2 * w + c2] * Bj[c2];
      out[i2 * cols + j] = Math.min(1, Math.max(0, s));
    }
    return out;
  }

  function roundHalfEven(v) {                  // Python's round()
    var r = Math.round(v);
    if (Math.abs(v %% 1) === 0.5 && r %% 2 !== 0) r -= 1;
    return r;
  }

  function preprocess(ink, H, W) {             // ink: Float64Array/Float32Array H*W in [0, 1]
    var top = H, bottom = -1, left = W, right = -1;
    for (var r = 0; r < H; r++) for (var c = 0; c < W; c++) if (ink[r * W + c] > THRESHOLD) {
      if (r < top) top = r; if (r > bottom) bottom = r; if (c < left) left = c; if (c > right) right = c;
    }
    if (bottom < 0) return null;
    var h = bottom - top + 1, w = right - left + 1, cropped = new Float64Array(h * w);
    for (var r2 = 0; r2 < h; r2++) for (var c2 = 0; c2 < w; c2++) cropped[r2 * w + c2] = ink[(top + r2) * W + left + c2];
    var scale = BOX / Math.max(h, w);
    var rows = Math.max(1, roundHalfEven(h * scale)), cols = Math.max(1, roundHalfEven(w * scale));
    var scaled = resize(cropped, h, w, rows, cols), total = 0, mr = 0, mc = 0;
    for (var i = 0; i < rows; i++) for (var j = 0; j < cols; j++) {
      var v = scaled[i * cols + j]; total += v; mr += v * i; mc += v * j;
    }
    var centre = Math.floor(FIELD / 2);
    var offR = Math.min(FIELD - rows, Math.max(0, roundHalfEven(centre - mr / total)));
    var offC = Math.min(FIELD - cols, Math.max(0, roundHalfEven(centre - mc / total)));
    var centred = new Float64Array(FIELD * FIELD);
    for (var i3 = 0; i3 < rows; i3++) for (var j3 = 0; j3 < cols; j3++) centred[(offR + i3) * FIELD + offC + j3] = scaled[i3 * cols + j3];
    var x = new Float32Array(FIELD * FIELD);
    for (var k = 0; k < x.length; k++) x[k] = (centred[k] - MEAN) / STD;
    return {bbox: [top, bottom + 1, left, right + 1], rows: rows, cols: cols, offset: [offR, offC],
            centred: centred, x: x};
  }

  function load(spec) {                        // decode the weights once
    return spec.map(function (L) {
      var o = {}; for (var k in L) o[k] = L[k];
      if (L.w) { o.w = decode(L.w); o.b = decode(L.b); }
      return o;
    });
  }

  function forward(net, x) {                   // x: Float32Array (1, 28, 28); returns every layer's output
    var t = {data: x, shape: [1, FIELD, FIELD]}, outs = [];
    net.forEach(function (L) {
      var d = t.data, s = t.shape, y, shape;
      if (L.type === "conv") {
        var F = L.shape[0], C = L.shape[1], K = L.shape[2], st = L.stride, p = L.padding;
        var H = s[1], W = s[2], Ho = Math.floor((H + 2 * p - K) / st) + 1, Wo = Math.floor((W + 2 * p - K) / st) + 1;
        y = new Float32Array(F * Ho * Wo); shape = [F, Ho, Wo];
        for (var f = 0; f < F; f++) for (var i = 0; i < Ho; i++) for (var j = 0; j < Wo; j++) {
          var acc = L.b[f];
          for (var c = 0; c < C; c++) for (var u = 0; u < K; u++) {
            var r = i * st + u - p; if (r < 0 || r >= H) continue;
            for (var v = 0; v < K; v++) {
              var q = j * st + v - p; if (q < 0 || q >= W) continue;
              acc += L.w[((f * C + c) * K + u) * K + v] * d[(c * H + r) * W + q];
            }
          }
          y[(f * Ho + i) * Wo + j] = acc;
        }
      } else if (L.type === "pool") {
        var C2 = s[0], H2 = s[1], W2 = s[2], k2 = L.size, st2 = L.stride;
        var Ho2 = Math.floor((H2 - k2) / st2) + 1, Wo2 = Math.floor((W2 - k2) / st2) + 1;
        y = new Float32Array(C2 * Ho2 * Wo2); shape = [C2, Ho2, Wo2];
        for (var c3 = 0; c3 < C2; c3++) for (var i2 = 0; i2 < Ho2; i2++) for (var j2 = 0; j2 < Wo2; j2++) {
          var m = -Infinity;
          for (var u2 = 0; u2 < k2; u2++) for (var v2 = 0; v2 < k2; v2++)
            m = Math.max(m, d[(c3 * H2 + i2 * st2 + u2) * W2 + j2 * st2 + v2]);
          y[(c3 * Ho2 + i2) * Wo2 + j2] = m;
        }
      } else if (L.type === "relu") {
        y = d.map(function (v3) { return v3 > 0 ? v3 : 0; }); shape = s;
      } else if (L.type === "flatten") {
        y = d; shape = [d.length];
      } else if (L.type === "dense") {
        var D = L.shape[0], M = L.shape[1];
        y = new Float32Array(M); shape = [M];
        for (var mm = 0; mm < M; mm++) {
          var a2 = L.b[mm];
          for (var dd = 0; dd < D; dd++) a2 += d[dd] * L.w[dd * M + mm];
          y[mm] = a2;
        }
      }
      t = {data: y, shape: shape}; outs.push({name: L.name, type: L.type, data: y, shape: shape});
    });
    return outs;
  }

  function softmax(z) {                        // shifted by the max: finite for any logits
    var m = Math.max.apply(null, Array.from(z)), e = Array.from(z, function (v) { return Math.exp(v - m); });
    var s = e.reduce(function (a, b) { return a + b; }, 0);
    return e.map(function (v) { return v / s; });
  }

  return {decode: decode, resize: resize, preprocess: preprocess, load: load, forward: forward, softmax: softmax};
})();
if (typeof module !== "undefined" && module.exports) module.exports = CnnDraw;
""" % {"box": BOX, "field": FIELD, "threshold": INK_THRESHOLD, "mean": MNIST_MEAN, "std": MNIST_STD}


_JS_UI = r"""
(function () {
  var root = document.getElementById("%(id)s");
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  var net = CnnDraw.load(JSON.parse(root.querySelector("script.cnn-draw-net").textContent));
  var canvas = root.querySelector("canvas.cnn-draw-canvas"), ctx = canvas.getContext("2d");
  var S = canvas.width, PEN = %(pen)d, drawing = false, last = null, pending = false;
  function clear() {
    ctx.fillStyle = "white"; ctx.fillRect(0, 0, S, S);
    root.querySelector(".cnn-draw-msg").textContent = "Draw a digit in the box.";
    root.querySelectorAll(".cnn-draw-bar").forEach(function (b) { b.style.height = "0%%"; });
    root.querySelectorAll(".cnn-draw-p").forEach(function (b) { b.textContent = ""; });
    root.querySelectorAll("canvas.cnn-draw-map, canvas.cnn-draw-small").forEach(function (c) {
      c.getContext("2d").clearRect(0, 0, c.width, c.height);
    });
  }
  function pos(e) {
    var r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * S / r.width, (e.clientY - r.top) * S / r.height];
  }
  function dot(p) { ctx.fillStyle = "black"; ctx.beginPath(); ctx.arc(p[0], p[1], PEN / 2, 0, 2 * Math.PI); ctx.fill(); }
  canvas.addEventListener("pointerdown", function (e) {
    drawing = true; last = pos(e); dot(last); canvas.setPointerCapture(e.pointerId); schedule(); e.preventDefault();
  });
  canvas.addEventListener("pointermove", function (e) {
    if (!drawing) return;
    var p = pos(e);
    ctx.strokeStyle = "black"; ctx.lineWidth = PEN; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
    last = p; schedule(); e.preventDefault();
  });
  ["pointerup", "pointercancel", "pointerleave"].forEach(function (ev) {
    canvas.addEventListener(ev, function () { if (drawing) { drawing = false; schedule(); } });
  });
  root.querySelector("button.cnn-draw-clear").addEventListener("click", clear);
  function schedule() { if (!pending) { pending = true; requestAnimationFrame(function () { pending = false; update(); }); } }
  function paint(c, data, h, w, offset) {      // grayscale map, scaled to its own range
    var lo = Infinity, hi = -Infinity;
    for (var k = 0; k < h * w; k++) { lo = Math.min(lo, data[offset + k]); hi = Math.max(hi, data[offset + k]); }
    c.width = w; c.height = h;
    var g = c.getContext("2d"), img = g.createImageData(w, h);
    for (var k2 = 0; k2 < h * w; k2++) {
      var v = hi > lo ? Math.round(255 * (data[offset + k2] - lo) / (hi - lo)) : 0;
      img.data[4 * k2] = img.data[4 * k2 + 1] = img.data[4 * k2 + 2] = v; img.data[4 * k2 + 3] = 255;
    }
    g.putImageData(img, 0, 0);
  }
  function update() {
    var px = ctx.getImageData(0, 0, S, S).data, ink = new Float64Array(S * S);
    for (var k = 0; k < S * S; k++) ink[k] = (px[4 * k + 3] / 255) * (1 - (px[4 * k] + px[4 * k + 1] + px[4 * k + 2]) / 765);
    var pre = CnnDraw.preprocess(ink, S, S);
    if (!pre) { clear(); return; }
    paint(root.querySelector("canvas.cnn-draw-small"), pre.centred, 28, 28, 0);
    var outs = CnnDraw.forward(net, pre.x), probs = CnnDraw.softmax(outs[outs.length - 1].data);
    var best = probs.indexOf(Math.max.apply(null, probs));
    root.querySelectorAll(".cnn-draw-bar").forEach(function (b, i) {
      b.style.height = (100 * probs[i]).toFixed(1) + "%%";
      b.style.background = i === best ? "#D55E00" : "#0072B2";
    });
    root.querySelectorAll(".cnn-draw-p").forEach(function (b, i) { b.textContent = probs[i] >= 0.005 ? Math.round(100 * probs[i]) + "%%" : ""; });
    root.querySelector(".cnn-draw-msg").textContent = "The network reads a " + best + " (" + (100 * probs[best]).toFixed(1) + "%%).";
    root.querySelectorAll(".cnn-draw-row").forEach(function (row) {
      var k = +row.dataset.layer, o = outs[k], n = o.shape[1] * o.shape[2];
      row.querySelectorAll("canvas.cnn-draw-map").forEach(function (c, f) { paint(c, o.data, o.shape[1], o.shape[2], f * n); });
    });
  }
  clear();
})();
"""


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
        f'<div style="display:flex;flex-direction:column;align-items:center;width:26px">'
        f'<span class="cnn-draw-p" style="font-size:11px;height:14px"></span>'
        f'<div style="height:110px;width:18px;display:flex;align-items:flex-end;background:#eee">'
        f'<div class="cnn-draw-bar" data-digit="{d}" style="width:18px;height:0%;background:#0072B2"></div></div>'
        f'<span style="font-size:13px">{d}</span></div>' for d in range(10))
    map_rows = "".join(
        f'<div class="cnn-draw-row" data-layer="{k}" style="display:flex;align-items:center;gap:3px;margin:2px 0">'
        f'<span style="width:120px;font-size:12px">{html.escape(label)}<br>{"×".join(map(str, shapes[k]))}</span>'
        + "".join('<canvas class="cnn-draw-map" width="1" height="1" style="width:40px;height:40px;'
                  'image-rendering:pixelated;border:1px solid #ccc"></canvas>'
                  for _ in range(min(max_maps, shapes[k][0])))
        + "</div>" for k, label in rows)
    net_json = json.dumps(spec).replace("</", "<\\/")
    return f"""
<div class="cnn-draw" id="{root_id}" style="font-family:sans-serif;background:white;color:black;padding:8px;border:1px solid #ccc;max-width:760px">
 <div style="display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start">
  <div>
   <canvas class="cnn-draw-canvas" width="{size}" height="{size}" style="width:{size}px;height:{size}px;border:1px solid #888;touch-action:none;cursor:crosshair"></canvas><br>
   <button class="cnn-draw-clear" type="button">Clear</button>
   <span class="cnn-draw-msg" style="font-size:13px"></span>
  </div>
  <div>
   <div style="font-size:12px">network input (centred, 28×28)</div>
   <canvas class="cnn-draw-small" width="28" height="28" style="width:84px;height:84px;image-rendering:pixelated;border:1px solid #ccc;background:black"></canvas>
   <div style="font-size:12px;margin-top:6px">probabilities</div>
   <div style="display:flex;gap:2px">{bars}</div>
  </div>
 </div>
 <div style="margin-top:6px">{map_rows}</div>
 <script type="application/json" class="cnn-draw-net">{net_json}</script>
 <script>{JS_CORE}</script>
 <script>{_JS_UI % {"id": root_id, "pen": pen_width}}</script>
</div>
"""
