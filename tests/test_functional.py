"""Tests of cnn_lib.functional and cnn_lib.fast_conv: every vectorized op against its ``*_naive``
loop twin and against an independent reference (SciPy, numbers worked out by hand, numerical
gradients), in float64; the readable convolution (im2col) and the fast one against each other."""

import math
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cnn_lib import fast_conv, shapes
from cnn_lib import functional as F
from cnn_lib import losses
from cnn_lib.gradcheck import check_function

signal = pytest.importorskip("scipy.signal")
special = pytest.importorskip("scipy.special")

TOL = dict(rtol=1e-9, atol=1e-12)   # float64, same sums in a different order
GRAD_TOL = 1e-6                     # maximum relative error of a numerical gradient check
# Step of the central differences. With gradcheck's default h = 1e-6 the round-off error
# eps * |L| / h (about 1e-8 here) already gives a relative error of ~5e-6 on a correct
# gradient entry of size 1e-3; h = 1e-5 keeps it near 1e-7 (truncation error ~h^2 is negligible).
STEP = 1e-5


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# --------------------------------------------------------------------------- the forward/backward pairs
def conv2d_backward_fast(dy, x, w, stride=1, padding=0, need_dx=True):
    """The fast pair (what the layers run): its forward for the cache, then its backward."""
    _, cache = fast_conv.conv2d_forward(x, w, None, stride, padding)
    return fast_conv.conv2d_backward(dy, cache, need_dx)


def conv2d_backward_im2col(dy, x, w, stride=1, padding=0, need_dx=True):
    """The readable pair of functional (im2col and one matrix product)."""
    _, cache = F.conv2d_forward(x, w, None, stride, padding)
    return F.conv2d_backward(dy, cache, need_dx)


def maxpool2d_backward_from_x(dy, x, kernel_size=2, stride=None):
    return F.maxpool2d_backward(dy, F.maxpool2d_forward(x, kernel_size, stride)[1])


def avgpool2d_backward_from_x(dy, x, kernel_size=2, stride=None):
    return F.avgpool2d_backward(dy, F.avgpool2d_forward(x, kernel_size, stride)[1])


# --------------------------------------------------------------------------- references
def conv2d_scipy(x, w, b, stride, padding):
    """y[n, f] = b[f] + sum_c correlate2d(xp[n, c], w[f, c], 'valid'), subsampled by the stride."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    N, C = x.shape[:2]
    Fn = w.shape[0]
    out = []
    for n in range(N):
        maps = []
        for f in range(Fn):
            full = sum(signal.correlate2d(xp[n, c], w[f, c], mode="valid") for c in range(C))
            maps.append(full[::sh, ::sw] + b[f])
        out.append(maps)
    return np.array(out)


def conv2d_backward_scipy(dy, x, w, stride, padding):
    """dx: full *convolution* of the stride-dilated dy with w; dw: correlation of xp with it."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    N, C, H, W = x.shape
    Fn, _, KH, KW = w.shape
    H_out, W_out = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    Hr, Wr = (H_out - 1) * sh + KH, (W_out - 1) * sw + KW     # rows/cols some window reaches
    dyd = np.zeros((N, Fn, (H_out - 1) * sh + 1, (W_out - 1) * sw + 1))
    dyd[:, :, ::sh, ::sw] = dy
    dxp = np.zeros(xp.shape)
    dw = np.zeros(w.shape)
    for n in range(N):
        for f in range(Fn):
            for c in range(C):
                dxp[n, c, :Hr, :Wr] += signal.convolve2d(dyd[n, f], w[f, c], mode="full")
                dw[f, c] += signal.correlate2d(xp[n, c, :Hr, :Wr], dyd[n, f], mode="valid")
    db = np.array([dy[:, f].sum() for f in range(Fn)])
    return dxp[:, :, ph:ph + H, pw:pw + W], dw, db


# --------------------------------------------------------------------------- conv2d cases
# (N, C, F, H, W, KH, KW, stride, padding)
CONV_CASES = [
    (1, 1, 1, 3, 3, 2, 2, 1, 0),
    (2, 3, 4, 7, 9, 3, 2, 1, 0),
    (3, 2, 2, 7, 9, 3, 2, 2, 1),
    (1, 3, 4, 7, 9, 3, 2, (1, 2), 0),
    (2, 1, 2, 7, 9, 3, 2, 3, 2),
    (3, 3, 1, 8, 5, 2, 3, (2, 3), (1, 2)),
    (2, 2, 4, 9, 7, 3, 3, 2, (2, 0)),
    (1, 2, 2, 6, 6, 1, 1, 2, 1),          # 1x1 kernel
    (2, 1, 4, 5, 8, 5, 4, 1, 2),          # kernel as tall as the unpadded input
    (1, 3, 2, 4, 4, 4, 4, 1, 0),          # kernel = input: a 1x1 output
    (3, 1, 1, 2, 3, 3, 3, 1, 1),          # kernel larger than the input, fits once padded
    (2, 3, 2, 10, 7, 3, 2, 3, (0, 1)),
    (1, 2, 4, 7, 9, 2, 3, (3, 1), (2, 2)),
    (3, 2, 1, 11, 6, 4, 2, (2, 2), 1),
    (2, 1, 2, 7, 9, 2, 2, 3, 0),          # stride > kernel: some pixels never seen
]


def _random_conv_cases(count, seed=1234):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        N, C, Fn = rng.choice([1, 2, 3]), rng.choice([1, 2, 3]), rng.choice([1, 2, 4])
        H, W = rng.integers(3, 10, size=2)
        KH, KW = rng.integers(1, 4, size=2)
        stride = int(rng.integers(1, 4)) if rng.random() < 0.5 else tuple(int(s) for s in rng.integers(1, 4, size=2))
        padding = int(rng.integers(0, 3)) if rng.random() < 0.5 else tuple(int(p) for p in rng.integers(0, 3, size=2))
        cases.append(tuple(int(v) for v in (N, C, Fn, H, W, KH, KW)) + (stride, padding))
    return cases


ALL_CONV_CASES = CONV_CASES + _random_conv_cases(15)


def conv_id(case):
    N, C, Fn, H, W, KH, KW, s, p = case
    return f"N{N}C{C}F{Fn}-{H}x{W}-k{KH}x{KW}-s{s}-p{p}".replace(" ", "")


def make_conv(case, seed=0, dtype=np.float64):
    N, C, Fn, H, W, KH, KW, stride, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((Fn, C, KH, KW)).astype(dtype)
    b = rng.standard_normal(Fn).astype(dtype)
    return x, w, b, stride, padding


