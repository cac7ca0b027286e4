"""Tests of cnn_lib.teaching.widgets.mlp, the explorers of part I: every plain function with valid
settings (what it draws, checked against the library) and with invalid ones (a Message,
never an exception), the offline HTML explorer, and the ipywidgets wiring."""

import base64
import functools
import io
import json
import re

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cnn_lib import functional as F  # noqa: E402
from cnn_lib.teaching import mlp  # noqa: E402
from cnn_lib.teaching.widgets import mlp as W  # noqa: E402
from cnn_lib.teaching.widgets.common import show_result  # noqa: E402


def _is_message(result, *fragments):
    assert isinstance(result, W.Message) and isinstance(result, str), f"expected a Message, got {result!r}"
    for fragment in fragments:
        assert fragment in result, f"{fragment!r} not in {result!r}"
    return True


def _white(fig):
    return tuple(fig.get_facecolor()[:3]) == (1.0, 1.0, 1.0)


# =========================================================================== chapter 1
def test_architecture_view_draws_the_network_with_its_parameter_count():
    fig = W.architecture_view("784-128-10")
    assert isinstance(fig, Figure) and _white(fig)
    ax = fig.axes[0]
    assert "101,770" in ax.get_title()
    assert len(ax.patches) == 7 + 7 + 7                              # max_shown - 1 circles and an ellipsis
    small = W.architecture_view("3-4-2")
    assert len(small.axes[0].patches) == 3 + 4 + 2


@pytest.mark.parametrize("spec, fragment", [
    ("784-abc-10", "'abc'"),
    ("784", "at least an input size"),
    ("", "at least an input size"),
    ("784-0-10", "at least 1"),
    ("-".join(["5"] * 9), "at most 8 layers"),
    (None, "layer sizes"),
])
def test_architecture_view_explains_invalid_sizes(spec, fragment):
    assert _is_message(W.architecture_view(spec), fragment)
    assert _is_message(W.param_table_html(spec), fragment)


def test_architecture_view_rejects_a_bad_max_shown():
    assert _is_message(W.architecture_view("3-4-2", max_shown=1), "between 2 and 20")


def test_param_table_html_lists_every_layer_and_the_total():
    table = W.param_table_html("784-256-128-10")
    assert not isinstance(table, W.Message)
    assert table.count("<tr>") == 1 + 3 + 1                          # header, layers, total
    assert f"{mlp.num_params('784-256-128-10'):,}" in table
    assert "784 &times; 256 = 200,704" in table


def test_approximation_view_matches_fit_hinges():
    for K in (1, 5, 30):
        fig = W.approximation_view(K)
        assert isinstance(fig, Figure) and _white(fig)
        ax, ax_terms = fig.axes
        target, network = ax.get_lines()[:2]
        x = np.linspace(*W.APPROX_RANGE, 801)
        np.testing.assert_allclose(target.get_ydata(), mlp.wavy(x))
        expected = mlp.fit_hinges(x, mlp.wavy(x), K).forward(x[:, None])[:, 0]
        np.testing.assert_allclose(network.get_ydata(), expected)
        err = np.max(np.abs(expected - mlp.wavy(x)))
        assert f"{err:.3f}" in ax.get_title()
        # the pieces add up to the output
        pieces = sum(line.get_ydata() for line in ax_terms.get_lines()[:-1]) if K <= 12 else None
        if pieces is not None:
            bias = ax_terms.get_lines()[-1].get_ydata()[0]
            np.testing.assert_allclose(pieces + bias, expected, atol=1e-9)


@pytest.mark.parametrize("K, fragment", [(0, "between 1 and 64"), (65, "between 1 and 64"),
                                         (2.5, "whole number"), ("many", "whole number"), (None, "whole number")])
def test_approximation_view_explains_invalid_widths(K, fragment):
    assert _is_message(W.approximation_view(K), fragment)


# =========================================================================== chapter 2
def test_descent_view_draws_the_run():
    fig = W.descent_view(0.1, 2.8, -2.9, 40)
    assert isinstance(fig, Figure) and _white(fig)
    run = mlp.gradient_descent(mlp.landscape_gradient, [2.8, -2.9], 0.1, 40, cost=mlp.landscape_cost)
    ax_cost = fig.axes[1]                                           # [0]: contours, [2]: colour bar
    np.testing.assert_allclose(ax_cost.get_lines()[0].get_ydata(), np.maximum(run["costs"], 1e-16))
    assert "local minimum" in ax_cost.get_title()
    path_line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(path_line.get_xydata(), run["path"])


