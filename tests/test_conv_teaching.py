"""Tests of cnn_lib.teaching.conv_teaching: each teaching helper against an independent reference
(SciPy, the library's fast and loop functions, numerical gradients, numbers by hand), in float64."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from numpy.testing import assert_allclose, assert_array_equal

from cnn_lib.teaching import conv_teaching as T
from cnn_lib import functional as F
from cnn_lib.gradcheck import check_function
from cnn_lib.shapes import pair

signal = pytest.importorskip("scipy.signal")

TOL = dict(rtol=1e-10, atol=1e-12)

SHAPES_2D = [((5, 5), (3, 3)), ((6, 7), (3, 2)), ((4, 9), (1, 4)), ((3, 3), (3, 3)), ((8, 5), (2, 5))]

# (N, C, F, H, W, KH, KW, stride, padding)
CONV_CASES = [
    (1, 1, 1, 5, 5, 3, 3, 1, 0),
    (2, 3, 4, 7, 6, 3, 2, 1, 1),
    (2, 2, 3, 9, 8, 3, 3, 2, 0),
    (1, 2, 2, 8, 9, 2, 3, (2, 3), (1, 0)),
    (3, 1, 2, 7, 7, 5, 5, 3, 2),      # rows no window reaches (remainder)
    (1, 3, 1, 6, 5, 1, 1, 2, 0),
]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _conv_case(case, seed=0):
    N, C, Fn, H, W, KH, KW, s, p = case
    r = _rng(seed)
    x, w = r.standard_normal((N, C, H, W)), r.standard_normal((Fn, C, KH, KW))
    dy = r.standard_normal(F.conv2d(x, w, None, s, p).shape)
    return x, w, dy, s, p


# --------------------------------------------------------------------------- one neuron
@pytest.mark.parametrize("shape", SHAPES_2D, ids=str)
def test_feature_map_naive_matches_scipy_and_conv2d(shape):
    (H, W), (KH, KW) = shape
    r = _rng(1)
    M, K, b = r.standard_normal((H, W)), r.standard_normal((KH, KW)), 0.7
    want = signal.correlate2d(M, K, mode="valid") + b
    assert_allclose(T.feature_map_naive(M, K, b), want, **TOL)
    assert_allclose(F.conv2d(M[None, None], K[None, None], np.array([b]))[0, 0], want, **TOL)
    assert_allclose(T.feature_map_naive(M, K, b, activation=F.relu), np.maximum(want, 0), **TOL)


def test_feature_map_by_hand():
    M = np.array([[1.0, 2, 0], [0, 1, 3], [2, 0, 1]])
    K = np.array([[1.0, -1], [0, 2]])
    # [0,0]: 1 - 2 + 0 + 2*1 = 1 ; [0,1]: 2 - 0 + 0 + 2*3 = 8 ; [1,0]: 0 - 1 + 0 + 0 = -1 ; [1,1]: 1 - 3 + 0 + 2 = 0
    assert_array_equal(T.feature_map_naive(M, K), [[1.0, 8], [-1, 0]])
    assert_array_equal(T.feature_map_naive(M, K, b=-1.0, activation=F.relu), [[0.0, 7], [0, 0]])


def test_feature_map_rejects_a_kernel_larger_than_the_input():
    with pytest.raises(ValueError, match="larger than the input"):
        T.feature_map_naive(np.zeros((2, 2)), np.zeros((3, 1)))


# --------------------------------------------------------------------------- correlation and convolution
@pytest.mark.parametrize("mode", ["valid", "full"])
@pytest.mark.parametrize("shape", SHAPES_2D, ids=str)
def test_correlate_and_convolve_match_scipy(shape, mode):
    (H, W), (KH, KW) = shape
    r = _rng(2)
    M, K = r.standard_normal((H, W)), r.standard_normal((KH, KW))
    assert_allclose(T.correlate2d_naive(M, K, mode), signal.correlate2d(M, K, mode=mode), **TOL)
    assert_allclose(T.convolve2d_naive(M, K, mode), signal.convolve2d(M, K, mode=mode), **TOL)


@pytest.mark.parametrize("mode", ["valid", "full"])
@pytest.mark.parametrize("shape", SHAPES_2D, ids=str)
def test_convolution_is_correlation_with_the_flipped_kernel(shape, mode):
    (H, W), (KH, KW) = shape
    r = _rng(3)
    M, K = r.standard_normal((H, W)), r.standard_normal((KH, KW))
    assert_allclose(T.convolve2d_naive(M, K, mode), T.correlate2d_naive(M, K[::-1, ::-1], mode), **TOL)


def test_convolution_commutes_and_correlation_does_not():
    r = _rng(4)
    A, B = r.standard_normal((5, 6)), r.standard_normal((3, 4))
    assert_allclose(T.convolve2d_naive(A, B, "full"), T.convolve2d_naive(B, A, "full"), **TOL)
    ab, ba = T.correlate2d_naive(A, B, "full"), T.correlate2d_naive(B, A, "full")
    assert not np.allclose(ab, ba)
    assert_allclose(ab, ba[::-1, ::-1], **TOL)          # swapping the two flips the result


def test_impulse_response_by_hand():
    delta = np.zeros((3, 3))
    delta[1, 1] = 1.0
    K = np.arange(1.0, 10.0).reshape(3, 3)
    assert_array_equal(T.convolve2d_naive(delta, K, "full")[1:4, 1:4], K)
    assert_array_equal(T.correlate2d_naive(delta, K, "full")[1:4, 1:4], K[::-1, ::-1])


def test_modes_and_errors():
    with pytest.raises(ValueError, match="mode"):
        T.correlate2d_naive(np.zeros((3, 3)), np.zeros((2, 2)), "same")
    with pytest.raises(ValueError, match="larger than the input"):
        T.convolve2d_naive(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="2-D"):
        T.correlate2d_naive(np.zeros((1, 2, 2)), np.zeros((2, 2)))


# --------------------------------------------------------------------------- dilate
def test_dilate_by_hand_and_shapes():
    a = np.array([[1, 2], [3, 4]])
    assert_array_equal(T.dilate(a, 2), [[1, 0, 2], [0, 0, 0], [3, 0, 4]])
    assert_array_equal(T.dilate(a, 1), a)
    assert T.dilate(np.ones((2, 3, 4, 5)), (2, 3)).shape == (2, 3, 7, 13)
    assert T.dilate(a, 2).dtype == a.dtype
    with pytest.raises(ValueError, match="at least 1"):
        T.dilate(a, 0)


def test_dilated_kernel_is_a_dilated_convolution():
    """A kernel dilated by d reads pixels d apart: compare with an explicit loop."""
    r = _rng(5)
    M, K, d = r.standard_normal((9, 10)), r.standard_normal((3, 2)), 2
    got = T.correlate2d_naive(M, T.dilate(K, d))
    H_out, W_out = 9 - d * 2, 10 - d * 1
    want = np.array([[sum(M[i + d * u, j + d * v] * K[u, v] for u in range(3) for v in range(2))
                      for j in range(W_out)] for i in range(H_out)])
    assert_allclose(got, want, **TOL)


# --------------------------------------------------------------------------- gradients of a convolution layer
def _cid(case):
    return "N{}C{}F{}-{}x{}-k{}x{}-s{}-p{}".format(*case).replace(" ", "")


@pytest.mark.parametrize("case", CONV_CASES, ids=_cid)
def test_grad_weight_matches_library_and_loops(case):
    x, w, dy, s, p = _conv_case(case)
    _, dw, _ = F.conv2d_backward(dy, F.conv2d_forward(x, w, None, s, p)[1])
    _, dw_naive, _ = F.conv2d_backward_naive(dy, x, w, s, p)
    kernel_size = w.shape[2:]
    assert_allclose(T.conv2d_grad_weight_naive(dy, x, kernel_size, s, p), dw, **TOL)
    assert_allclose(T.conv2d_grad_weight(dy, x, kernel_size, s, p), dw, **TOL)
    assert_allclose(dw_naive, dw, **TOL)


@pytest.mark.parametrize("case", CONV_CASES, ids=_cid)
def test_grad_input_matches_library_and_loops(case):
    x, w, dy, s, p = _conv_case(case)
    dx, _, _ = F.conv2d_backward(dy, F.conv2d_forward(x, w, None, s, p)[1])
    assert_allclose(T.conv2d_grad_input_naive(dy, w, x.shape, s, p), dx, **TOL)
    assert_allclose(T.conv2d_grad_input(dy, w, x.shape, s, p), dx, **TOL)


@pytest.mark.parametrize("case", CONV_CASES[:4], ids=_cid)
def test_grads_against_numerical_gradients(case):
    x, w, _, s, p = _conv_case(case, seed=6)

    def forward(x, w):
        return F.conv2d(x, w, None, s, p)

    def backward(dy, x, w):
        return (T.conv2d_grad_input(dy, w, x.shape, s, p), T.conv2d_grad_weight(dy, x, w.shape[2:], s, p))

    def backward_naive(dy, x, w):
        return (T.conv2d_grad_input_naive(dy, w, x.shape, s, p),
                T.conv2d_grad_weight_naive(dy, x, w.shape[2:], s, p))

    assert max(check_function(forward, backward, x, w, rng=0, h=1e-5)) < 1e-7
    assert max(check_function(forward, backward_naive, x, w, rng=0, h=1e-5)) < 1e-7


def test_single_channel_grad_input_is_scipy_full_convolution():
    r = _rng(7)
    x, K = r.standard_normal((1, 1, 6, 6)), r.standard_normal((1, 1, 3, 3))
    dy = r.standard_normal((1, 1, 4, 4))
    assert_allclose(T.conv2d_grad_input(dy, K, x.shape)[0, 0], signal.convolve2d(dy[0, 0], K[0, 0], "full"), **TOL)
    assert_allclose(T.conv2d_grad_weight(dy, x, (3, 3))[0, 0], signal.correlate2d(x[0, 0], dy[0, 0], "valid"),
                    **TOL)


# --------------------------------------------------------------------------- im2col and the matrix of a convolution
def _im2col_by_sliding_windows(x, kernel_size, stride, padding):
    """An independent im2col: NumPy's view of every window, strided, transposed and copied."""
    (KH, KW), (sh, sw), (ph, pw) = (pair(kernel_size, "kernel_size"), pair(stride, "stride"),
                                   pair(padding, "padding"))
    N, C, H, W = x.shape
    H_out, W_out = F.conv_output_size(H, KH, sh, ph), F.conv_output_size(W, KW, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(xp, (KH, KW), axis=(2, 3))[:, :, : (H_out - 1) * sh + 1 : sh, : (W_out - 1) * sw + 1 : sw]
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(N, C * KH * KW, H_out * W_out)


@pytest.mark.parametrize("case", CONV_CASES, ids=_cid)
def test_part_two_im2col_matches_sliding_windows(case):
    # part II prints functional.im2col and functional.conv2d_forward: checked here against
    # another construction of the columns, and the convolution against the loops
    x, w, _, s, p = _conv_case(case)
    b = _rng(8).standard_normal(w.shape[0])
    assert_array_equal(F.im2col(x, w.shape[2:], s, p), _im2col_by_sliding_windows(x, w.shape[2:], s, p))
    assert_allclose(F.conv2d_forward(x, w, b, s, p)[0], F.conv2d_naive(x, w, b, s, p), **TOL)


def test_im2col_by_hand():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    cols = F.im2col(x, 2)
    # windows (row-major) [[0,1],[3,4]], [[1,2],[4,5]], [[3,4],[6,7]], [[4,5],[7,8]], each one column
    assert_array_equal(cols[0], [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]])