@pytest.fixture(params=["rows", "columns", "windows"])
def unroll(request, monkeypatch):
    """The fast convolution unrolls the input along the kernel width (``rows``: then one
    product per kernel row), or with few filters along the kernel height (``columns``: one
    product for all kernel columns) or, for inputs with few channels, whole windows
    (``windows``): run a test under each strategy. Returns the kind of chunk cache expected."""
    monkeypatch.setattr(fast_conv, "FULL_UNROLL_BELOW", 10**9 if request.param == "windows" else 0)
    monkeypatch.setattr(fast_conv, "FEW_FILTERS_BELOW", 10**9 if request.param == "columns" else 0)
    return request.param


@pytest.mark.parametrize("case", ALL_CONV_CASES, ids=conv_id)
def test_conv2d_matches_naive_and_scipy(case, unroll):
    x, w, b, stride, padding = make_conv(case)
    y = F.conv2d(x, w, b, stride, padding)
    ref = conv2d_scipy(x, w, b, stride, padding)
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    H_out = F.conv_output_size(x.shape[2], w.shape[2], sh, ph)
    W_out = F.conv_output_size(x.shape[3], w.shape[3], sw, pw)
    assert y.shape == ref.shape == (x.shape[0], w.shape[0], H_out, W_out)
    assert y.dtype == np.float64
    assert_allclose(y, ref, **TOL)
    assert_allclose(F.conv2d_naive(x, w, b, stride, padding), ref, **TOL)
    y_im2col, cache = F.conv2d_forward(x, w, b, stride, padding)
    assert cache.kind == "im2col"
    assert_allclose(y_im2col, ref, **TOL)
    y_fast, cache = fast_conv.conv2d_forward(x, w, b, stride, padding)
    assert cache.kind == "fast" and {c.kind for c in cache.chunks} == {unroll}
    assert_array_equal(y_fast, y)                   # conv2d is the fast forward


@pytest.mark.parametrize("case", ALL_CONV_CASES, ids=conv_id)
def test_conv2d_backward_matches_naive_and_scipy(case, unroll):
    x, w, b, stride, padding = make_conv(case)
    rng = np.random.default_rng(1)
    dy = rng.standard_normal(F.conv2d(x, w, b, stride, padding).shape)
    ref = conv2d_backward_scipy(dy, x, w, stride, padding)
    fast = conv2d_backward_fast(dy, x, w, stride, padding)
    naive = F.conv2d_backward_naive(dy, x, w, stride, padding)
    readable = conv2d_backward_im2col(dy, x, w, stride, padding)
    for name, got, slow, want, plain in zip(("dx", "dw", "db"), fast, naive, ref, readable):
        assert got.shape == want.shape, name
        assert_allclose(got, want, **TOL, err_msg=name)
        assert_allclose(slow, want, **TOL, err_msg=name)
        assert plain.shape == want.shape, name
        assert_allclose(plain, got, **TOL, err_msg=name)     # readable and fast agree


@pytest.mark.parametrize("case", CONV_CASES[:6], ids=conv_id)
def test_conv2d_backward_without_dx(case, unroll):
    x, w, b, stride, padding = make_conv(case)
    dy = np.random.default_rng(2).standard_normal(F.conv2d(x, w, b, stride, padding).shape)
    dx, dw, db = conv2d_backward_fast(dy, x, w, stride, padding)
    none, dw2, db2 = conv2d_backward_fast(dy, x, w, stride, padding, need_dx=False)
    assert none is None
    assert_array_equal(dw2, dw)
    assert_array_equal(db2, db)
    dx4, dw4, db4 = conv2d_backward_im2col(dy, x, w, stride, padding)
    none, dw5, db5 = conv2d_backward_im2col(dy, x, w, stride, padding, need_dx=False)
    assert none is None
    assert_array_equal(dw5, dw4)
    assert_array_equal(db5, db4)
    none, dw3, db3 = F.conv2d_backward_naive(dy, x, w, stride, padding, need_dx=False)
    assert none is None
    assert_allclose(dw3, dw, **TOL)
    assert_allclose(db3, db, **TOL)


@pytest.mark.parametrize("N", [17, 35])
def test_conv2d_large_batch_matches_naive(N, unroll):
    """Batches larger than the fast convolution's chunk (16 images), the last chunk shorter."""
    x, w, b, stride, padding = make_conv((N, 2, 3, 6, 5, 3, 2, (1, 2), 1), seed=12)
    y = F.conv2d(x, w, b, stride, padding)
    assert_allclose(y, F.conv2d_naive(x, w, b, stride, padding), **TOL)
    dy = np.random.default_rng(13).standard_normal(y.shape)
    for name, got, want in zip(("dx", "dw", "db"), conv2d_backward_fast(dy, x, w, stride, padding),
                               F.conv2d_backward_naive(dy, x, w, stride, padding)):
        assert got.shape == want.shape, name
        assert_allclose(got, want, **TOL, err_msg=name)
    # each image on its own gives the same output as in the batch
    for n in (0, 16, N - 1):
        assert_allclose(F.conv2d(x[n:n + 1], w, b, stride, padding)[0], y[n], **TOL)


def test_chunks_grow_for_small_outputs_but_always_split_the_batch():
    """The batch is cut by shapes alone: 16 images for 24x24 outputs, powers of two more for
    smaller ones, never more than half the batch; every image in exactly one chunk."""
    sizes = lambda N, P: [s.stop - s.start for s in fast_conv.chunks(N, P)]   # noqa: E731
    assert sizes(32, 20 * 20) == [16, 16]          # the seed network's second convolution
    assert sizes(128, 8 * 8) == [64, 64]           # 9 times fewer positions: 4 times larger, capped at N/2
    assert sizes(256, 8 * 8) == [128, 128]
    assert sizes(70, 8 * 8) == [32, 32, 6]
    for N, P in [(1, 1), (17, 30), (33, 400), (300, 4), (64, 576)]:
        cut = fast_conv.chunks(N, P)
        assert [i for sl in cut for i in range(sl.start, sl.stop)] == list(range(N))
        assert max(sizes(N, P)) in (16, 32, 64, 128, 256) or len(cut) == 1
        assert len(cut) >= 2 or N <= 16


def test_conv2d_with_large_chunks_matches_naive(unroll):
    """70 images of small maps: chunks of 32, 32 and 6."""
    x, w, b, stride, padding = make_conv((70, 2, 3, 6, 5, 3, 2, 1, 1), seed=16)
    y = F.conv2d(x, w, b, stride, padding)
    assert_allclose(y, F.conv2d_naive(x, w, b, stride, padding), **TOL)
    dy = np.random.default_rng(17).standard_normal(y.shape)
    for name, got, want in zip(("dx", "dw", "db"), conv2d_backward_fast(dy, x, w, stride, padding),
                               F.conv2d_backward_naive(dy, x, w, stride, padding)):
        assert_allclose(got, want, **TOL, err_msg=name)


