"""cnn_lib.teaching.widgets.draw: drawing -> MNIST-like image -> prediction, in Python and in JavaScript."""

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from cnn_lib.teaching import zoo
from cnn_lib.data import MNIST_MEAN, MNIST_STD
from cnn_lib.teaching.widgets import draw

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ONE = [[(140, 40), (140, 240)]]                                  # a vertical bar
WIDE_ONE = [[(60, 40), (60, 240)]]                               # the same bar, far to the left
ZERO = [[(140 + 60 * np.sin(t), 140 - 95 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 60)]]
SEVEN = [[(60, 50), (220, 50), (120, 240)]]


@pytest.fixture(scope="module")
def trained(mnist):
    """The book's network (chapter "Training on MNIST"), from the zoo cache or trained once."""
    model, _ = zoo.trained_model("seed", epochs=3, progress=False)
    return model


def test_render_strokes_draws_a_round_pen():
    ink = draw.render_strokes([[(40, 140), (240, 140)]], size=280, width=20)
    assert ink.shape == (280, 280) and ink.min() == 0.0 and ink.max() == 1.0
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    assert rows.min() >= 129 and rows.max() <= 150                          # width 20 around y = 140
    cols = np.flatnonzero(ink.max(axis=0) > 0)
    assert cols.min() >= 29 and cols.max() <= 250                           # round caps
    dot = draw.render_strokes([[(100, 100)]], width=10)
    assert 70 < dot.sum() < 90                                              # about pi * 5^2


def test_canvas_to_ink():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 255, 255, 255)          # white paper
    rgba[0, 1] = (0, 0, 0, 255)                # black ink
    rgba[1, 0] = (0, 0, 0, 0)                  # transparent
    rgba[1, 1] = (128, 128, 128, 255)          # grey edge
    ink = draw.canvas_to_ink(rgba)
    assert np.allclose(ink, [[0, 1], [0, 1 - 128 / 255]])
    with pytest.raises(ValueError):
        draw.canvas_to_ink(np.zeros((3, 3)))


def test_vertical_line_is_centred_like_mnist():
    r = draw.preprocess(draw.render_strokes(ONE))
    assert r["scaled"].shape[0] == draw.BOX and r["scaled"].shape[1] < 5      # aspect ratio kept
    assert r["centred"].shape == (28, 28)
    com = np.array(r["com"])
    assert np.all(np.abs(com - 14) <= 0.5 + 1e-9)           # whole-pixel shift: within half a pixel
    assert r["x"].shape == (1, 1, 28, 28) and r["x"].dtype == np.float32
    assert np.allclose(r["x"][0, 0], (r["centred"] - MNIST_MEAN) / MNIST_STD, atol=1e-6)
    assert np.isclose(r["centred"].sum(), r["scaled"].sum())                  # pasted whole
    # where it was drawn does not matter
    far = draw.preprocess(draw.render_strokes(WIDE_ONE))
    assert np.allclose(far["centred"], r["centred"], atol=1e-9)


def test_small_and_large_drawings_end_up_the_same_size():
    big = draw.preprocess(draw.render_strokes([[(40, 40), (240, 240)]], width=20))
    small = draw.preprocess(draw.render_strokes([[(120, 120), (160, 160)]], width=4))
    assert big["scaled"].shape == small["scaled"].shape == (20, 20)


def test_real_mnist_digits_survive_the_pipeline(mnist):
    """Upscale real test digits to the canvas size: the pipeline gives back nearly the original."""
    _, _, x_test, _ = mnist
    raw = x_test[:20, 0] * MNIST_STD + MNIST_MEAN                           # back to [0, 1]
    for img in raw:
        big = np.kron(img, np.ones((10, 10)))                               # 280 x 280
        out = draw.preprocess(big)["centred"]
        corr = np.corrcoef(out.ravel(), img.ravel())[0, 1]
        assert corr > 0.9


def test_empty_canvas_gives_a_message_not_a_traceback(trained):
    empty = np.zeros((280, 280))
    assert draw.predict_drawing(trained, empty) == draw.EMPTY_MESSAGE
    assert draw.plot_pipeline(empty) == draw.EMPTY_MESSAGE
    assert draw.plot_prediction(draw.EMPTY_MESSAGE) == draw.EMPTY_MESSAGE
    with pytest.raises(ValueError, match="empty"):
        draw.preprocess(empty)


