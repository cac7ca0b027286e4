"""Tests of the generalization chapter's helpers: cnn_lib.teaching.generalization (learning
curves evaluated after every epoch, parameter norms) and its explorer
cnn_lib.teaching.widgets.generalization (a figure per run, an offline HTML slider)."""

import base64
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from cnn_lib import Adam, Dense, Dropout, ReLU, Sequential, evaluate, fit  # noqa: E402
from cnn_lib.teaching import generalization as G  # noqa: E402
from cnn_lib.teaching.widgets import generalization as W  # noqa: E402


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y


def _model(p=0.0):
    layers = [Dense(6, 16, rng=0), ReLU()] + ([Dropout(p, rng=3)] if p else []) + [Dense(16, 2, rng=1)]
    return Sequential(*layers)


# --------------------------------------------------------------------------- learning_curves
@pytest.mark.parametrize("p", [0.0, 0.5])
def test_learning_curves_evaluate_both_sets_after_every_epoch(p):
    x, y = _data(64, 0)
    xv, yv = _data(40, 1)
    model = _model(p)
    curves = G.learning_curves(model, x, y, xv, yv, optimizer=Adam(model.params(), lr=1e-2), epochs=3,
                               batch_size=16, seed=5)
    assert set(curves) == set(W.CURVE_KEYS)
    assert all(len(v) == 4 for v in curves.values())
    # the last entries are evaluate() of the final weights, in evaluation mode
    assert curves["train_loss"][-1] == pytest.approx(evaluate(model, x, y)[0])
    assert curves["val_accuracy"][-1] == pytest.approx(evaluate(model, xv, yv)[1])
    # entry 0 is the untrained model; the same steps as fit() epoch by epoch, seeds seed + e
    fresh = _model(p)
    assert curves["val_loss"][0] == pytest.approx(evaluate(fresh, xv, yv)[0])
    opt = Adam(fresh.params(), lr=1e-2)
    for e in range(3):
        fit(fresh, x, y, epochs=1, batch_size=16, optimizer=opt, seed=5 + e, progress=False)
    for k, v in model.params().items():
        assert_array_equal(v, fresh.params()[k])
    assert curves["train_loss"][-1] < curves["train_loss"][0]


def test_learning_curves_rejects_bad_epochs():
    x, y = _data(8, 0)
    model = _model()
    with pytest.raises(ValueError, match="epochs"):
        G.learning_curves(model, x, y, x, y, optimizer=Adam(model.params()), epochs=0)


def test_parameter_norm():
    model = _model()
    params = model.params()
    everything = np.sqrt(sum(np.sum(p.astype(np.float64) ** 2) for p in params.values()))
    weights = np.sqrt(sum(np.sum(p.astype(np.float64) ** 2) for k, p in params.items() if k.endswith(".w")))
    assert G.parameter_norm(model) == pytest.approx(everything)
    assert G.parameter_norm(model, ".w") == pytest.approx(weights)
    params["dense1.b"][:] = 1.0                       # 16 biases of 1 add 16 to the sum of squares
    assert G.parameter_norm(model) == pytest.approx(np.sqrt(everything ** 2 + 16))
    with pytest.raises(ValueError, match="no parameter"):
        G.parameter_norm(model, ".gamma")


# --------------------------------------------------------------------------- the explorer
def _curves(n=6, shift=0.0):
    e = np.arange(n, dtype=float)
    return {"train_loss": 1 / (1 + e), "val_loss": 1 / (1 + e) + 0.1 * e / n + shift,
            "train_accuracy": 1 - 0.5 / (1 + e), "val_accuracy": 0.9 - 0.4 / (1 + e)}


def test_curves_view_draws_four_curves_and_the_final_gap():
    fig = W.curves_view(_curves(), title="λ = 0")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax_loss, ax_acc = fig.axes
    assert len(ax_loss.get_lines()) == 3 and len(ax_acc.get_lines()) == 2     # + the marker of the best epoch
    c = _curves()
    assert_allclose(ax_acc.get_lines()[1].get_ydata(), c["val_accuracy"])
    gap = c["train_accuracy"][-1] - c["val_accuracy"][-1]
    assert f"gap {gap:.1%}" in ax_acc.get_title()
    best = int(np.argmin(c["val_loss"]))
    assert f"epoch {best}" in ax_loss.texts[0].get_text()
    fig = W.curves_view(_curves(), loss_max=3.0, accuracy_min=0.2)
    assert fig.axes[0].get_ylim() == (0.0, 3.0) and fig.axes[1].get_ylim()[0] == 0.2


@pytest.mark.parametrize("curves, fragment", [
    ({"train_loss": [1.0]}, "dict with the arrays"),
    ({**_curves(), "val_loss": np.ones(3)}, "same length"),
    ({**_curves(), "val_loss": np.full(6, np.nan)}, "not finite"),
    ("curves", "dict with the arrays"),
])
def test_curves_view_invalid_input_is_a_message(curves, fragment):
    result = W.curves_view(curves)
    assert isinstance(result, W.Message) and fragment in result


def test_curves_slider_html_embeds_one_picture_per_run():
    runs = [(0.0, _curves()), (0.01, _curves(shift=0.5)), (0.1, _curves(shift=1.0))]
    page = W.curves_slider_html(runs, knob="λ")
    assert not isinstance(page, W.Message)
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(pngs) == 3 and len(set(pngs)) == 3
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert 'type="range" min="0" max="2"' in page
    assert "λ = 0.01" in page and "<script>" in page and "://" not in page    # nothing fetched
    ids = re.findall(r'id="(cnnlib-curves-[0-9a-f]+)"', page)
    assert len(ids) == 1 and f'getElementById("{ids[0]}")' in page
    assert W.curves_slider_html(runs, knob="λ") == page                         # deterministic


@pytest.mark.parametrize("runs, kwargs, fragment", [
    ([], {}, "at least one run"),
    ([(0.0,)], {}, "pair"),
    ([("big", _curves())], {}, "must be a number"),
    ([(float("inf"), _curves())], {}, "finite"),
    ([(0.0, {"train_loss": [1.0]})], {}, "dict with the arrays"),
    ([(0.0, _curves())], {"dpi": 5}, "dpi"),
])
def test_curves_slider_html_invalid_input_is_a_message(runs, kwargs, fragment):
    result = W.curves_slider_html(runs, **kwargs)
    assert isinstance(result, W.Message) and fragment in result
