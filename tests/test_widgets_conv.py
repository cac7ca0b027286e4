"""Tests of cnn_lib.teaching.widgets.conv: the part II widget functions (figures, messages for invalid
settings, never a traceback) and the stride/padding explorer that runs without a kernel.

The explorer is checked three ways:

* its embedded JSON covers every combination of the controls, with the output size and
  multiply-adds of ``conv_output_size`` and feature maps equal to ``conv2d``'s;
* its JavaScript, run under Node.js, reproduces those output sizes and feature maps for
  every combination;
* the page's own scripts (extracted from the HTML), run under Node.js against a minimal
  DOM built from the HTML's elements, respond to the controls: moving a slider changes the
  displayed output size, an impossible setting shows its message, the animation advances.

The Node.js tests are skipped (with the reason) when ``node`` is not installed.
"""

import json
import shutil
import subprocess
from html.parser import HTMLParser
from itertools import product

import numpy as np
import pytest
from numpy.testing import assert_allclose

from cnn_lib.teaching import conv_teaching as T
from cnn_lib import functional as F

pytest.importorskip("matplotlib.pyplot")
from matplotlib.figure import Figure  # noqa: E402

from cnn_lib.teaching.widgets import conv as C  # noqa: E402

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="Node.js (`node`) is not installed: the explorer's "
                                "JavaScript cannot be run outside a browser")


@pytest.fixture(scope="module")
def digit():
    """A synthetic 28 x 28 'digit' in [0, 1] (a ring and a bar), so these tests need no MNIST."""
    r, c = np.mgrid[0:28, 0:28]
    ring = np.exp(-((np.hypot(r - 11, c - 14) - 6) ** 2) / 3)
    bar = np.exp(-((c - 19) ** 2) / 2) * (r > 10) * (r < 25)
    return np.clip(ring + bar, 0, 1)


def _is_fig(x):
    return isinstance(x, Figure)


# --------------------------------------------------------------------------- figures and messages
def test_param_counts():
    c = C.param_counts(28, 5)
    assert c == {"full": 576 * 784 + 576, "local": 576 * 25 + 576, "shared": 26}
    with pytest.raises(ValueError):
        C.param_counts(4, 5)


def test_figures_of_every_chapter(digit):
    x = np.array([[1.0, 3, 2, 0], [3, 0, 1, 1], [0, 2, 2, 2], [1, 0, 2, 1]])
    perm = np.random.default_rng(0).permutation(784)
    figs = [
        C.param_count_figure(5), C.connection_matrix_figure(np.ones((3, 3)), 6, 6),
        C.permutation_figure(digit[None, None].repeat(3, 0), perm, 3),
        C.accuracy_figure({"MLP": {"original": 0.95, "permuted": 0.95}, "CNN": {"original": 0.97, "permuted": 0.9}}),
        C.feature_map_figure(digit, "sobel_x", 0.5, "relu"), C.kernel_gallery_figure(digit),
        C.flip_figure(), C.correlation_vs_convolution_figure(digit, "numbered"),
        C.explorer_figure(digit, 8, 3, 2, 1, 1, step=3), C.explorer_figure(digit, 28, 5, 1, 0, 1),
        C.pool_figure(digit, 2, 2), C.pool_figure(digit, 3, 1), C.pool_grid_figure(digit, mode="avg"),
        C.grad_input_figure(3, 2, 3), C.maxpool_routing_figure(x, 2, 2),
    ]
    for f in figs:
        assert _is_fig(f), f
        assert f.get_facecolor()[:3] == (1.0, 1.0, 1.0)        # white background (dark mode)
        for ax in f.axes:
            if ax.get_title():
                assert ax.title.get_fontsize() >= 10