@pytest.mark.parametrize("strokes, digit", [(ONE, 1), (WIDE_ONE, 1), (ZERO, 0), (SEVEN, 7)])
def test_synthetic_digits_are_classified(trained, strokes, digit):
    result = draw.predict_drawing(trained, draw.render_strokes(strokes))
    assert result["label"] == digit, np.round(result["probs"], 3)
    assert np.isclose(result["probs"].sum(), 1.0)
    assert [n for n, _ in result["layers"]] == [r[0] for r in trained.summary()]


def test_sketch_records_strokes():
    s = draw.Sketch()
    s.move(1, 1)                                  # moving without pressing draws nothing
    assert s.strokes == []
    s.down(140, 40)
    s.move(140, 140)
    s.move(140, 240)
    assert s.up() is True and s.up() is False
    assert np.array_equal(s.ink(), draw.render_strokes([[(140, 40), (140, 140), (140, 240)]]))
    s.clear()
    assert s.strokes == [] and s.ink().max() == 0


def test_figures(trained):
    ink = draw.render_strokes(SEVEN)
    fig = draw.plot_pipeline(ink, title="a seven")
    assert len(fig.axes) == 4 and fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    plt.close(fig)
    fig = draw.plot_prediction(draw.predict_drawing(trained, ink))
    assert "reads a 7" in fig.axes[0].get_title()
    assert len(fig.axes) == 1 + 3 * 8                         # bars + conv1, conv2 (after ReLU), pool
    plt.close(fig)


def test_widget_builds(trained):
    pytest.importorskip("ipycanvas")
    import ipywidgets
    w = draw.draw_widget(trained)
    assert isinstance(w, ipywidgets.VBox)


def test_explorer_html_is_self_contained(trained):
    page = draw.explorer_html(trained)
    assert "http://" not in page and "https://" not in page and "src=" not in page     # no CDN, no files
    assert len(page.encode()) < 1_500_000
    for hook in ("cnn-draw-canvas", "cnn-draw-clear", "cnn-draw-msg", "cnn-draw-bar", "cnn-draw-row"):
        assert hook in page
    spec = json.loads(re.search(r'class="cnn-draw-net">(.*?)</script>', page, re.S).group(1).replace("<\\/", "</"))
    conv1 = np.frombuffer(base64.b64decode(spec[0]["w"]), dtype="<f4").reshape(spec[0]["shape"])
    assert np.array_equal(conv1, trained.params()["conv1.w"])
    assert len(re.findall(r'class="cnn-draw-bar"', page)) == 10
    assert page.count('class="cnn-draw-row"') == 3


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: the JavaScript is not run")
def test_javascript_matches_python(trained, tmp_path):
    """The page's JavaScript, run under node, preprocesses and classifies like the Python code."""
    cases = {"one": ONE, "zero": ZERO, "seven": SEVEN}
    inks = {k: draw.render_strokes(v) for k, v in cases.items()}
    (tmp_path / "net.json").write_text(json.dumps(draw.network_spec(trained)))
    for k, ink in inks.items():
        (tmp_path / f"{k}.json").write_text(json.dumps(ink.ravel().tolist()))
    script = draw.JS_CORE + """
const fs = require("fs");
const net = CnnDraw.load(JSON.parse(fs.readFileSync(process.argv[2] + "/net.json")));
const out = {};
for (const k of %s) {
  const ink = JSON.parse(fs.readFileSync(process.argv[2] + "/" + k + ".json"));
  const pre = CnnDraw.preprocess(ink, 280, 280);
  const outs = CnnDraw.forward(net, pre.x);
  out[k] = {centred: Array.from(pre.centred), offset: pre.offset, bbox: pre.bbox,
            probs: CnnDraw.softmax(outs[outs.length - 1].data),
            pool: Array.from(outs[4].data)};
}
out.empty = CnnDraw.preprocess(new Float64Array(280 * 280), 280, 280);
console.log(JSON.stringify(out));
""" % json.dumps(list(cases))
    (tmp_path / "run.js").write_text(script)
    res = subprocess.run(["node", str(tmp_path / "run.js"), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    js = json.loads(res.stdout)
    assert js["empty"] is None
    for k, ink in inks.items():
        py = draw.predict_drawing(trained, ink)
        assert tuple(js[k]["bbox"]) == py["bbox"] and tuple(js[k]["offset"]) == py["offset"]
        assert np.allclose(np.array(js[k]["centred"]).reshape(28, 28), py["centred"], atol=1e-9)
        assert np.allclose(js[k]["pool"], py["layers"][4][1].ravel(), rtol=1e-4, atol=1e-4)
        assert np.allclose(js[k]["probs"], py["probs"], atol=1e-5)
