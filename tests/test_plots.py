"""Tests of cnn_lib.teaching.plots (drawn with the non-interactive Agg backend)."""

import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cnn_lib.teaching import plots  # noqa: E402


@pytest.fixture
def digits():
    rng = np.random.default_rng(0)
    images = rng.random((12, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, size=12)
    return images, labels


def _shown(axes):
    """Axes of a grid that display an image."""
    return [ax for ax in np.ravel(axes) if ax.get_images()]


def test_importing_the_library_or_plots_does_not_import_matplotlib():
    code = (
        "import sys, cnn_lib, cnn_lib.teaching.plots; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plot_digits_grid_shape_and_titles(digits):
    images, labels = digits
    axes = plots.plot_digits(images, labels, ncols=5)
    assert axes.shape == (3, 5)
    shown = _shown(axes)
    assert len(shown) == 12
    assert [ax.get_title() for ax in shown] == [str(y) for y in labels]
    hidden = [ax for ax in axes.ravel() if not ax.axison]
    assert len(hidden) == 3
    assert shown[0].figure.get_facecolor()[:3] == (1.0, 1.0, 1.0)


def test_plot_digits_accepts_nhw_and_fewer_images_than_columns(digits):
    images, labels = digits
    axes = plots.plot_digits(images[:3, 0], labels[:3])  # (3, 28, 28), ncols=10
    assert axes.shape == (1, 3)
    assert len(_shown(axes)) == 3
    np.testing.assert_array_equal(_shown(axes)[1].get_images()[0].get_array(), images[1, 0])


def test_plot_digits_marks_wrong_predictions_in_red(digits):
    images, labels = digits
    predictions = labels.copy()
    predictions[[2, 7]] = (labels[[2, 7]] + 1) % 10
    shown = _shown(plots.plot_digits(images, labels, predictions=predictions))
    red = matplotlib.colors.to_rgba(plots.WRONG_COLOR)
    is_red = [matplotlib.colors.to_rgba(ax.title.get_color()) == red for ax in shown]
    assert [i for i, r in enumerate(is_red) if r] == [2, 7]
    assert shown[2].get_title() == f"true {labels[2]}\npred {predictions[2]}"


def test_plot_digits_draws_into_given_axes(digits):
    images, labels = digits
    fig, axes = plt.subplots(2, 8)
    returned = plots.plot_digits(images, labels, axes=axes)
    assert returned is axes or np.all(returned == axes)
    assert len(_shown(axes)) == 12
    assert len(fig.axes) == 16


@pytest.mark.parametrize(
    "shape", [(28, 28), (4, 3, 28, 28), (4, 1, 28, 28, 1), (4,)]
)
def test_plot_digits_rejects_bad_image_shapes(shape):
    with pytest.raises(ValueError, match=r"shape \(N, 1, H, W\) or \(N, H, W\)"):
        plots.plot_digits(np.zeros(shape), np.zeros(4, dtype=int))


def test_plot_digits_rejects_mismatched_labels_and_axes(digits):
    images, labels = digits
    with pytest.raises(ValueError, match="11 entries but there are 12 images"):
        plots.plot_digits(images, labels[:11])
    with pytest.raises(ValueError, match="predictions"):
        plots.plot_digits(images, labels, predictions=labels[:, None])
    with pytest.raises(ValueError, match="got 4 axes for 12 images"):
        plots.plot_digits(images, labels, axes=plt.subplots(2, 2)[1])
    with pytest.raises(ValueError, match="at least one image"):
        plots.plot_digits(images[:0], labels[:0])
    with pytest.raises(ValueError, match="integers"):
        plots.plot_digits(images, labels.astype(float))


def test_plot_class_counts_has_one_bar_per_class():
    labels = np.array([0, 1, 1, 3, 3, 3, 9])
    ax = plots.plot_class_counts(labels)
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [1, 2, 0, 3, 0, 0, 0, 0, 0, 1]
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_plot_class_counts_uses_given_ax_and_num_classes():
    fig, ax = plt.subplots()
    assert plots.plot_class_counts(np.array([0, 2]), ax, num_classes=3) is ax
    assert len(ax.patches) == 3


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.zeros((3, 2), dtype=int), "1-D"),
        (np.array([0.0, 1.0]), "integers"),
        (np.array([0, 10]), r"0\.\.9"),
        (np.array([-1, 2]), r"0\.\.9"),
    ],
)
def test_plot_class_counts_rejects_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        plots.plot_class_counts(labels)


def _history_lines(ax):
    return [line for a in ax.figure.axes for line in a.get_lines()]


def test_plot_history_lines():
    history = {"loss": [0.9, 0.4, 0.3], "accuracy": [0.7, 0.88, 0.9]}
    ax = plots.plot_history(history)
    assert len(ax.figure.axes) == 2  # loss axes + twin accuracy axes
    lines = _history_lines(ax)
    assert [line.get_label() for line in lines] == ["training loss", "training accuracy"]
    np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines[0].get_ydata(), history["loss"])
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "loss"

    history["val_accuracy"] = [0.8, 0.85, 0.87]
    fig, ax2 = plt.subplots()
    assert plots.plot_history(history, ax2) is ax2
    assert len(_history_lines(ax2)) == 3
    assert len(ax2.get_legend().get_texts()) == 3