@pytest.mark.parametrize("call, words", [
    (lambda d: C.feature_map_figure(d, "nope"), "Unknown kernel"),
    (lambda d: C.feature_map_figure(d, "blur", activation="tanh"), "Unknown activation"),
    (lambda d: C.feature_map_figure(d, "blur", bias="x"), "bias must be a number"),
    (lambda d: C.feature_map_figure(d, "blur", bias=float("nan")), "finite"),
    (lambda d: C.kernel_gallery_figure(d, ("blur", "nope")), "Unknown kernel"),
    (lambda d: C.param_count_figure(0), "at least 1"),
    (lambda d: C.flip_figure(np.ones(3)), "2-D"),
    (lambda d: C.correlation_vs_convolution_figure(d, "nope"), "Unknown kernel"),
    (lambda d: C.explorer_figure(d, 4, 7, 1, 0), "does not fit"),
    (lambda d: C.explorer_figure(d, 5, 3, 0, 0), "at least 1"),
    (lambda d: C.explorer_figure(d, 5, 3, 1.5, 0), "whole number"),
    (lambda d: C.explorer_figure(d, 5, 3, 1, -1), "at least 0"),
    (lambda d: C.explorer_figure(d, 6, 3, 1, 0, 3), "dilation 3, span 7"),
    (lambda d: C.pool_figure(d, 30, 1), "window of size 30 does not fit"),
    (lambda d: C.pool_figure(d, 2, 0), "Stride must be at least 1"),
    (lambda d: C.pool_grid_figure(d, mode="median"), "Unknown pooling"),
    (lambda d: C.grad_input_figure(0, 1), "Kernel size must be at least 1"),
    (lambda d: C.grad_input_figure(3, 9), "Stride must be at most 4"),
    (lambda d: C.maxpool_routing_figure(np.ones(4)), "2-D"),
    (lambda d: C.scan_animation(np.ones((3, 3)), np.ones((4, 4))), "does not fit"),
    (lambda d: C.scan_animation(np.ones((3, 3)), np.ones((2, 2)), op="min"), "Unknown operation"),
])
def test_invalid_settings_give_a_message(digit, call, words):
    result = call(digit)
    assert isinstance(result, str), result
    assert words in result


def test_feature_map_is_the_library_convolution(digit):
    K = T.KERNELS["laplacian"]
    got = C.feature_map(digit, K, 0.25, "relu")
    assert_allclose(got, np.maximum(T.feature_map_naive(digit, K, 0.25), 0), atol=1e-12)


def test_scan_animation_frames():
    M = np.arange(25.0).reshape(5, 5) % 4
    anim = C.scan_animation(M, T.KERNELS["sobel_x"], 0.5, stride=2, padding=1)
    # one frame per output value: conv_output_size(5, 3, 2, 1) = 3 -> 9 frames
    assert len(list(anim.new_frame_seq())) == 9
    html = anim.to_jshtml()
    assert "<img" in html and "data:image/png;base64" in html
    pool = C.scan_animation(M[:4, :4], (2, 2), op="max", stride=2)
    assert len(list(pool.new_frame_seq())) == 4
    pool.to_jshtml()


def test_grad_input_figure_matches_library():
    # the numbers drawn are T.conv2d_grad_input's; the library computes the same gradient
    rng = np.random.default_rng(0)
    K = rng.integers(-2, 3, size=(3, 3)).astype(float)
    dF = rng.integers(-2, 3, size=(3, 3)).astype(float)
    n = (3 - 1) * 2 + 3
    ours = T.conv2d_grad_input(dF[None, None], K[None, None], (1, 1, n, n), 2)
    _, cache = F.conv2d_forward(np.zeros((1, 1, n, n)), K[None, None], None, 2)
    lib = F.conv2d_backward(dF[None, None], cache)[0]
    assert_allclose(ours, lib, atol=1e-12)


def test_widgets_build_and_survive_invalid_settings(digit):
    pytest.importorskip("ipywidgets")
    images = np.stack([digit, digit[::-1]])
    for w in (C.feature_map_widget(images), C.flip_widget(images), C.pooling_widget(images),
              C.backprop_widget(), C.explorer_widget(digit)):
        assert w.children
    ex = C.explorer_widget(digit)
    sliders = {s.description: s for box in ex.children[:2] for s in box.children}
    step = sliders["window"]
    assert step.max == step.value == 6 * 6 - 1          # the default setting: a 6x6 map
    sliders["n"].value = 10
    assert step.max == 8 * 8 - 1
    sliders["n"].value, sliders["k"].value = 4, 7       # impossible: shows a message, no exception
    assert step.max == 0
    pw = C.pooling_widget(images)
    pw.children[0].children[1].value = 8                 # window 8 on 28x28 is fine
    pw.children[0].children[2].value = 8


# --------------------------------------------------------------------------- the explorer's data
SMALL = {"n": (4, 9), "k": (1, 4), "s": (1, 3), "p": (0, 2), "d": (1, 2)}


def _combos(ranges):
    return product(*(range(lo, hi + 1) for lo, hi in (ranges[c] for c in "nkspd")))