def test_descent_view_shows_divergence_and_zero_steps():
    fig = W.descent_view(4.0, 2.8, -2.9, 100)
    assert "diverged" in fig.axes[1].get_title()
    with np.errstate(all="raise"):                                    # no overflow, however large the rate
        fig = W.descent_view(1e300, 1.0, 1.0, 10)
    assert "after 1 step" in fig.axes[1].get_title().replace("\n", " ")
    fig = W.descent_view(0.1, 1.0, 1.0, 0)
    assert isinstance(fig, Figure)


@pytest.mark.parametrize("args, fragment", [
    ((0.0, 1, 1, 10), "positive"),
    ((-0.1, 1, 1, 10), "positive"),
    ((float("nan"), 1, 1, 10), "finite"),
    (("fast", 1, 1, 10), "must be a number"),
    ((0.1, 1, 1, -1), "between 0 and 500"),
    ((0.1, 1, 1, 501), "between 0 and 500"),
    ((0.1, 1, 1, 2.5), "whole number"),
    ((0.1, 4.0, 1, 10), "drawn square"),
    ((0.1, 1, -9, 10), "drawn square"),
    ((0.1, None, 1, 10), "must be a number"),
])
def test_descent_view_explains_invalid_settings(args, fragment):
    assert _is_message(W.descent_view(*args), fragment)


def test_descent_status_names_each_ending():
    gd = mlp.gradient_descent
    g = mlp.landscape_gradient
    assert "global minimum" in W.descent_status(gd(g, [0.5, 0.4], 0.1, 300))
    assert "local minimum" in W.descent_status(gd(g, [2.8, -2.9], 0.1, 300))
    assert "diverged" in W.descent_status(gd(g, [2.8, -2.9], 4.0, 300))
    assert "still moving" in W.descent_status(gd(g, [2.8, -2.9], 0.001, 5))


def _explorer_data(page):
    match = re.search(r"var data = (\{.*?\});\n", page)
    assert match, "no embedded data"
    return json.loads(match.group(1))


def _explorer_png(page):
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return plt.imread(io.BytesIO(base64.b64decode(match.group(1))), format="png")


def test_descent_explorer_html_is_self_contained_and_deterministic():
    page = W.descent_explorer_html(steps=20)
    assert page == W.descent_explorer_html(steps=20)
    assert "<script>" in page and "<canvas" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "the explorer must not load anything"
    assert "require(" not in page and "import " not in page


def test_descent_explorer_html_embeds_the_library_runs():
    lrs, starts = (0.05, 4.0), ((2.8, -2.9), (-3.0, 2.6))
    data = _explorer_data(W.descent_explorer_html(lrs, starts, steps=30))
    assert data["lrs"] == list(lrs) and data["steps"] == 30
    for i, lr in enumerate(lrs):
        for j, s in enumerate(starts):
            run = mlp.gradient_descent(mlp.landscape_gradient, s, lr, 30, cost=mlp.landscape_cost, max_norm=100)
            embedded = data["runs"][i][j]
            np.testing.assert_allclose(embedded["w"], run["path"], atol=1e-4)
            np.testing.assert_allclose(embedded["cost"], run["costs"], rtol=1e-3)
            assert len(embedded["px"]) == len(run["path"])
            assert ("diverged" in embedded["status"]) == run["diverged"]
    assert "diverged" in data["runs"][1][0]["status"]


def test_descent_explorer_pixels_land_on_the_right_places_of_the_picture():
    page = W.descent_explorer_html(lrs=(0.1,), starts=((0.0, 0.0), (3.4, 3.4)), steps=1)
    data, image = _explorer_data(page), _explorer_png(page)
    height, width = image.shape[:2]
    assert f'width="{width}" height="{height}"' in page
    x0, y0, w, h = data["clip"]
    assert 0 <= x0 and x0 + w <= width and 0 <= y0 and y0 + h <= height
    viridis = matplotlib.colormaps["viridis"]
    dark, bright = np.array(viridis(0.0)[:3]), np.array(viridis(1.0)[:3])
    for j, (near, far) in ((0, (dark, bright)), (1, (bright, dark))):  # the global minimum has the darkest
        px, py = data["runs"][0][j]["px"][0]                          # colour, the far corner a bright one
        assert x0 <= px <= x0 + w and y0 <= py <= y0 + h
        patch = image[int(py) - 2:int(py) + 3, int(px) - 2:int(px) + 3, :3].reshape(-1, 3)
        distance = np.abs(patch - near).sum(axis=1)
        assert np.median(distance) < 0.25 < np.median(np.abs(patch - far).sum(axis=1))


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(lrs=()), "learning rate"),
    (dict(lrs=(0.1, -1)), "learning rate"),
    (dict(starts=((9, 0),)), "inside the square"),
    (dict(starts=()), "inside the square"),
    (dict(steps=0), "between 1 and 500"),
])
def test_descent_explorer_html_explains_invalid_settings(kwargs, fragment):
    assert _is_message(W.descent_explorer_html(**kwargs), fragment)