@pytest.mark.parametrize("H,W,k,s,p", [(6, 6, 3, 1, 0), (5, 7, 2, 2, 1), (4, 4, 3, 1, 1), (8, 6, (3, 2), (2, 1), 0)])
def test_conv_as_matrix(H, W, k, s, p):
    KH, KW = (k, k) if isinstance(k, int) else k
    r = _rng(9)
    K, M = r.standard_normal((KH, KW)), r.standard_normal((H, W))
    A = T.conv_as_matrix(K, H, W, s, p)
    y = F.conv2d(M[None, None], K[None, None], None, s, p)[0, 0]
    assert A.shape == (y.size, H * W)
    assert_allclose(A @ M.ravel(), y.ravel(), **TOL)
    if p == 0:   # without padding every row holds the KH*KW weights exactly once
        assert_array_equal((A != 0).sum(axis=1), np.full(y.size, KH * KW))


# --------------------------------------------------------------------------- costs, sizes, kernels, images
def test_conv_macs():
    macs, shape = T.conv_macs((1, 28, 28), 8, 5)
    assert shape == (8, 24, 24) and macs == 8 * 24 * 24 * 25
    macs, shape = T.conv_macs((8, 24, 24), 8, 5)
    assert shape == (8, 20, 20) and macs == 8 * 20 * 20 * 8 * 25
    macs, shape = T.conv_macs((3, 10, 12), 4, (3, 5), stride=(2, 1), padding=(1, 2), dilation=1)
    assert shape == (4, 5, 12) and macs == 4 * 5 * 12 * 3 * 15
    macs, shape = T.conv_macs((1, 9, 9), 1, 3, dilation=2)
    assert shape == (1, 5, 5) and macs == 25 * 9
    with pytest.raises(ValueError, match="does not fit"):
        T.conv_macs((1, 4, 4), 1, 7)