def _decode_base(entry):
    codes = np.frombuffer(__import__("base64").b64decode(entry["data"]), dtype="<u2").astype(float)
    m = entry["size"]
    return (entry["lo"] + (entry["hi"] - entry["lo"]) * codes / 65535).reshape(m, m)


def _explorer_input(digit, n):
    """The digit as the explorer shows it at size n (explorer_state's ``input``; k=1 fits any n)."""
    return C.explorer_state(digit, n, 1, 1, 0)["input"]


def _expected_map(digit, n, k, s, p, d):
    x = _explorer_input(digit, n)
    kernel = T.dilate(T.edge_kernel(k), d)
    return F.conv2d(x[None, None], kernel[None, None], None, s, p)[0, 0]


@pytest.mark.parametrize("ranges", [SMALL, None], ids=["small", "book"])
def test_explorer_data_covers_every_combination(digit, ranges):
    data = C.explorer_data(digit, ranges)
    ranges = ranges or C.EXPLORER_RANGES
    expected_keys = {",".join(map(str, c)) for c in _combos(ranges)}
    assert set(data["combos"]) == expected_keys
    n_invalid = 0
    for (n, k, s, p, d) in _combos(ranges):
        entry = data["combos"][f"{n},{k},{s},{p},{d}"]
        try:
            n_out = F.conv_output_size(n, k, s, p, d)
        except ValueError as e:
            assert isinstance(entry, str) and str(e) in entry
            n_invalid += 1
            continue
        assert entry == [n_out, n_out * n_out * k * k]
    assert n_invalid > 0                                   # the ranges do include impossible settings
    for n in range(ranges["n"][0], ranges["n"][1] + 1):
        img = np.frombuffer(__import__("base64").b64decode(data["images"][str(n)]), np.uint8).reshape(n, n)
        assert_allclose(img / 255, _explorer_input(digit, n), atol=1e-12)


def test_explorer_feature_maps_are_exact_slices_of_the_base_maps(digit):
    """The rule the JavaScript applies: padding p crops the base map, stride s subsamples it."""
    data = C.explorer_data(digit, SMALL)
    P = data["pad_base"]
    checked = 0
    for (n, k, s, p, d) in _combos(SMALL):
        entry = data["combos"][f"{n},{k},{s},{p},{d}"]
        if isinstance(entry, str):
            continue
        n_out = entry[0]
        b = data["base"][f"{n},{k},{d}"]
        base = _decode_base(b)
        o = P - p
        got = base[o:o + s * (n_out - 1) + 1:s, o:o + s * (n_out - 1) + 1:s]
        want = _expected_map(digit, n, k, s, p, d)
        assert got.shape == want.shape == (n_out, n_out)
        assert_allclose(got, want, atol=(b["hi"] - b["lo"]) / 65535 + 1e-12)
        checked += 1
    assert checked == sum(isinstance(v, list) for v in data["combos"].values()) > 400


def test_explorer_state_matches_library(digit):
    st = C.explorer_state(digit, 12, 3, 2, 1, 2)
    assert st["valid"] and st["n_out"] == F.conv_output_size(12, 3, 2, 1, 2) == 5
    assert st["macs"] == 25 * 9 and st["span"] == 5 and not st["same"]
    assert_allclose(st["feature_map"], _expected_map(digit, 12, 3, 2, 1, 2))
    assert st["positions"][:3] == [(0, 0), (0, 2), (0, 4)] and len(st["positions"]) == 25
    same = C.explorer_state(digit, 10, 5, 1, 2)
    assert same["valid"] and same["same"] and same["n_out"] == 10


def test_explorer_html_is_self_contained_and_small(digit):
    page = C.explorer_html(digit)
    assert len(page.encode("utf-8")) < 1_500_000
    assert "http://" not in page and "https://" not in page and "require(" not in page
    assert page.count("</script>") == 3
    with pytest.raises(ValueError):
        C.explorer_html(digit, uid="bad id")
    with pytest.raises(ValueError, match="default"):
        C.explorer_data(digit, SMALL, defaults={"n": 4, "k": 4, "s": 1, "p": 0, "d": 2})