# =========================================================================== chapter 3
def test_activation_view_draws_functions_and_backward_derivatives():
    fig = W.activation_view(("sigmoid", "relu"), -3, 4)
    assert isinstance(fig, Figure) and _white(fig)
    ax_f, ax_d = fig.axes
    lines_f = [ln for ln in ax_f.get_lines() if ln.get_label()[0] != "_"]
    lines_d = [ln for ln in ax_d.get_lines() if ln.get_label()[0] != "_"]
    assert len(lines_f) == len(lines_d) == 2
    x = lines_f[0].get_xdata()
    assert x[0] == -3 and x[-1] == 4
    np.testing.assert_allclose(lines_f[0].get_ydata(), F.sigmoid(x))
    s = F.sigmoid(x)
    np.testing.assert_allclose(lines_d[0].get_ydata(), s * (1 - s))
    np.testing.assert_allclose(lines_d[1].get_ydata(), (x > 0).astype(float))
    assert isinstance(W.activation_view("arctan"), Figure)


@pytest.mark.parametrize("args, fragment", [
    (((), -1, 1), "at least one"),
    ((("tanh",), -1, 1), "'tanh'"),
    ((("relu",), 2, 2), "range is empty"),
    ((("relu",), 3, -3), "range is empty"),
    ((("relu",), float("nan"), 1), "finite"),
    ((("relu",), -1e6, 1e6), "too wide"),
    ((("relu",), "a", 1), "must be a number"),
])
def test_activation_view_explains_invalid_settings(args, fragment):
    assert _is_message(W.activation_view(*args), fragment)


# =========================================================================== chapter 4
def test_softmax_numbers_match_the_equations():
    out = W.softmax_numbers("2, 1, 0.1", 1.0, 0)
    z = np.array([2, 1, 0.1])
    np.testing.assert_allclose(out["p"], np.exp(z) / np.exp(z).sum())
    assert out["p"].sum() == pytest.approx(1.0)
    assert out["loss"] == pytest.approx(-np.log(out["p"][0]))
    hot = W.softmax_numbers([2, 1, 0.1], 0.05, 1)
    cold = W.softmax_numbers("2 1 0.1", 100.0, 1)
    assert hot["p"][0] > 0.999 and np.ptp(cold["p"]) < 0.01         # low T: one-hot; high T: uniform
    assert str(W.softmax_numbers("5, -5", 0.01, 0)["loss"]) == "0.0"            # not -0.0
    big = W.softmax_numbers("1000, 999, 998", 1.0, 2)
    assert np.all(np.isfinite(big["p"])) and big["loss"] == pytest.approx(2 + np.log1p(np.exp(-1) + np.exp(-2)))


@pytest.mark.parametrize("args, fragment", [
    (("2, x, 1", 1, 0), "'x' is not a number"),
    (("2", 1, 0), "at least two"),
    (("", 1, 0), "at least two"),
    ((", ".join(["1"] * 21), 1, 0), "at most 20"),
    (("2, inf", 1, 0), "finite"),
    (("2, 1", 0, 0), "positive"),
    (("2, 1", -1, 0), "positive"),
    (("2, 1", "hot", 0), "must be a number"),
    (("2, 1", 1, 2), "between 0 and 1"),
    (("2, 1", 1, -1), "between 0 and 1"),
    (("2, 1", 1, 0.5), "whole number"),
    (("1e300, -1e300", 1e-3, 0), "too large"),
    ((None, 1, 0), "logits"),
])
def test_softmax_explains_invalid_settings(args, fragment):
    assert _is_message(W.softmax_numbers(*args), fragment)
    assert _is_message(W.softmax_view(*args), fragment)


def test_softmax_view_draws_bars_and_the_loss():
    fig = W.softmax_view("3, 1, -2, 0.5", 2.0, 3)
    assert isinstance(fig, Figure) and _white(fig)
    ax_z, ax_p = fig.axes[:2]
    np.testing.assert_allclose([b.get_height() for b in ax_z.patches], [1.5, 0.5, -1.0, 0.25])
    out = W.softmax_numbers("3, 1, -2, 0.5", 2.0, 3)
    np.testing.assert_allclose([b.get_height() for b in ax_p.patches[:4]], out["p"])
    assert f"{out['loss']:.3f}" in ax_p.get_title()