def test_same_padding():
    for k in (1, 3, 5, 7):
        p = T.same_padding(k)
        assert F.conv_output_size(11, k, 1, p) == 11
    for k, d in ((3, 2), (5, 3)):
        p = T.same_padding(k, d)
        assert F.conv_output_size(11, k, 1, p, d) == 11
    assert T.same_padding(2) is None and T.same_padding(4) is None and T.same_padding(2, 2) == 1


def test_kernels_and_edge_kernel():
    img = np.tile(np.arange(6.0), (6, 1))           # brighter to the right
    for k in (2, 3, 5):
        K = T.edge_kernel(k)
        assert K.shape == (k, k) and abs(K.sum()) < 1e-12
        assert np.all(T.correlate2d_naive(img, K) > 0)
    assert_array_equal(T.edge_kernel(1), [[1.0]])
    assert np.all(T.correlate2d_naive(img, T.KERNELS["sobel_x"]) > 0)
    assert_allclose(T.correlate2d_naive(img, T.KERNELS["sobel_y"]), 0, atol=1e-12)
    assert_allclose(T.correlate2d_naive(img, T.KERNELS["identity"]), img[1:-1, 1:-1])
    with pytest.raises(ValueError):
        T.edge_kernel(0)


def test_resize_image():
    r = _rng(10)
    img = r.random((28, 28))
    assert_allclose(T.resize_image(img, 28), img, **TOL)
    assert_allclose(T.resize_image(np.full((28, 28), 0.3), 11), 0.3, **TOL)
    assert_allclose(T.resize_image(img, 14), img.reshape(14, 2, 14, 2).mean(axis=(1, 3)), **TOL)
    small = T.resize_image(img, (9, 13))
    assert small.shape == (9, 13)
    assert abs(small.mean() - img.mean()) < 1e-12            # area averaging keeps the mean
    with pytest.raises(ValueError):
        T.resize_image(img, 0)


