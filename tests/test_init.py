"""Weight initialization: fans, the scale of each scheme, and the variance rule it rests on."""

import math

import numpy as np
import pytest

from cnn_lib import Dense, ReLU, Sequential, init, initialize, seed_network
from cnn_lib.teaching import report


def test_fans_of_dense_and_conv_weights():
    assert init.fans((800, 128)) == (800, 128)
    assert init.fans((8, 3, 5, 5)) == (75, 200)
    with pytest.raises(ValueError, match="expected dense weights"):
        init.fans((3, 4, 5))


@pytest.mark.parametrize("shape", [(800, 128), (8, 8, 5, 5), (8, 1, 5, 5)])
def test_scheme_scales(shape):
    fan_in, fan_out = init.fans(shape)
    assert init.init_std(shape, "zeros") == 0
    assert init.init_std(shape, "normal", std=0.05) == 0.05
    assert init.init_std(shape, "he") == pytest.approx(math.sqrt(2 / fan_in))
    assert init.init_std(shape, "xavier") == pytest.approx(math.sqrt(2 / (fan_in + fan_out)))


def test_report_scheme_matches_the_report_code():
    # the report's own functions, drawn large enough to measure their standard deviation
    f = report.initializeFilter((64, 8, 5, 5), rng=0)
    assert f.std() == pytest.approx(init.init_std((64, 8, 5, 5), "report"), rel=0.03)
    w = report.initializeWeight((128, 800), rng=0)
    assert w.std() == pytest.approx(init.init_std((800, 128), "report"), rel=0.03)


@pytest.mark.parametrize("scheme", ["normal", "report", "xavier", "he"])
def test_init_weights_draws_the_scale_reproducibly(scheme):
    w = init.init_weights((400, 300), scheme, rng=1)
    assert w.dtype == np.float32 and w.shape == (400, 300)
    assert w.std() == pytest.approx(init.init_std((400, 300), scheme), rel=0.02)
    assert abs(w.mean()) < 0.02 * w.std()                    # zero mean (the standard error is 0.003 std)
    assert np.array_equal(w, init.init_weights((400, 300), scheme, rng=1))
    assert not np.array_equal(w, init.init_weights((400, 300), scheme, rng=2))


def test_zeros_scheme_is_all_zeros():
    assert not init.init_weights((5, 4), "zeros", rng=0).any()


def test_bad_schemes_are_refused():
    with pytest.raises(ValueError, match="unknown initialization scheme 'glorot'"):
        init.init_std((3, 3), "glorot")
    with pytest.raises(ValueError, match="std must be"):
        init.init_std((3, 3), "normal", std=float("nan"))
    with pytest.raises(ValueError, match="unknown initialization"):
        initialize(seed_network(0), "uniform")


def test_initialize_redraws_every_weight_and_zeroes_biases():
    model = seed_network(0)
    for p in model.params().values():
        p += 1.0                                            # non-zero biases, shifted weights
    initialize(model, "xavier", rng=3)
    for name, p in model.params().items():
        if name.endswith(".b"):
            assert not p.any(), name
        else:
            assert p.std() == pytest.approx(init.init_std(p.shape, "xavier"), rel=0.25), name
    again = initialize(seed_network(5), "xavier", rng=3)
    for (k, a), b in zip(model.params().items(), again.params().values()):
        assert np.array_equal(a, b), k


def test_he_keeps_the_variance_through_relu_layers_and_small_weights_shrink_it():
    # the variance rule: Var(z_l) = fan_in Var(w) Var(z_{l-1}) / 2 through ReLU layers
    rng = np.random.default_rng(0)
    width, depth = 256, 8
    x = rng.standard_normal((2000, width)).astype(np.float32)
    for scheme, per_layer in (("he", 1.0), ("normal", math.sqrt(width * 0.01**2 / 2))):
        layers = []
        for _ in range(depth):
            layers += [Dense(width, width), ReLU()]
        model = initialize(Sequential(*layers), scheme, rng=1)
        a, stds = x, []
        for name, layer in model.layers.items():
            a = layer.forward(a, train=False)
            if name.startswith("dense"):
                stds.append(a.std())
        ratios = np.array(stds[1:]) / np.array(stds[:-1])
        assert np.allclose(ratios, per_layer, rtol=0.1), (scheme, ratios)
