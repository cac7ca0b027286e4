"""The initialization chapter's experiments: the variance rule's prediction and the measured profiles."""

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from cnn_lib.teaching import init_demos  # noqa: E402


def test_predicted_profile_by_hand():
    # 2 hidden layers of 100, N(0, 0.1^2): Var(z1) = 100 * 0.01 * 4 = 4 (input rms 2); then x 100 * 0.01 / 2
    stds = init_demos.predicted_profile(2, 100, 100, "normal", input_rms=2.0, classes=10, std=0.1)
    assert np.allclose(stds, [2.0, 2.0 * math.sqrt(0.5), 2.0 * 0.5])


def test_he_profile_is_flat_and_matches_the_measurement():
    model = init_demos.deep_mlp(6, 512, in_features=512, scheme="he", rng=0)
    x = np.random.default_rng(0).standard_normal((1024, 512)).astype(np.float32)
    forward, backward = init_demos.depth_profile(model, x)
    assert forward.shape == backward.shape == (7,)
    predicted = init_demos.predicted_profile(6, 512, 512, "he", input_rms=1.0)
    assert np.allclose(forward[:6], predicted[:6], rtol=0.15)
    assert np.allclose(backward[:5] / backward[1:6], 1.0, rtol=0.1)


def test_small_weights_shrink_the_backward_signal_by_the_predicted_gain():
    model = init_demos.deep_mlp(5, 200, in_features=200, scheme="normal", rng=1)
    x = np.random.default_rng(1).standard_normal((512, 200)).astype(np.float32)
    _, backward = init_demos.depth_profile(model, x)
    gain = math.sqrt(200 * 1e-4 / 2)
    assert np.allclose(backward[:4] / backward[1:5], gain, rtol=0.15)


@pytest.mark.parametrize("kwargs", [dict(depth=0), dict(depth=31), dict(width=2.5), dict(width=True),
                                    dict(scheme="zeros"), dict(scheme="magic")])
def test_profile_view_answers_bad_settings_with_a_message(kwargs):
    result = init_demos.profile_view(**kwargs)
    assert isinstance(result, str) and result.startswith("Cannot draw this profile")


def test_profile_view_draws_a_figure():
    import matplotlib.pyplot as plt
    fig = init_demos.profile_view("xavier", 3, 32)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 3
    plt.close(fig)