class _Collect(HTMLParser):
    """Elements (tag, attributes, text) of an HTML fragment, and the contents of its scripts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements, self.scripts, self._stack = [], [], []

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "attrs": {k: (v if v is not None else "") for k, v in attrs}, "text": ""}
        self.elements.append(el)
        if tag not in ("input", "br", "meta", "img"):
            self._stack.append(el)

    def handle_endtag(self, tag):
        while self._stack:
            el = self._stack.pop()
            if el["tag"] == tag:
                if tag == "script":
                    self.scripts.append((el["attrs"], el["text"]))
                break

    def handle_data(self, data):
        if self._stack:
            self._stack[-1]["text"] += data


def test_explorer_html_structure(digit):
    """The elements the JavaScript and the browser tests rely on are all there, once."""
    page = C.explorer_html(digit, uid="ex-7")
    parser = _Collect()
    parser.feed(page)
    els = parser.elements
    root = els[0]
    assert root["tag"] == "div" and root["attrs"]["class"] == "cnn-explorer" and root["attrs"]["id"] == "ex-7"
    params = [e["attrs"]["data-param"] for e in els if e["tag"] == "input" and "data-param" in e["attrs"]]
    assert params == list("nkspd")
    for e in els:
        if e["tag"] == "input" and "data-param" in e["attrs"]:
            lo, hi = C.EXPLORER_RANGES[e["attrs"]["data-param"]]
            assert (int(e["attrs"]["min"]), int(e["attrs"]["max"])) == (lo, hi)
            assert e["attrs"]["type"] == "range"
    classes = [c for e in els for c in e["attrs"].get("class", "").split()]
    for cls in ("cnn-explorer-out-size", "cnn-explorer-formula", "cnn-explorer-macs", "cnn-explorer-message",
                "cnn-explorer-same", "cnn-explorer-input", "cnn-explorer-output", "cnn-explorer-play",
                "cnn-explorer-position", "cnn-explorer-value"):
        assert cls in classes, cls
    data_scripts = [text for attrs, text in parser.scripts if attrs.get("type") == "application/json"]
    assert len(data_scripts) == 1 and json.loads(data_scripts[0])["version"] == 1


# --------------------------------------------------------------------------- the explorer's JavaScript under Node.js
def _node(script, tmp_path, *files):
    path = tmp_path / "harness.js"
    path.write_text(script, encoding="utf-8")
    proc = subprocess.run([NODE, str(path), *map(str, files)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"node failed:\nSTDOUT {proc.stdout[-3000:]}\nSTDERR {proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


_PURE_HARNESS = r"""
const fs = require("fs");
const api = require(process.argv[2]);
const data = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
const out = {};
const R = data.ranges;
for (let n = R.n[0]; n <= R.n[1]; n++)
 for (let k = R.k[0]; k <= R.k[1]; k++)
  for (let s = R.s[0]; s <= R.s[1]; s++)
   for (let p = R.p[0]; p <= R.p[1]; p++)
    for (let d = R.d[0]; d <= R.d[1]; d++) {
      const prm = {n, k, s, p, d};
      const st = api.lookup(data, prm);
      const key = api.key(prm);
      if (!st.valid) { out[key] = {message: st.message}; continue; }
      const m = api.outputMap(data, prm);
      const pos = api.positions(st.nOut, s);
      out[key] = {nOut: st.nOut, macs: st.macs, size: m.size, values: Array.from(m.values),
                  last: pos[pos.length - 1], count: pos.length, formula: api.formula(prm, st),
                  taps: api.taps(pos[1 % pos.length][0], pos[1 % pos.length][1], k, d).length};
    }