def test_conv2d_does_not_depend_on_the_number_of_threads(unroll):
    x, w, b, stride, padding = make_conv((40, 2, 3, 7, 6, 3, 3, 1, 1), seed=14)
    dy = np.random.default_rng(15).standard_normal(F.conv2d(x, w, b, stride, padding).shape)
    before = F.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            F.set_num_threads(n)
            assert F.get_num_threads() == n
            results.append((F.conv2d(x, w, b, stride, padding),) + conv2d_backward_fast(dy, x, w, stride, padding))
    finally:
        F.set_num_threads(before)
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            assert_array_equal(a, b_)                 # bit for bit
    with pytest.raises(ValueError, match="at least 1"):
        F.set_num_threads(0)
    assert F.get_num_threads() == before


def test_parallel_map_keeps_order_and_passes_errors_on():
    before = F.get_num_threads()
    try:
        for n in (1, 2, 3):
            F.set_num_threads(n)
            assert fast_conv.parallel_map(lambda i: i * i, list(range(7))) == [i * i for i in range(7)]
            assert fast_conv.parallel_map(lambda i: i, []) == []
            for bad in (0, 1, 6):                       # the caller's share, a helper's, the last one
                def fn(i, bad=bad):
                    if i == bad:
                        raise KeyError(f"item {i}")
                    return i
                with pytest.raises(KeyError, match=f"item {bad}"):
                    fast_conv.parallel_map(fn, list(range(7)))
            # the helpers still work after an error; a call from inside a call runs serially
            nested = fast_conv.parallel_map(lambda i: fast_conv.parallel_map(lambda j: i * 10 + j, [0, 1]), [1, 2, 3])
            assert nested == [[10, 11], [20, 21], [30, 31]]
    finally:
        F.set_num_threads(before)


def test_parallel_map_keeps_one_blas_thread_until_every_thread_is_done():
    """Every item of a parallel_map, the last one of a slow helper included, runs with one BLAS
    thread, and the setting from before is restored after the call. (In NumPy 2.4's OpenBLAS the
    setting is the whole process's: restored as soon as the calling thread had done its share,
    it let a helper that was still computing multiply on OpenBLAS's threads.)"""
    import time
    set_local = fast_conv.openblas_set_local_threads()
    if set_local is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS with a thread setter")

    def blas_threads(item):
        if item == 1:
            time.sleep(0.2)                            # the helper's item ends well after the caller's
        n = set_local(1)
        set_local(n)
        return n

    before, threads = set_local(3), F.get_num_threads()
    try:
        for n in (2, 1):
            F.set_num_threads(n)
            assert fast_conv.parallel_map(blas_threads, [0, 1]) == [1, 1]
            assert set_local(3) == 3                   # restored after the call
    finally:
        set_local(before)
        F.set_num_threads(threads)


def test_runs_serially_says_what_parallel_map_will_do():
    before = F.get_num_threads()
    try:
        F.set_num_threads(2)
        assert not fast_conv.runs_serially(2) and fast_conv.runs_serially(1)
        inside = fast_conv.parallel_map(lambda item: fast_conv.runs_serially(2), [0, 1])
        assert inside == [True, True]                  # a call made inside another runs serially
        F.set_num_threads(1)
        assert fast_conv.runs_serially(2)
    finally:
        F.set_num_threads(before)


def test_parallel_map_from_several_threads_at_once():
    """Calls made at the same time from different threads all get their own, complete result."""
    import threading
    F.set_num_threads(2)
    x, w, b, stride, padding = make_conv((40, 2, 3, 7, 6, 3, 3, 1, 1), seed=14)
    want = F.conv2d(x, w, b, stride, padding)
    results, errors = [None] * 6, []

    def run(k):
        try:
            results[k] = F.conv2d(x, w, b, stride, padding)
        except BaseException as e:        # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    for r in results:
        assert_array_equal(r, want)


def test_one_blas_thread_sets_and_restores_the_calling_threads_setting():
    set_local = fast_conv.openblas_set_local_threads()   # returns the previous setting
    if set_local is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS with per-thread settings")
    before = set_local(3)
    try:
        with fast_conv.one_blas_thread():
            assert set_local(1) == 1                      # inside: one thread
            with pytest.raises(KeyError):
                with fast_conv.one_blas_thread():
                    raise KeyError("passed on")
            assert set_local(1) == 1                      # the inner one restored the outer's setting
        assert set_local(3) == 3                          # outside: the setting from before
    finally:
        set_local(before)


def test_workspace_is_reused_per_name_shape_dtype_and_thread():
    import threading
    a = fast_conv.workspace("test", (3, 4), np.float32)
    assert a.shape == (3, 4) and a.dtype == np.float32
    assert fast_conv.workspace("test", (3, 4), np.float32) is a
    for other in (("test", (4, 3), np.float32), ("test", (3, 4), np.float64), ("other", (3, 4), np.float32)):
        assert fast_conv.workspace(*other) is not a
    seen = []
    t = threading.Thread(target=lambda: seen.append(fast_conv.workspace("test", (3, 4), np.float32)))
    t.start()
    t.join()
    assert seen[0] is not a                          # each thread has its own
    big = fast_conv.workspace("test big", (200, 2**20), np.uint8)             # 200 MB
    assert fast_conv.workspace("test big", (200, 2**20), np.uint8) is big
    other = fast_conv.workspace("test big 2", (100, 2**20), np.uint8)        # over 256 MB: starts again
    assert fast_conv.workspace("test big", (200, 2**20), np.uint8) is not big
    assert fast_conv.workspace("test big 2", (100, 2**20), np.uint8) is not other


