"""Tests of cnn_lib.plots (drawn with the non-interactive Agg backend)."""

import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cnn_lib import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


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
        "import sys, cnn_lib, cnn_lib.plots; "
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