def test_shift_image():
    x = np.arange(1.0, 10.0).reshape(1, 3, 3)
    assert_array_equal(T.shift_image(x, 0, 1)[0], [[0, 1, 2], [0, 4, 5], [0, 7, 8]])
    assert_array_equal(T.shift_image(x, -1, 0)[0], [[4, 5, 6], [7, 8, 9], [0, 0, 0]])
    assert_array_equal(T.shift_image(x, 1, -1)[0], [[0, 0, 0], [2, 3, 0], [5, 6, 0]])
    assert_array_equal(T.shift_image(x, 0, 0), x)
    assert_array_equal(T.shift_image(x, 3, 0), np.zeros_like(x))


def test_convolve1d_naive_matches_numpy():
    r = _rng(11)
    for n, q in ((7, 3), (5, 5), (9, 1), (4, 6)):
        x, k = r.standard_normal(n), r.standard_normal(q)
        assert_allclose(T.convolve1d_naive(x, k), np.convolve(x, k, "full"), **TOL)
        if q <= n:
            assert_allclose(T.convolve1d_naive(x, k, "valid"), np.convolve(x, k, "valid"), **TOL)
    # by hand: (1, 2, 3) * (1, -1) = (1, 1, 1, -3)
    assert_array_equal(T.convolve1d_naive(np.array([1.0, 2, 3]), np.array([1.0, -1])), [1, 1, 1, -3])
    with pytest.raises(ValueError):
        T.convolve1d_naive(np.ones(2), np.ones(3), "valid")
    with pytest.raises(ValueError):
        T.convolve1d_naive(np.ones((2, 2)), np.ones(2))


def _brute_force_field(stack, n, unit):
    """Input pixels (1-D) that reach output ``unit`` of ``stack``: propagate index sets."""
    sets = [{i} for i in range(n)]
    for k, s, p in stack:
        padded = [set()] * p + sets + [set()] * p
        n_out = (len(padded) - k) // s + 1
        sets = [set().union(*padded[i * s:i * s + k]) for i in range(n_out)]
    return sorted(sets[unit])


def test_receptive_field_against_brute_force_and_layers():
    from cnn_lib import seed_network
    stacks = [[(5, 1, 0), (5, 1, 0), (2, 2, 0)], [(3, 1, 1), (2, 2, 0), (3, 1, 1), (2, 2, 0)],
              [(3, 2, 0), (3, 2, 1)], [(7, 3, 2)]]
    for stack in stacks:
        r, j, a = T.receptive_field(stack)[-1]
        for unit in (1, 2):
            got = _brute_force_field(stack, 40, unit)
            lo = max(a + unit * j, 0)
            assert got == list(range(lo, a + unit * j + r)), (stack, unit)
    fields = T.receptive_field(seed_network(0))
    assert fields == [(5, 1, 0), (9, 1, 0), (10, 2, 0)]
    with pytest.raises(ValueError):
        T.receptive_field([(0, 1, 0)])