def test_conv2d_backward_twice_gives_the_same_gradients(unroll):
    """The backward reuses scratch arrays (the unrolled dy, the input gradient's shifted rows,
    the dilated dy) whose zeros must stay zeros."""
    # the first case comes again last, after another shape has used scratch arrays of its own
    for case in ((4, 3, 8, 9, 9, 5, 5, 1, 0), (4, 3, 8, 9, 9, 3, 3, 2, 1), (4, 3, 8, 9, 9, 5, 5, 1, 0)):
        x, w, b, stride, padding = make_conv(case, seed=21)
        dy = np.random.default_rng(22).standard_normal(F.conv2d(x, w, b, stride, padding).shape)
        first = conv2d_backward_fast(dy, x, w, stride, padding)
        second = conv2d_backward_fast(dy, x, w, stride, padding)
        for a, b_, want in zip(first, second, F.conv2d_backward_naive(dy, x, w, stride, padding)):
            assert_array_equal(a, b_)
            assert_allclose(a, want, **TOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_of_large_arrays_is_max_with_zero(dtype):
    """Large float arrays go through a kept array of zeros: the same result as np.maximum(x, 0),
    NaN, infinities and signed zeros included, at every call."""
    x = np.random.default_rng(5).standard_normal((6, 8, 12, 12)).astype(dtype)
    x.reshape(-1)[:4] = [np.nan, -np.inf, np.inf, -0.0]
    for _ in range(2):
        y = F.relu(x)
        assert y.dtype == dtype and y is not x
        assert_array_equal(y, np.maximum(x, 0))
        assert np.signbit(y.reshape(-1)[3]) == np.signbit(np.maximum(x, 0).reshape(-1)[3])
    assert_array_equal(F.relu(x), F.relu_naive(x))               # the loops agree, NaN and infinities included


def test_conv2d_forward_chunk_unrolls_into_cols_out(unroll):
    x, w, b, stride, padding = make_conv((3, 2, 3, 9, 8, 3, 3, 2, 1), seed=23)
    geometry = shapes.check_conv2d(x, w, b, stride, padding)
    want_y, want = fast_conv.conv2d_forward_chunk(x, w, b, stride, padding)
    cols = np.empty(fast_conv.unrolled_shape(x.shape, w.shape, geometry), dtype=x.dtype)
    y, cache = fast_conv.conv2d_forward_chunk(x, w, b, geometry=geometry, cols_out=cols)
    assert cache.kind == want.kind == unroll and cache.cols is cols
    assert_array_equal(cols, want.cols)
    assert_array_equal(y, want_y)
    for bad in (cols[:, :1], cols.astype(np.float32), np.asfortranarray(cols)):
        with pytest.raises(ValueError, match="cols_out must be a C-contiguous float64 array"):
            fast_conv.conv2d_forward_chunk(x, w, b, stride, padding, cols_out=bad)


def test_conv2d_by_hand():
    # y[i, j] = sum_{u, v} w[u, v] x[i + u, j + v] + b
    x = np.array([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]]).reshape(1, 1, 3, 3)
    w = np.array([[1.0, 2], [3, 4]]).reshape(1, 1, 2, 2)
    b = np.array([0.5])
    # 1*1 + 2*2 + 3*4 + 4*5 = 37;  2 + 6 + 15 + 24 = 47;  4 + 10 + 21 + 32 = 67;  5 + 12 + 24 + 36 = 77
    expected = np.array([[37.5, 47.5], [67.5, 77.5]]).reshape(1, 1, 2, 2)
    assert_array_equal(F.conv2d(x, w, b), expected)
    assert_array_equal(F.conv2d_naive(x, w, b), expected)

    # backward with dy = 1 everywhere: dw[u, v] = sum of the inputs it multiplied,
    # dx[i, j] = sum of the weights that touched x[i, j], db = number of outputs
    dy = np.ones((1, 1, 2, 2))
    for backward in (conv2d_backward_fast, conv2d_backward_im2col, F.conv2d_backward_naive):
        dx, dw, db = backward(dy, x, w)
        assert_array_equal(dw, np.array([[12.0, 16], [24, 28]]).reshape(1, 1, 2, 2))
        assert_array_equal(db, [4.0])
        assert_array_equal(dx, np.array([[1.0, 3, 2], [4, 10, 6], [3, 7, 4]]).reshape(1, 1, 3, 3))
    assert_array_equal(F.conv2d_forward(x, w, b)[0], expected)
    # im2col by hand: column (i, j) is the window of output (i, j), rows in the order (u, v)
    assert_array_equal(F.im2col(x, 2)[0], [[1.0, 2, 4, 5], [2, 3, 5, 6], [4, 5, 7, 8], [5, 6, 8, 9]])


def test_conv2d_stride_and_padding_by_hand():
    # a 2x2 image padded by 1 is 4x4; a 2x2 kernel of ones moved by 2 sees each pixel once
    x = np.array([[1.0, 2], [3, 4]]).reshape(1, 1, 2, 2)
    w = np.ones((1, 1, 2, 2))
    y = F.conv2d(x, w, np.zeros(1), stride=2, padding=1)
    assert_array_equal(y, x)
    # two filters, two channels: the second filter takes channel 1 minus channel 0
    x2 = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 5.0)])[None]          # (1, 2, 2, 2)
    w2 = np.zeros((2, 2, 1, 1))
    w2[0, 0] = 1.0
    w2[1, 0], w2[1, 1] = -1.0, 1.0
    y2 = F.conv2d(x2, w2, np.array([0.0, 10.0]))
    assert_array_equal(y2[0, 0], np.full((2, 2), 1.0))
    assert_array_equal(y2[0, 1], np.full((2, 2), 14.0))


# --------------------------------------------------------------------------- conv_output_size
def test_conv_output_size_formula():
    checked = 0
    for n in range(1, 13):
        for k in range(1, 7):
            for s in range(1, 5):
                for p in range(0, 4):
                    if k <= n + 2 * p:
                        assert F.conv_output_size(n, k, s, p) == math.floor((n + 2 * p - k) / s) + 1, (n, k, s, p)
                        checked += 1
                    else:
                        with pytest.raises(ValueError, match="does not fit"):
                            F.conv_output_size(n, k, s, p)
    assert checked > 1000
    assert F.conv_output_size(28, 5) == 24
    assert F.conv_output_size(24, 5) == 20
    assert F.conv_output_size(20, 2, 2) == 10
    assert F.conv_output_size(5, 2, 2) == 2          # the remainder row is dropped


@pytest.mark.parametrize("args, word", [
    ((5, 6, 1, 0), "does not fit"),      # kernel larger than the input
    ((3, 8, 1, 2), "does not fit"),      # ... even once padded (3 + 4 = 7 < 8)
    ((5, 3, 0, 0), "stride"),
    ((5, 3, -1, 0), "stride"),
    ((5, 3, 1, -1), "padding"),
    ((5, 0, 1, 0), "kernel"),
    ((0, 1, 1, 0), "input"),
])
def test_conv_output_size_rejects_impossible(args, word):
    with pytest.raises(ValueError, match=word):
        F.conv_output_size(*args)