# =========================================================================== chapter 5
@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    model = mlp.build_mlp("16-6-4-3", rng=0, flatten=True)
    images = rng.standard_normal((5, 1, 4, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1])
    return model, images, labels


def test_prediction_view_shows_image_hidden_layers_and_probabilities(tiny):
    model, images, labels = tiny
    fig = W.prediction_view(model, images, labels, 2)
    assert isinstance(fig, Figure) and _white(fig)
    ax_img, ax_h1, ax_h2 = fig.axes[:3]
    np.testing.assert_array_equal(ax_img.get_images()[0].get_array(), images[2, 0])
    assert ax_h1.get_images()[0].get_array().size == 6 and ax_h2.get_images()[0].get_array().size == 4
    ax_p = [ax for ax in fig.axes if ax.get_xlabel() == "class"][0]
    p = F.softmax(model.forward(images[2:3], train=False).astype(np.float64))[0]
    np.testing.assert_allclose([b.get_height() for b in ax_p.patches[:3]], p, rtol=1e-6)
    assert f"prediction {int(np.argmax(p))}" in ax_p.get_title()


@pytest.mark.parametrize("index, fragment", [(5, "between 0 and 4"), (-1, "between 0 and 4"), (1.5, "whole number")])
def test_prediction_view_explains_invalid_indices(tiny, index, fragment):
    assert _is_message(W.prediction_view(*tiny, index), fragment)


# =========================================================================== ipywidgets wrappers
@pytest.fixture
def shown(monkeypatch):
    """Records what the explorers would display (no kernel needed)."""
    pytest.importorskip("ipywidgets")
    seen = []

    def record(result, html_strings=False):
        assert html_strings, "the explorers show HTML strings (the parameter table) as HTML"
        seen.append(result)

    # the explorers display each result with common.show_result, as imported by the module
    monkeypatch.setattr(W, "show_result", record)
    return seen


def _controls(box):
    import ipywidgets as widgets

    return [c for c in box.children[-2].children if isinstance(c, widgets.ValueWidget)]


@pytest.mark.parametrize("make, bad", [
    (W.architecture_explorer, {"layer sizes": "784-abc"}),
    (W.approximation_explorer, {}),
    (W.descent_explorer, {"learning rate": 4.9}),
    (W.activation_explorer, {"functions": ()}),
    (W.softmax_explorer, {"logits": "1, two"}),
])
def test_explorers_show_a_result_then_a_message_for_a_bad_setting(shown, make, bad):
    box = make()
    assert shown and not any(isinstance(r, W.Message) for r in shown)     # the first, valid view
    for c in _controls(box):
        if c.description in bad:
            c.value = bad[c.description]
    if bad:
        assert any(isinstance(r, (W.Message, Figure)) for r in shown[1:])
    for r in shown:
        if isinstance(r, Figure):
            plt.close(r)


def test_explorer_messages_for_invalid_settings(shown):
    box = W.architecture_explorer()
    _controls(box)[0].value = "784-abc-10"
    assert _is_message(shown[-1], "'abc'")
    box = W.activation_explorer()
    _controls(box)[0].value = ()
    assert _is_message(shown[-1], "at least one")
    box = W.softmax_explorer()
    [c for c in _controls(box) if c.description == "true class"][0].value = 7
    assert _is_message(shown[-1], "between 0 and 2")


def test_prediction_explorer_slides_through_images(shown, tiny):
    box = W.prediction_explorer(*tiny)
    slider = _controls(box)[0]
    assert slider.max == 4
    slider.value = 3
    assert isinstance(shown[-1], Figure) and "test image 3" in shown[-1].axes[0].get_title()


def test_show_displays_messages_as_escaped_html_and_closes_figures(monkeypatch):
    display = pytest.importorskip("IPython.display")
    seen = []
    monkeypatch.setattr(display, "display", lambda obj: seen.append(obj))
    show = functools.partial(show_result, html_strings=True)       # how the explorers call it
    show(W.Message("bad <value>"))
    show("<b>table</b>")
    fig = W.architecture_view("3-2")
    show(fig)
    assert isinstance(seen[0], display.HTML) and "bad &lt;value&gt;" in seen[0].data and "<value>" not in seen[0].data
    assert isinstance(seen[1], display.HTML) and seen[1].data == "<b>table</b>"
    assert seen[2] is fig and not plt.fignum_exists(fig.number)      # shown once, then closed