@pytest.mark.parametrize(
    "history, match",
    [
        ({"loss": [1.0]}, "lacks"),
        ({"accuracy": [1.0]}, "lacks"),
        ({"loss": [], "accuracy": []}, "non-empty"),
        ({"loss": [1.0, 0.5], "accuracy": [0.5]}, "same length"),
        ({"loss": [1.0], "accuracy": [0.5], "val_accuracy": [0.1, 0.2]}, "same length"),
    ],
)
def test_plot_history_rejects_bad_history(history, match):
    with pytest.raises(ValueError, match=match):
        plots.plot_history(history)


# --------------------------------------------------------------------------- part I helpers
def test_new_figure_is_white_and_squeezed():
    fig, ax = plots.new_figure()
    assert isinstance(ax, matplotlib.axes.Axes) and fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    fig, axes = plots.new_figure(1, 3, figsize=(6, 2), width_ratios=(1, 2, 1))
    assert axes.shape == (3,)


def test_palette_is_distinct_valid_colours():
    rgb = [matplotlib.colors.to_rgb(c) for c in plots.PALETTE]
    assert len(set(rgb)) == len(rgb) == 8


@pytest.mark.parametrize("sizes, circles", [((3, 4, 2), 9), ((784, 128, 10), 7 + 7 + 7), ((2, 9), 2 + 7)])
def test_plot_mlp_draws_neurons_sizes_and_count(sizes, circles):
    ax = plots.plot_mlp(sizes)
    assert len(ax.patches) == circles
    texts = [t.get_text() for t in ax.texts]
    assert any(f"{sizes[0]:,}" in t and "input" in t for t in texts)
    assert any(f"{sizes[-1]:,}" in t and "output" in t for t in texts)
    total = sum((d + 1) * m for d, m in zip(sizes[:-1], sizes[1:]))
    assert f"{total:,} parameters" in ax.get_title()
    assert (sum("\u22ee" in t for t in texts) > 0) == (max(sizes) > 8)
    # every drawn neuron is linked to every drawn neuron of the next layer
    shown = [min(s, 7) if s > 8 else s for s in sizes]
    segments = ax.collections[0].get_segments()
    assert len(segments) == sum(a * b for a, b in zip(shown[:-1], shown[1:]))


def test_plot_mlp_names_and_errors():
    fig, ax = plt.subplots()
    assert plots.plot_mlp((2, 2), ax, layer_names=["pixels", "classes"], title="t") is ax
    assert ax.get_title() == "t" and any("pixels" in t.get_text() for t in ax.texts)
    with pytest.raises(ValueError, match="at least two layers"):
        plots.plot_mlp((5,))
    with pytest.raises(ValueError, match="at least two layers"):
        plots.plot_mlp((5, 0))
    with pytest.raises(ValueError, match="max_shown"):
        plots.plot_mlp((5, 3), max_shown=1)
    with pytest.raises(ValueError, match="names"):
        plots.plot_mlp((5, 3), layer_names=["a"])


def test_plot_cost_surface_and_path():
    x, y = np.linspace(-1, 1, 21), np.linspace(-2, 2, 31)
    X, Y = np.meshgrid(x, y)
    cost = X ** 2 + Y ** 2
    ax = plots.plot_cost_surface(x, y, cost, title="bowl")
    assert ax.get_title() == "bowl" and ax.get_xlabel() == "$w_1$"
    assert len(ax.figure.axes) == 2                                   # with its colour bar
    assert ax.figure.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    limits = (ax.get_xlim(), ax.get_ylim())
    path = np.array([[0.5, 1.5], [0.2, 0.5], [40.0, -80.0]])          # the last point far outside
    plots.plot_path(path, ax, label="run")
    assert (ax.get_xlim(), ax.get_ylim()) == limits
    np.testing.assert_array_equal(ax.get_lines()[0].get_xydata(), path)
    with pytest.raises(ValueError, match="shape"):
        plots.plot_cost_surface(x, y, cost.T)
    with pytest.raises(ValueError, match="non-negative"):
        plots.plot_cost_surface(x, y, cost - 1)
    with pytest.raises(ValueError, match=r"\(T \+ 1, 2\)"):
        plots.plot_path(np.zeros((3, 3)), ax)


def test_plot_probabilities_highlights_the_true_class():
    p = np.array([0.1, 0.6, 0.3])
    ax = plots.plot_probabilities(p, label=2)
    bars = ax.patches[:3]
    np.testing.assert_allclose([b.get_height() for b in bars], p)
    colours = [matplotlib.colors.to_hex(b.get_facecolor()) for b in bars]
    assert colours[2] != colours[0] == colours[1]
    assert ax.get_ylabel() == "probability"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2\n(true)"]
    assert [t.get_text() for t in plots.plot_probabilities(p).get_xticklabels()] == ["0", "1", "2"]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plots.plot_probabilities(np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="label"):
        plots.plot_probabilities(p, label=3)
    with pytest.raises(ValueError, match="1-D"):
        plots.plot_probabilities(p[None])
    with pytest.raises(ValueError, match="class names"):
        plots.plot_probabilities(p, class_names=["a"])