# --------------------------------------------------------------------------- bad inputs
def test_conv2d_rejects_bad_shapes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = np.zeros(4)
    for fn in (F.conv2d, F.conv2d_naive, F.conv2d_forward, fast_conv.conv2d_forward):
        with pytest.raises(ValueError, match="channels"):
            fn(x[:, :2], w, b)
        with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
            fn(x[0], w, b)
        with pytest.raises(ValueError, match=r"\(F, C, KH, KW\)"):
            fn(x, w[0], b)
        with pytest.raises(ValueError, match="b must have shape"):
            fn(x, w, np.zeros(3))
        with pytest.raises(ValueError, match="does not fit"):
            fn(x, rng.standard_normal((4, 3, 7, 3)), b)
        with pytest.raises(ValueError, match="stride"):
            fn(x, w, b, stride=0)
        with pytest.raises(ValueError, match="stride"):
            fn(x, w, b, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="channels"):
        conv2d_backward_fast(np.zeros((2, 4, 4, 4)), x[:, :2], w)
    with pytest.raises(ValueError, match="channels"):
        conv2d_backward_im2col(np.zeros((2, 4, 4, 4)), x[:, :2], w)


def test_pool_and_dense_reject_bad_shapes():
    x = np.zeros((1, 2, 5, 5))
    for fn in (F.maxpool2d, F.avgpool2d, F.maxpool2d_naive, F.avgpool2d_naive):
        with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
            fn(x[0], 2, 2)
        with pytest.raises(ValueError, match="does not fit"):
            fn(x, 6, 1)
        with pytest.raises(ValueError, match="stride"):
            fn(x, 2, 0)
    with pytest.raises(ValueError, match="dense expects"):
        F.dense(np.zeros((2, 3)), np.zeros((4, 5)), np.zeros(5))


@pytest.mark.parametrize("labels, word", [
    ([0, 3], "labels must lie"),
    ([-1, 0], "labels must lie"),
    ([0.0, 1.0], "integer"),
    ([0, 1, 2], "shape"),
])
def test_losses_reject_bad_labels(labels, word):
    logits = np.zeros((2, 3))
    y = np.array(labels)
    for fn in (F.cross_entropy, F.cross_entropy_backward, losses.softmax_cross_entropy, F.nll_loss):
        with pytest.raises(ValueError, match=word):
            fn(logits, y)
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        F.cross_entropy(np.zeros(3), np.array([0]))


# --------------------------------------------------------------------------- pooling
# (N, C, H, W, kernel_size, stride)
POOL_CASES = [
    (2, 3, 5, 5, 2, 2),                # remainder row and column
    (1, 2, 7, 9, 3, 1),                # overlapping windows
    (2, 1, 6, 7, (2, 3), (1, 2)),      # non-square kernel and stride, overlapping
    (3, 2, 8, 5, 3, 2),                # overlapping, remainder
    (1, 1, 4, 6, 1, 1),
    (2, 2, 9, 7, (3, 1), (3, 2)),
    (1, 3, 7, 7, 2, 3),                # stride > kernel: gaps
    (2, 2, 5, 8, (1, 3), (2, 1)),
    (1, 1, 3, 3, 3, 3),
    (2, 1, 7, 4, 2, 1),
]
POOLS = {
    "max": (F.maxpool2d, maxpool2d_backward_from_x, F.maxpool2d_naive, F.maxpool2d_backward_naive),
    "avg": (F.avgpool2d, avgpool2d_backward_from_x, F.avgpool2d_naive, F.avgpool2d_backward_naive),
}


def pool_id(case):
    return "N{}C{}-{}x{}-k{}-s{}".format(*case).replace(" ", "")


@pytest.mark.parametrize("kind", list(POOLS))
@pytest.mark.parametrize("case", POOL_CASES, ids=pool_id)
def test_pool_matches_naive(kind, case):
    fwd, bwd, fwd_naive, bwd_naive = POOLS[kind]
    N, C, H, W, k, s = case
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, C, H, W))
    y = fwd(x, k, s)
    (KH, KW), (sh, sw) = pair(k), pair(s)
    assert y.shape == (N, C, F.conv_output_size(H, KH, sh), F.conv_output_size(W, KW, sw))
    assert_allclose(y, fwd_naive(x, k, s), **TOL)
    dy = rng.standard_normal(y.shape)
    dx = bwd(dy, x, k, s)
    assert dx.shape == x.shape
    assert_allclose(dx, bwd_naive(dy, x, k, s), **TOL)


@pytest.mark.parametrize("case", POOL_CASES, ids=pool_id)
def test_pool_against_independent_reference(case):
    """Windows cut out with explicit slices; the max and the mean of each, and the
    gradient sent to the arg-max or spread evenly, written out once more here."""
    N, C, H, W, k, s = case
    (KH, KW), (sh, sw) = pair(k), pair(s)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((N, C, H, W))
    H_out, W_out = (H - KH) // sh + 1, (W - KW) // sw + 1
    win = np.array([[x[:, :, i * sh:i * sh + KH, j * sw:j * sw + KW] for j in range(W_out)] for i in range(H_out)])
    win = win.transpose(2, 3, 0, 1, 4, 5).reshape(N, C, H_out, W_out, KH * KW)    # (N, C, H_out, W_out, KH*KW)
    assert_allclose(F.maxpool2d(x, k, s), win.max(axis=-1), **TOL)
    assert_allclose(F.avgpool2d(x, k, s), win.mean(axis=-1), **TOL)
    dy = rng.standard_normal((N, C, H_out, W_out))
    dx_max, dx_avg = np.zeros_like(x), np.zeros_like(x)
    arg = win.argmax(axis=-1)
    for n, c, i, j in np.ndindex(N, C, H_out, W_out):
        u, v = divmod(arg[n, c, i, j], KW)
        dx_max[n, c, i * sh + u, j * sw + v] += dy[n, c, i, j]
        dx_avg[n, c, i * sh:i * sh + KH, j * sw:j * sw + KW] += dy[n, c, i, j] / (KH * KW)
    assert_allclose(maxpool2d_backward_from_x(dy, x, k, s), dx_max, **TOL)
    assert_allclose(avgpool2d_backward_from_x(dy, x, k, s), dx_avg, **TOL)


@pytest.mark.parametrize("case", POOL_CASES, ids=pool_id)
def test_maxpool_ties_match_naive(case):
    """Small integers make many ties, also across overlapping windows."""
    N, C, H, W, k, s = case
    x = np.random.default_rng(5).integers(0, 3, (N, C, H, W)).astype(np.float64)
    dy = np.random.default_rng(6).standard_normal(F.maxpool2d(x, k, s).shape)
    assert_array_equal(F.maxpool2d(x, k, s), F.maxpool2d_naive(x, k, s))
    assert_allclose(maxpool2d_backward_from_x(dy, x, k, s), F.maxpool2d_backward_naive(dy, x, k, s), **TOL)