out["__image_8"] = Array.from(api.inputImage(data, 8));
fs.writeFileSync(process.argv[4], JSON.stringify(out));
console.log(JSON.stringify({ok: true}));
"""


@needs_node
def test_explorer_js_reproduces_sizes_and_feature_maps(digit, tmp_path):
    """Under Node.js, the page's functions give, for every combination of the controls, the
    output size of conv_output_size and the feature map of conv2d."""
    data = C.explorer_data(digit)
    (tmp_path / "explorer.js").write_text(C.explorer_js(), encoding="utf-8")
    (tmp_path / "data.json").write_text(json.dumps(data), encoding="utf-8")
    _node(_PURE_HARNESS, tmp_path, tmp_path / "explorer.js", tmp_path / "data.json", tmp_path / "out.json")
    out = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    valid = 0
    for (n, k, s, p, d) in _combos(C.EXPLORER_RANGES):
        got = out[f"{n},{k},{s},{p},{d}"]
        try:
            n_out = F.conv_output_size(n, k, s, p, d)
        except ValueError as e:
            assert str(e) in got["message"]
            continue
        want = _expected_map(digit, n, k, s, p, d)
        b = data["base"][f"{n},{k},{d}"]
        assert got["nOut"] == got["size"] == n_out and got["macs"] == n_out * n_out * k * k
        assert_allclose(np.array(got["values"]).reshape(n_out, n_out), want,
                        atol=(b["hi"] - b["lo"]) / 65535 + 1e-9)
        assert got["count"] == n_out * n_out and got["last"] == [(n_out - 1) * s] * 2
        assert got["formula"].endswith(f"= {n_out}") and got["taps"] == k * k
        valid += 1
    assert valid == sum(isinstance(v, list) for v in data["combos"].values())
    assert_allclose(np.array(out["__image_8"]).reshape(8, 8), _explorer_input(digit, 8), atol=1e-12)


_DOM_HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));

// A minimal DOM, built from the elements of the explorer's HTML.
function makeElement(s) {
  const attrs = Object.assign({}, s.attrs);
  const listeners = {};
  const classes = new Set((attrs["class"] || "").split(/\s+/).filter(Boolean));
  const el = {
    tagName: s.tag.toUpperCase(), tag: s.tag, attrs: attrs, textContent: s.text,
    hidden: "hidden" in attrs, value: attrs.value, max: attrs.max, disabled: false,
    width: attrs.width ? parseInt(attrs.width, 10) : 0,
    classList: {
      add: (c) => classes.add(c), remove: (c) => classes.delete(c), contains: (c) => classes.has(c)
    },
    getAttribute: (n) => (n === "class" ? Array.from(classes).join(" ") : (n in attrs ? attrs[n] : null)),
    setAttribute: (n, v) => { attrs[n] = String(v); },
    addEventListener: (t, f) => { (listeners[t] = listeners[t] || []).push(f); },
    dispatch: (t) => { (listeners[t] || []).forEach((f) => f({type: t, target: el})); },
    calls: 0,
    getContext: function () {
      const self = this;
      return new Proxy({}, {
        get: (obj, prop) => (prop in obj ? obj[prop] : (...args) => { self.calls += 1; }),
        set: (obj, prop, v) => { obj[prop] = v; return true; }
      });
    },
    _classes: classes
  };
  return el;
}
const elements = spec.elements.map(makeElement);
const root = elements[0];
const inside = elements.slice(1);

function matches(el, sel) {
  const m = sel.match(/^([a-z]*)((?:\.[\w-]+)*)(?:\[([\w-]+)(?:=([\w-]+))?\])?$/);
  if (!m) throw new Error("unsupported selector " + sel);
  const [, tag, cls, attr, val] = m;
  if (tag && el.tag !== tag) return false;
  for (const c of cls.split(".").filter(Boolean)) if (!el._classes.has(c)) return false;
  if (attr && !(attr in el.attrs)) return false;
  if (val !== undefined && el.attrs[attr] !== val) return false;
  return true;
}
root.querySelectorAll = (sel) => inside.filter((e) => matches(e, sel));
root.querySelector = (sel) => inside.find((e) => matches(e, sel)) || null;

const timers = [];
const context = {
  console: console, Buffer: Buffer,
  atob: (s) => Buffer.from(s, "base64").toString("binary"),
  setInterval: (f, ms) => { timers.push({f: f, ms: ms, live: true}); return timers.length - 1; },
  clearInterval: (id) => { if (timers[id]) timers[id].live = false; },
  document: {
    getElementById: (id) => {
      if (id === spec.uid) return root;
      if (id === spec.uid + "-data") return {textContent: spec.data};
      return null;
    }
  }
};
context.window = context;
context.globalThis = context;
vm.createContext(context);
for (const code of spec.scripts) vm.runInContext(code, context);   // the page's scripts, in order

const byParam = (name) => root.querySelector("input[data-param=" + name + "]");
const q = (sel) => root.querySelector(sel);
function snapshot() {
  return {
    ready: root.getAttribute("data-ready"), attrOutSize: root.getAttribute("data-out-size"),
    outSize: q(".cnn-explorer-out-size").textContent, macs: q(".cnn-explorer-macs").textContent,
    formula: q(".cnn-explorer-formula").textContent, message: q(".cnn-explorer-message").textContent,
    messageHidden: q(".cnn-explorer-message").hidden, invalid: root.classList.contains("cnn-explorer-invalid"),
    same: !q(".cnn-explorer-same").hidden, position: q(".cnn-explorer-position").textContent,
    value: q(".cnn-explorer-value").textContent, play: q(".cnn-explorer-play").textContent,
    labels: ["n", "k", "s", "p", "d"].map((p) => q("output[data-param=" + p + "]").textContent),
    stepMax: q("input[data-role=step]").max,
    liveTimers: timers.filter((t) => t.live).length,
    drawCalls: q("canvas.cnn-explorer-input").calls + q("canvas.cnn-explorer-output").calls
  };
}
const results = {initial: snapshot(), moves: []};
for (const [name, value] of spec.moves) {
  const input = byParam(name);
  input.value = String(value);
  input.dispatch("input");
  results.moves.push(snapshot());
}
// the animation: a live timer advances the window
const before = q(".cnn-explorer-position").textContent;
timers.filter((t) => t.live).forEach((t) => t.f());
results.afterTick = q(".cnn-explorer-position").textContent;
results.beforeTick = before;
// the window slider pauses and jumps
const step = q("input[data-role=step]");
step.value = "2";
step.dispatch("input");
results.afterStep = snapshot();
q(".cnn-explorer-play").dispatch("click");
results.afterPlay = snapshot();
console.log(JSON.stringify(results));
"""


