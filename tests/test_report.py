"""cnn_lib.teaching.report: the seed report's loop code, checked against cnn_lib's loop versions, SciPy,
numerical gradients, cnn_lib's batched network, and the report's published weights."""

from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from cnn_lib import Adam, functional as F, seed_network
from cnn_lib.teaching import report
from cnn_lib.gradcheck import numerical_gradient, rel_error
from cnn_lib.losses import softmax_cross_entropy

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "numpy_cnn_params.npz"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("s", [1, 2])
def test_convolution_matches_naive_and_scipy(rng, s):
    image = rng.standard_normal((3, 11, 11))
    filt = rng.standard_normal((4, 3, 5, 5))
    bias = rng.standard_normal((4, 1))
    out = report.convolution(image, filt, bias, s)
    assert out.shape == (4, (11 - 5) // s + 1, (11 - 5) // s + 1)
    naive = F.conv2d_naive(image[None], filt, bias[:, 0], stride=s)[0]
    assert rel_error(out, naive) < 1e-12
    # independent reference: SciPy's cross-correlation, summed over channels, then strided
    ref = np.stack([sum(signal.correlate2d(image[c], filt[f, c], mode="valid") for c in range(3)) + bias[f, 0]
                    for f in range(4)])[:, ::s, ::s]
    assert rel_error(out, ref) < 1e-12


def test_maxpool_and_backward_match_naive(rng):
    x = rng.standard_normal((3, 10, 10))
    y = report.maxpool(x, 2, 2)
    assert rel_error(y, F.maxpool2d_naive(x[None], 2, 2)[0]) == 0
    dpool = rng.standard_normal(y.shape)
    dx = report.maxpoolBackward(dpool, x, 2, 2)
    assert rel_error(dx, F.maxpool2d_backward_naive(dpool[None], x[None], 2, 2)[0]) == 0
    assert np.count_nonzero(dx) == dpool.size          # one maximum per window


def test_convolution_backward_matches_naive_and_numerical(rng):
    x = rng.standard_normal((2, 8, 8))
    filt = rng.standard_normal((3, 2, 3, 3))
    bias = rng.standard_normal((3, 1))
    dy = rng.standard_normal((3, 6, 6))
    dx, dfilt, dbias = report.convolutionBackward(dy, x, filt, 1)
    ndx, ndw, ndb = F.conv2d_backward_naive(dy[None], x[None], filt)
    assert rel_error(dx, ndx[0]) < 1e-12 and rel_error(dfilt, ndw) < 1e-12 and rel_error(dbias[:, 0], ndb) < 1e-12

    def loss():
        return np.sum(report.convolution(x, filt, bias, 1) * dy)
    assert rel_error(dx, numerical_gradient(loss, x)) < 1e-7
    assert rel_error(dfilt, numerical_gradient(loss, filt)) < 1e-7
    assert rel_error(dbias, numerical_gradient(loss, bias)) < 1e-7


def test_relu_is_in_place():
    x = np.array([-1.0, 0.0, 2.0])
    out = report.relu(x)
    assert out is x and np.array_equal(x, [0.0, 0.0, 2.0])


def test_softmax_and_cross_entropy_and_their_flaws():
    z = np.array([[1.0], [2.0], [-0.5]])
    label = np.array([[0.0], [1.0], [0.0]])
    p = report.softmax(z)
    assert rel_error(p[:, 0], F.softmax(z[:, 0])) < 1e-14
    assert abs(report.categoricalCrossEntropy(p, label) - F.cross_entropy(z.T, np.array([1]))) < 1e-12
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        assert np.isnan(report.softmax(np.array([[1000.0], [0.0]]))).any()       # no max shift
        assert report.categoricalCrossEntropy(np.array([[1.0], [0.0]]), np.array([[0.0], [1.0]])) == np.inf
    assert np.all(np.isfinite(F.softmax(np.array([1000.0, 0.0]))))


def test_normalize_truncates_statistics():
    x = np.array([0.0, 0.0, 255.0, 255.0, 100.0])
    mean, std = x.mean(), x.std()                   # 122.0, 112.0...
    out = report.normalize(x)
    assert np.allclose(out, (x - int(mean)) / int(std))
    assert not np.allclose(out, (x - mean) / std)


def _images(n, rng):
    return rng.standard_normal((n, 1, 28, 28))


def test_conv_gradients_equal_cnn_lib_batched_network(rng):
    """The report's per-image forward+backward, averaged over a batch, equals cnn_lib's
    batched network (float64) with the same weights."""
    params = report.initialize_params(rng=1)
    for p in params[4:]:                               # non-zero biases exercise them too
        p += 0.01 * rng.standard_normal(p.shape)
    x, y = _images(3, rng), np.array([3, 7, 1])
    grads, losses = [np.zeros(p.shape) for p in params], 0.0
    for i in range(3):
        g_i, loss = report.conv(x[i], np.eye(10)[y[i]].reshape(10, 1), params)
        losses += loss
        for g, gi in zip(grads, g_i):
            g += gi
    model = seed_network(0, dtype=np.float64).load_state_dict(report.params_to_state_dict(params))
    loss, dlogits = softmax_cross_entropy(model.forward(x), y)
    model.backward(dlogits)
    ours = report.params_to_state_dict([g / 3 for g in grads])
    assert abs(losses / 3 - loss) < 1e-12
    for k, g in model.grads().items():
        assert rel_error(ours[k], g) < 1e-9, k


def test_adamGD_update_equals_report_adam(rng):
    params = report.initialize_params(rng=2)
    x, y = _images(2, rng), np.array([0, 5])
    before = [p.copy() for p in params]
    grads = [np.zeros(p.shape) for p in params]
    for i in range(2):
        g_i, _ = report.conv(x[i], np.eye(10)[y[i]].reshape(10, 1), [p.copy() for p in params])
        for g, gi in zip(grads, g_i):
            g += gi / 2
    cost = []
    after, cost = report.adamGD(x, y, 10, 0.01, 0.95, 0.99, params, cost)
    assert len(cost) == 1 and np.isfinite(cost[0])
    state = report.params_to_state_dict([p.copy() for p in before])
    opt = report.ReportAdam(state, lr=0.01, betas=(0.95, 0.99))
    opt.step(report.params_to_state_dict(grads))
    expected = report.params_to_state_dict(after)
    for k in state:
        assert rel_error(state[k], expected[k]) < 1e-12, k


def test_report_adam_forgets_and_is_nearly_sign_descent():
    p = {"w": np.zeros(3)}
    opt = report.ReportAdam(p, lr=0.01, betas=(0.95, 0.99))
    g = {"w": np.array([1.0, -2.0, 1e-6])}
    opt.step(g)
    first = -p["w"].copy()
    opt.step(g)
    second = -p["w"] - first
    assert np.array_equal(first, second)                       # no memory between steps
    big = 0.01 * 0.05 / np.sqrt(0.01)                          # lr (1 - b1) / sqrt(1 - b2)
    assert np.allclose(first[:2], big * np.sign(g["w"][:2]), rtol=1e-4)
    assert first[2] < 0.01 * big                               # eps inside the sqrt damps tiny gradients
    # real Adam keeps its moments: the second step differs from the first for a changing gradient
    q = {"w": np.zeros(3)}
    adam = Adam(q, lr=0.01)
    adam.step({"w": np.array([1.0, -2.0, 1.0])})
    s1 = -q["w"].copy()
    adam.step({"w": np.array([-1.0, -2.0, 1.0])})
    assert not np.allclose(-q["w"] - s1, s1)


def test_state_dict_round_trip(rng):
    params = report.initialize_params(rng=3)
    back = report.state_dict_to_params(report.params_to_state_dict(params))
    assert all(np.array_equal(a, b) for a, b in zip(params, back))
    model = seed_network(0)
    model.load_state_dict(report.params_to_state_dict(params))    # names and shapes match


@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"the report's published weights are not in {REFERENCE}")
def test_published_weights_give_the_same_predictions(mnist):
    """The report's trained weights: its predict() and cnn_lib's batched network agree."""
    with np.load(REFERENCE, allow_pickle=False) as data:
        params = [data[k] for k in report.PARAM_NAMES]
    from cnn_lib import load_mnist
    _, _, x_test, y_test = load_mnist(normalize=False, progress=False)
    raw = x_test * 255.0                                  # the report's input: raw 0..255 pixels
    x = report.normalize(raw)                             # its normalization (int mean, int std)
    model = seed_network(0, dtype=np.float64).load_state_dict(report.params_to_state_dict(params))
    ours = model.predict(x)
    idx = np.random.default_rng(0).choice(len(x), 12, replace=False)
    theirs = [report.predict(x[i], *params)[0] for i in idx]
    assert np.array_equal(ours[idx], theirs)
    assert np.mean(ours == y_test) > 0.97                 # the published network is a good one