def test_maxpool_tie_goes_to_first_element_by_hand():
    x = np.array([[5.0, 5, 1, 2],
                  [5, 5, 2, 2]]).reshape(1, 1, 2, 4)
    dy = np.array([[3.0, 7]]).reshape(1, 1, 1, 2)
    expected = np.array([[3.0, 0, 0, 7],
                         [0, 0, 0, 0]]).reshape(1, 1, 2, 4)
    assert_array_equal(F.maxpool2d(x, 2, 2), [[[[5.0, 2]]]])
    assert_array_equal(maxpool2d_backward_from_x(dy, x, 2, 2), expected)
    assert_array_equal(F.maxpool2d_backward_naive(dy, x, 2, 2), expected)
    # a constant image with overlapping windows: each window sends to its top-left element
    ones = np.ones((1, 1, 3, 3))
    dx = maxpool2d_backward_from_x(np.ones((1, 1, 2, 2)), ones, 2, 1)
    assert_array_equal(dx[0, 0], [[1.0, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_pool_with_remainder_by_hand():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    assert_array_equal(F.maxpool2d(x, 2, 2)[0, 0], [[6.0, 8], [16, 18]])
    # (0+1+5+6)/4, (2+3+7+8)/4, (10+11+15+16)/4, (12+13+17+18)/4
    assert_array_equal(F.avgpool2d(x, 2, 2)[0, 0], [[3.0, 5], [13, 15]])
    dy = np.ones((1, 1, 2, 2))
    dx_max = np.zeros((5, 5))
    dx_max[[1, 1, 3, 3], [1, 3, 1, 3]] = 1
    assert_array_equal(maxpool2d_backward_from_x(dy, x, 2, 2)[0, 0], dx_max)
    dx_avg = np.zeros((5, 5))
    dx_avg[:4, :4] = 0.25                        # the last row and column were never pooled
    assert_array_equal(avgpool2d_backward_from_x(dy, x, 2, 2)[0, 0], dx_avg)


# --------------------------------------------------------------------------- dense
@pytest.mark.parametrize("N, D, M", [(1, 1, 1), (3, 5, 4), (2, 7, 3), (4, 2, 6)])
def test_dense_matches_naive(N, D, M):
    rng = np.random.default_rng(N * 100 + D * 10 + M)
    x, w, b = rng.standard_normal((N, D)), rng.standard_normal((D, M)), rng.standard_normal(M)
    y = F.dense(x, w, b)
    assert y.shape == (N, M)
    assert_allclose(y, F.dense_naive(x, w, b), **TOL)
    assert_allclose(y, np.einsum("nd,dm->nm", x, w) + b, **TOL)
    dy = rng.standard_normal((N, M))
    for got, want in zip(F.dense_backward(dy, x, w), F.dense_backward_naive(dy, x, w)):
        assert got.shape == want.shape
        assert_allclose(got, want, **TOL)


def test_dense_by_hand():
    x = np.array([[1.0, 2]])
    w = np.array([[1.0, 0, -1], [2, 1, 0]])
    b = np.array([0.0, 1, 2])
    assert_array_equal(F.dense(x, w, b), [[5.0, 3, 1]])
    dx, dw, db = F.dense_backward(np.array([[1.0, 0, 0]]), x, w)
    assert_array_equal(dx, [[1.0, 2]])
    assert_array_equal(dw, [[1.0, 0, 0], [2, 0, 0]])
    assert_array_equal(db, [1.0, 0, 0])


# --------------------------------------------------------------------------- activations
ACTIVATIONS = {
    "relu": (F.relu, F.relu_backward, F.relu_naive, F.relu_backward_naive),
    "sigmoid": (F.sigmoid, F.sigmoid_backward, F.sigmoid_naive, F.sigmoid_backward_naive),
    "arctan": (F.arctan, F.arctan_backward, F.arctan_naive, F.arctan_backward_naive),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4, 5)])
def test_activation_matches_naive(name, shape):
    f, df, f_naive, df_naive = ACTIVATIONS[name]
    rng = np.random.default_rng(len(shape))
    x = 3 * rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    assert f(x).shape == shape and df(dy, x).shape == shape
    assert_allclose(f(x), f_naive(x), **TOL)
    assert_allclose(df(dy, x), df_naive(dy, x), **TOL)


def test_activations_against_references():
    x = np.linspace(-6, 6, 41)
    dy = np.cos(x)
    assert_allclose(F.relu(x), np.where(x > 0, x, 0.0))
    assert_allclose(F.sigmoid(x), special.expit(x), rtol=1e-14)
    s = special.expit(x)
    assert_allclose(F.sigmoid_backward(dy, x), dy * s * (1 - s), rtol=1e-12, atol=1e-15)
    assert_allclose(F.arctan_backward(dy, x), dy / (1 + x ** 2), rtol=1e-14)
    # by hand
    assert_array_equal(F.relu(np.array([-2.0, 0.0, 3.0])), [0.0, 0.0, 3.0])
    assert_array_equal(F.relu_backward(np.ones(3), np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 1.0])
    assert F.sigmoid(np.array([0.0]))[0] == 0.5
    assert F.sigmoid_backward(np.array([1.0]), np.array([0.0]))[0] == 0.25
    assert_allclose(F.arctan(np.array([1.0, -1.0])), [math.pi / 4, -math.pi / 4], rtol=1e-15)
    assert F.arctan_backward(np.array([1.0]), np.array([1.0]))[0] == 0.5


def test_sigmoid_is_finite_at_large_inputs():
    x = np.array([-1000.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no overflow warning either
        with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
            s = F.sigmoid(x)
            g = F.sigmoid_backward(np.ones(2), x)
            s_naive = F.sigmoid_naive(x)
    assert_array_equal(s, [0.0, 1.0])
    assert_array_equal(s_naive, [0.0, 1.0])
    assert np.all(np.isfinite(g)) and np.all(g == 0)


# --------------------------------------------------------------------------- softmax and losses
@pytest.mark.parametrize("N, K", [(1, 2), (4, 3), (5, 10)])
def test_softmax_and_log_softmax_match_naive_and_scipy(N, K):
    z = 4 * np.random.default_rng(K).standard_normal((N, K))
    p = F.softmax(z)
    assert_allclose(p, F.softmax_naive(z), **TOL)
    assert_allclose(p, special.softmax(z, axis=1), rtol=1e-12)
    assert_allclose(p.sum(axis=1), np.ones(N), rtol=1e-14)
    assert np.all(p > 0)
    assert_allclose(F.log_softmax(z), F.log_softmax_naive(z), **TOL)
    assert_allclose(F.log_softmax(z), special.log_softmax(z, axis=1), rtol=1e-12)
    assert_allclose(F.softmax(z + 123.0), p, rtol=1e-12)   # invariant to a shift
    assert_allclose(F.softmax(z.T, axis=0), p.T, **TOL)


def test_softmax_and_cross_entropy_on_huge_logits():
    z = np.array([[1000.0, -1000.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
            p = F.softmax(z)
            logp = F.log_softmax(z)
            losses_ = [F.cross_entropy(z, np.array([k])) for k in range(3)]
            grads = [F.cross_entropy_backward(z, np.array([k])) for k in range(3)]
            fused = [losses.softmax_cross_entropy(z, np.array([k])) for k in range(3)]
    # log-sum-exp: lse = 1000 + log(1 + e^-2000 + e^-1000) = 1000, so log p = z - 1000
    assert_array_equal(p, [[1.0, 0.0, 0.0]])
    assert_array_equal(logp, [[0.0, -2000.0, -1000.0]])
    assert losses_ == [0.0, 2000.0, 1000.0]
    assert [loss for loss, _ in fused] == [0.0, 2000.0, 1000.0]
    assert_array_equal(grads[0], [[0.0, 0.0, 0.0]])
    assert_array_equal(grads[1], [[1.0, -1.0, 0.0]])
    for g, (_, g2) in zip(grads, fused):
        assert np.all(np.isfinite(g))
        assert_array_equal(g2, g)
    assert F.cross_entropy(-z, np.array([1])) == 0.0


def test_cross_entropy_by_hand():
    # two equal logits: p = 1/2 each, loss log 2; batch mean of log 2 and of -log(e/(e+1))
    z = np.array([[0.0, 0.0], [1.0, 0.0]])
    y = np.array([0, 0])
    expected = (math.log(2) + math.log(1 + math.exp(-1))) / 2
    assert F.cross_entropy(z, y) == pytest.approx(expected, rel=1e-14)
    p1 = math.exp(1) / (math.exp(1) + 1)
    assert_allclose(F.cross_entropy_backward(z, y), [[-0.25, 0.25], [(p1 - 1) / 2, (1 - p1) / 2]], rtol=1e-14)


@pytest.mark.parametrize("N, K", [(1, 2), (4, 3), (6, 10)])
def test_cross_entropy_matches_naive_and_onehot_formula(N, K):
    rng = np.random.default_rng(N + K)
    z = 3 * rng.standard_normal((N, K))
    y = rng.integers(0, K, N)
    p = special.softmax(z, axis=1)
    onehot = np.eye(K)[y]
    loss = F.cross_entropy(z, y)
    assert loss == pytest.approx(F.cross_entropy_naive(z, y), rel=1e-12)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(N), y])), rel=1e-12)
    assert F.nll_loss(F.log_softmax(z), y) == pytest.approx(F.nll_loss_naive(F.log_softmax(z), y), rel=1e-12)
    grad = F.cross_entropy_backward(z, y)
    assert_allclose(grad, (p - onehot) / N, rtol=1e-12, atol=1e-15)
    assert_allclose(grad, F.cross_entropy_backward_naive(z, y), **TOL)
    fused_loss, fused_grad = losses.softmax_cross_entropy(z, y)
    assert isinstance(fused_loss, float)
    assert fused_loss == pytest.approx(loss, rel=1e-12)
    assert_allclose(fused_grad, grad, **TOL)


# --------------------------------------------------------------------------- numerical gradients
@pytest.mark.parametrize("case", [CONV_CASES[i] for i in (1, 2, 3, 5, 6, 12)], ids=conv_id)
def test_conv2d_gradcheck(case):
    x, w, b, stride, padding = make_conv(case, seed=7)
    errors = check_function(
        lambda x, w, b: F.conv2d(x, w, b, stride, padding),
        lambda dy, x, w, b: conv2d_backward_fast(dy, x, w, stride, padding),
        x, w, b, rng=0, h=STEP)
    assert len(errors) == 3
    assert max(errors) < GRAD_TOL, errors
    errors = check_function(
        lambda x, w, b: F.conv2d_forward(x, w, b, stride, padding)[0],
        lambda dy, x, w, b: conv2d_backward_im2col(dy, x, w, stride, padding),
        x, w, b, rng=0, h=STEP)
    assert max(errors) < GRAD_TOL, errors


@pytest.mark.parametrize("kind", list(POOLS))
@pytest.mark.parametrize("case", [POOL_CASES[i] for i in (0, 1, 2, 5)], ids=pool_id)
def test_pool_gradcheck(kind, case):
    fwd, bwd = POOLS[kind][:2]
    N, C, H, W, k, s = case
    x = np.random.default_rng(8).standard_normal((N, C, H, W))
    errors = check_function(lambda x: fwd(x, k, s), lambda dy, x: bwd(dy, x, k, s), x, rng=1, h=STEP)
    assert errors[0] < GRAD_TOL, errors


def test_dense_gradcheck():
    rng = np.random.default_rng(9)
    x, w, b = rng.standard_normal((3, 5)), rng.standard_normal((5, 4)), rng.standard_normal(4)
    errors = check_function(F.dense, lambda dy, x, w, b: F.dense_backward(dy, x, w), x, w, b, rng=2, h=STEP)
    assert len(errors) == 3
    assert max(errors) < GRAD_TOL, errors


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_gradcheck(name):
    f, df = ACTIVATIONS[name][:2]
    x = np.random.default_rng(10).standard_normal((2, 3, 4))
    x += np.sign(x) * 0.05                        # away from the ReLU kink at 0
    errors = check_function(f, df, x, rng=3, h=STEP)
    assert errors[0] < GRAD_TOL, errors


@pytest.mark.parametrize("N, K", [(1, 3), (5, 10)])
def test_cross_entropy_gradcheck(N, K):
    rng = np.random.default_rng(11)
    z = rng.standard_normal((N, K))
    y = rng.integers(0, K, N)
    errors = check_function(lambda z: F.cross_entropy(z, y),
                            lambda dy, z: dy * F.cross_entropy_backward(z, y), z, rng=4, h=STEP)
    assert errors[0] < GRAD_TOL, errors
    errors = check_function(lambda z: losses.softmax_cross_entropy(z, y)[0],
                            lambda dy, z: dy * losses.softmax_cross_entropy(z, y)[1], z, rng=5, h=STEP)
    assert errors[0] < GRAD_TOL, errors


# --------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_matches_naive(p, dtype):
    x = np.random.default_rng(20).standard_normal((3, 2, 4, 5)).astype(dtype)
    y, mask = F.dropout_forward(x, p, np.random.default_rng(7))
    y_naive, mask_naive = F.dropout_naive(x, p, np.random.default_rng(7))
    assert y.dtype == mask.dtype == dtype and y.shape == mask.shape == x.shape
    assert_array_equal(y, y_naive)
    assert_array_equal(mask, mask_naive)
    # every entry is dropped (0) or kept and scaled by 1 / (1 - p)
    kept = mask != 0
    assert_allclose(mask[kept], 1 / (1 - p), rtol=1e-6)
    assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-6)
    assert_array_equal(y[~kept], 0)
    if p == 0:
        assert kept.all()


def test_dropout_forward_backward_by_hand():
    # with a generator in a known state the mask is u >= p entry by entry
    u = np.random.default_rng(3).random(6)
    x = np.arange(1.0, 7.0)
    y, mask = F.dropout_forward(x, 0.5, np.random.default_rng(3))
    assert_array_equal(mask, np.where(u >= 0.5, 2.0, 0.0))
    assert_array_equal(y, np.where(u >= 0.5, 2 * x, 0.0))
    dy = np.linspace(-1, 1, 6)
    assert_array_equal(F.dropout_backward(dy, mask), np.where(u >= 0.5, 2 * dy, 0.0))
    with pytest.raises(ValueError, match="shape"):
        F.dropout_backward(dy[:5], mask)


def test_dropout_gradcheck_with_a_fixed_mask():
    x = np.random.default_rng(21).standard_normal((4, 7))
    _, mask = F.dropout_forward(x, 0.4, np.random.default_rng(1))
    assert 0 < np.count_nonzero(mask) < mask.size      # some entries kept, some dropped
    errors = check_function(lambda x: x * mask, lambda dy, x: F.dropout_backward(dy, mask), x, rng=6, h=STEP)
    assert errors[0] < GRAD_TOL, errors


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_expectation_is_the_identity(p):
    # E[y] = x: over n independent entries the mean of y / x has standard deviation
    # sqrt(p / ((1 - p) n)); a correct scaling stays within 5 of them (a false alarm has
    # probability ~6e-7), a missing 1 / (1 - p) misses by a factor 1 - p.
    n = 200_000
    x = np.full(n, 3.0)
    y, mask = F.dropout_forward(x, p, np.random.default_rng(11))
    std = math.sqrt(p / ((1 - p) * n))
    assert abs(y.mean() / 3.0 - 1) < 5 * std
    assert abs(np.mean(mask == 0) - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_dropout_draws_a_new_mask_from_the_generator():
    rng = np.random.default_rng(0)
    x = np.ones((50, 50))
    _, m1 = F.dropout_forward(x, 0.5, rng)
    _, m2 = F.dropout_forward(x, 0.5, rng)
    assert not np.array_equal(m1, m2)
    _, m1_again = F.dropout_forward(x, 0.5, np.random.default_rng(0))
    assert_array_equal(m1, m1_again)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), float("inf")])