@needs_node
def test_explorer_page_scripts_respond_to_the_controls(digit, tmp_path):
    """Runs the explorer's own <script>s (as extracted from its HTML) under Node.js, on a
    minimal DOM made of the HTML's elements, and drives the controls."""
    uid = "cnn-explorer-test"
    page = C.explorer_html(digit, uid=uid)
    parser = _Collect()
    parser.feed(page)
    data_text = next(text for attrs, text in parser.scripts if attrs.get("type") == "application/json")
    code = [text for attrs, text in parser.scripts if attrs.get("type") != "application/json"]
    moves = [("n", 28), ("k", 5), ("s", 2), ("n", 4), ("k", 7), ("n", 10), ("k", 5), ("p", 2), ("s", 1),
             ("d", 3)]
    spec = {"uid": uid, "elements": parser.elements, "data": data_text, "scripts": code, "moves": moves}
    (tmp_path / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    res = _node(_DOM_HARNESS, tmp_path, tmp_path / "spec.json")

    d0 = C.EXPLORER_DEFAULTS
    first = res["initial"]
    n_out0 = F.conv_output_size(d0["n"], d0["k"], d0["s"], d0["p"], d0["d"])
    assert first["ready"] == "1" and first["outSize"] == str(n_out0) == first["attrOutSize"]
    assert first["messageHidden"] and not first["invalid"] and first["drawCalls"] > 0
    assert first["labels"] == [str(d0[c]) for c in "nkspd"] and first["liveTimers"] == 1

    params = dict(d0)
    for (name, value), snap in zip(moves, res["moves"]):
        params[name] = value
        n, k, s, p, d = (params[c] for c in "nkspd")
        assert snap["labels"] == [str(params[c]) for c in "nkspd"]
        try:
            n_out = F.conv_output_size(n, k, s, p, d)
        except ValueError as e:
            assert snap["outSize"] == "—" and snap["attrOutSize"] == "" and snap["invalid"]
            assert not snap["messageHidden"] and str(e) in snap["message"]
            assert snap["liveTimers"] == 0
            continue
        assert snap["outSize"] == str(n_out) == snap["attrOutSize"], (params, snap)
        assert snap["macs"] == f"{n_out * n_out * k * k:,}"
        assert snap["messageHidden"] and not snap["invalid"] and snap["formula"].endswith(f"= {n_out}")
        assert snap["same"] == (n_out == n)
        assert snap["stepMax"] == str(n_out * n_out - 1) and snap["liveTimers"] == 1
    # the sequence visits several sizes, an impossible setting, and a 'same' one
    sizes = {s["outSize"] for s in res["moves"]}
    assert len(sizes) >= 4 and "—" in sizes and any(s["same"] for s in res["moves"])

    assert res["afterTick"] != res["beforeTick"]
    after = res["afterStep"]
    assert after["position"].startswith("window 3 of") and after["play"].endswith("Play")
    assert after["liveTimers"] == 0
    assert res["afterPlay"]["play"].endswith("Pause") and res["afterPlay"]["liveTimers"] == 1