def test_dropout_rejects_invalid_p(p):
    for f in (F.dropout_forward, F.dropout_naive):
        with pytest.raises(ValueError, match="0 <= p < 1"):
            f(np.ones(3), p, 0)


@pytest.mark.parametrize("p", [None, "0.5", True, [0.5]])
def test_dropout_rejects_non_numbers(p):
    with pytest.raises(TypeError, match="real number"):
        F.dropout_forward(np.ones(3), p, 0)


# --------------------------------------------------------------------------- fast max pooling
def maxpool2d_backward_fast(dy, x, kernel_size=2, stride=None):
    """The fast pair MaxPool2D trains with: its forward for the cache, then its backward."""
    return fast_conv.maxpool2d_backward(dy, fast_conv.maxpool2d_forward(x, kernel_size, stride)[1])


@pytest.mark.parametrize("case", POOL_CASES, ids=pool_id)
@pytest.mark.parametrize("values", ["normal", "ties", "relu"])
def test_fast_maxpool_matches_readable_and_naive(case, values):
    """Bit for bit: the same maximum, and dy routed to the same (first) arg-max, with random
    values, small integers (many ties, also across overlapping windows) and ReLU outputs
    (windows of zeros), in float32 and float64."""
    N, C, H, W, k, s = case
    rng = np.random.default_rng(7)
    x = {"normal": rng.standard_normal((N, C, H, W)),
         "ties": rng.integers(0, 3, (N, C, H, W)).astype(np.float64),
         "relu": np.maximum(rng.standard_normal((N, C, H, W)), 0)}[values]
    for dtype in (np.float64, np.float32):
        xd = x.astype(dtype)
        x_before = xd.copy()
        y, cache = fast_conv.maxpool2d_forward(xd, k, s)
        assert_array_equal(xd, x_before)                               # the input is left alone
        assert y.dtype == dtype and cache.kind == "fast_max"
        assert_array_equal(y, F.maxpool2d(xd, k, s))
        assert_array_equal(y, F.maxpool2d_naive(xd, k, s))
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = fast_conv.maxpool2d_backward(dy, cache)
        assert dx.dtype == dtype and dx.shape == xd.shape
        assert_array_equal(dx, maxpool2d_backward_from_x(dy, xd, k, s))
        assert_allclose(dx, F.maxpool2d_backward_naive(dy, xd, k, s), rtol=1e-6, atol=1e-6)


def test_fast_maxpool_by_hand_and_its_cache():
    x = np.array([[5.0, 5, 1, 2, 9],
                  [5, 5, 2, 3, 9]]).reshape(1, 1, 2, 5)           # the last column is never pooled
    y, cache = fast_conv.maxpool2d_forward(x, 2, 2)
    assert_array_equal(y, [[[[5.0, 3]]]])
    assert_array_equal(cache.argmax, [[[[0, 3]]]])                 # the tie goes to offset 0; 3 = (1, 1)
    dx = fast_conv.maxpool2d_backward(np.array([[[[3.0, 7]]]]), cache)
    assert_array_equal(dx, [[[[3.0, 0, 0, 0, 0], [0, 0, 0, 7, 0]]]])
    with pytest.raises(ValueError, match="shape of the forward pass's output"):
        fast_conv.maxpool2d_backward(np.ones((1, 1, 1, 3)), cache)
    with pytest.raises(TypeError, match="fast_conv.maxpool2d_forward"):
        fast_conv.maxpool2d_backward(np.ones((1, 1, 1, 2)), F.maxpool2d_forward(x, 2, 2)[1])
    with pytest.raises(TypeError, match="maxpool2d_forward"):
        F.maxpool2d_backward(np.ones((1, 1, 1, 2)), cache)
