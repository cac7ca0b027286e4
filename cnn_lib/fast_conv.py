"""How the convolution is made fast: the code that trains the book's networks.

:func:`cnn_lib.functional.conv2d_forward` is the convolution of part II in its plainest
vectorized form: unroll every window of the input into a column (:func:`~cnn_lib.functional.im2col`),
then one matrix product with the filters. It is correct and already hundreds of times faster
than the loops, but for a batch of MNIST images it is far from what the machine can do. This
module computes exactly the same sums, and is what :class:`cnn_lib.Conv2D` and
:func:`cnn_lib.functional.conv2d` run. Four ideas make the difference:

1. **Unroll one kernel row at a time.** im2col copies the input ``KH * KW`` times (25 times for
   a 5x5 kernel), and that copy, not the arithmetic, takes most of the time. Here the input is
   unrolled along the kernel *width* only (5 times): ``cols[n, c, kw, h, j] = xp[n, c, h, j*sw + kw]``.
   For each kernel row ``kh`` the rows ``kh, kh + sh, ...`` of ``cols`` are a ``(C*KW, H_out*W_out)``
   matrix per image (a view, no copy, when ``sh == 1``), and ``KH`` matrix products add up the
   rows' contributions. With few filters (the seed network's 8) products of ``F`` rows are too
   thin to be fast, and the roles of rows and columns swap: the input is unrolled along the
   kernel *height*, whole rows (``cols[n, c, kh, i, t] = xp[n, c, i*sh + kh, t]``, copies of long
   contiguous blocks), one product applies every kernel column to every column, and the
   product's columns are added with their shifts. When ``C*KW`` is small (the first layer:
   1 channel, 5 columns) the products would be too shallow to be fast, and the whole window is
   unrolled instead, as in im2col (cheap with one channel). Each chunk's cache says which one it
   kept (``kind`` is ``"rows"``, ``"columns"`` or ``"windows"``).
2. **Keep the unrolled input for backward.** ``dw`` is one product of ``dy`` with the same
   columns, so the backward pass never unrolls the input again; ``dx`` is the *full convolution*
   of ``dy`` (dilated by the stride) with the kernel: the cross-correlation of that ``dy``, padded
   by ``K - 1``, with the kernel flipped in both axes. With stride 1 it is computed like the forward with few
   filters, rows and columns swapped: ``dy`` unrolled along the kernel width (the same array
   that ``dw`` needs with few filters) meets every kernel row in one product, whose rows are
   added with their shifts; with a larger stride, by the forward code itself, on ``dy`` dilated
   by the stride.
3. **Chunks that fit in the cache.** A batch is cut into chunks of 16 images (more when the maps
   are small, see :func:`chunks`): the unrolled chunk stays in the processor's cache instead of
   making 40-60 MB temporaries. Chunks depend only on the shapes, never on the number of
   threads, so the results are bit-for-bit the same with 1, 2 or more threads.
4. **Threads, and BLAS told to stay out of the way.** NumPy's matrix products and copies release
   the GIL, so plain Python threads run the chunks in parallel (:func:`parallel_map`,
   :func:`set_num_threads`). While they run, OpenBLAS (NumPy's BLAS in the Linux and Windows
   wheels) is asked to do its products on a single thread: otherwise every small product wakes
   OpenBLAS's own threads and the cores are oversubscribed. A network with convolutions runs
   its whole pass that way (:func:`one_blas_thread`, used by :class:`cnn_lib.Sequential`).
   For training, :meth:`cnn_lib.Sequential.train_step` goes one step further: each thread
   takes one half of the batch through the *whole* network, forward and backward (data
   parallelism), so that the pooling, the dense layers and the loss run on both cores too, and
   the threads meet once per step instead of at every convolution; inside a half, the chunks
   run one after the other (a :func:`parallel_map` call made inside another runs serially).
   Inference (``forward(x, train=False)``) cuts its batches in halves the same way.

Max pooling gets the same treatment in a smaller way (:func:`maxpool2d_forward`): the readable
version compares every input with the window's maximum again in backward to find where the
gradient goes; here the forward pass remembers, for each window, *which* of its ``KH * KW``
offsets held the first maximum (one byte per output), and backward only routes ``dy`` there.

The pair :func:`conv2d_forward` / :func:`conv2d_backward` has the same signatures as
:func:`cnn_lib.functional.conv2d_forward` / :func:`cnn_lib.functional.conv2d_backward`; the tests
compare the two with each other and with the loops of :func:`cnn_lib.functional.conv2d_naive`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .shapes import check_conv2d, check_dy, check_pool2d, conv_output_size, pair

__all__ = [
    "FastConvCache", "ChunkCache", "conv2d_forward", "conv2d_backward",
    "conv2d_forward_chunk", "conv2d_backward_chunk", "chunks", "parallel_map",
    "set_num_threads", "get_num_threads", "CHUNK", "CHUNK_POSITIONS", "FULL_UNROLL_BELOW",
    "FEW_FILTERS_BELOW",
    "FastPoolCache", "maxpool2d_forward", "maxpool2d_backward", "one_blas_thread",
    "openblas_set_local_threads", "workspace", "unrolled_shape", "unroll_kind", "runs_serially",
]


class ChunkCache(NamedTuple):
    """What :func:`conv2d_backward_chunk` needs from the forward pass of one chunk.

    ``kind`` says how the input was unrolled: ``"windows"`` (whole windows, im2col:
    ``cols (N, C, KH, KW, H_out, W_out)``), ``"rows"`` (along the kernel width only, for one
    product per kernel row: ``cols (N, C, KW, Hp, W_out)``) or ``"columns"`` (along the kernel
    height only, whole rows, for one product for all kernel columns: ``cols (N, C, KH, H_out, Wp)``)."""
    kind: str
    cols: np.ndarray


class FastConvCache(NamedTuple):
    """What :func:`conv2d_backward` needs from :func:`conv2d_forward`: one
    :class:`ChunkCache` per chunk of the batch, and the arguments of the forward pass.
    ``kind`` is always ``"fast"`` (the readable version's cache says ``"im2col"``)."""
    kind: str
    x_shape: tuple
    w: np.ndarray
    stride: tuple
    padding: tuple
    chunks: list


def _pad(x, ph, pw):
    """Zero-pad the two spatial axes of ``x (N, C, H, W)``."""
    if ph == 0 and pw == 0:
        return x
    N, C, H, W = x.shape
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)   # (cheaper than np.pad)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    return xp


# --------------------------------------------------------------------------- threads
# The fast convolution cuts a batch into chunks of at most CHUNK images (so that the
# unrolled input stays in cache) and, like PyTorch, spreads the chunks over the cores.
# NumPy's matrix products and copies release the GIL, so plain threads run them in
# parallel: the calling thread takes every T-th chunk and T - 1 helper threads the others.
# Chunks are cut the same way whatever the number of threads, so results do not depend on it.
#
# While they run, OpenBLAS (NumPy's BLAS in the Linux and Windows wheels) is asked to do its
# matrix products on one thread: otherwise every small product wakes OpenBLAS's own threads,
# the cores are oversubscribed and a training step is ~30% slower. Its setter is meant for the
# calling thread only but sets the whole process's (see openblas_set_local_threads), so the
# setting is made before the helpers start and restored only after they have all finished;
# each helper also sets it for its job, which is what a per-thread setting would need. With
# another BLAS this step is skipped.
# A Sequential with convolutions runs its whole forward and backward pass inside
# one_blas_thread(), so that its dense layers' products do not wake OpenBLAS's threads either.
CHUNK = 16
CHUNK_POSITIONS = 24 * 24
FULL_UNROLL_BELOW = 16   # unroll whole kernel windows when C*KW is below this (see the forward)
FEW_FILTERS_BELOW = 16   # unroll whole rows, one product for all kernel columns, below this many filters
_num_threads = max(1, min(2, os.cpu_count() or 1))


def openblas_set_local_threads():
    """``openblas_set_num_threads_local`` of the OpenBLAS NumPy has loaded, or ``None``
    (another BLAS, or an OpenBLAS older than 0.3.27). Called with ``n``, it sets the number
    of BLAS threads and returns the previous number: of the calling thread, says OpenBLAS's
    documentation; of the whole process, in the OpenBLAS 0.3.31 of NumPy 2.4's wheels (a
    thread that never called it then multiplies on ``n`` threads too)."""
    import ctypes
    import glob

    candidates = []
    try:
        with open("/proc/self/maps") as maps:             # Linux: the libraries loaded
            candidates += [line.split()[-1] for line in maps if "openblas" in line.lower()]
    except OSError:
        pass
    root = os.path.dirname(np.__file__)
    for pattern in (root + ".libs/*openblas*", os.path.join(root, ".dylibs", "*openblas*")):
        candidates += glob.glob(pattern)
    for path in dict.fromkeys(candidates):
        try:
            # PyDLL: the call keeps the GIL. (Through CDLL it releases it, and a helper thread
            # takes it for its own Python code: the 0.3 us call then took about 25 us.)
            fn = ctypes.PyDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


_blas_local = None


def _blas_one_thread():
    """Asks OpenBLAS to use one thread (see :func:`openblas_set_local_threads`); returns the
    previous setting (``None`` with another BLAS)."""
    global _blas_local
    if _blas_local is None:
        _blas_local = openblas_set_local_threads() or False
    return _blas_local(1) if _blas_local else None


@contextlib.contextmanager
def one_blas_thread():
    """While inside, NumPy's matrix products use one BLAS thread (with OpenBLAS; nothing
    changes with another BLAS), and the previous setting is restored on the way out (the
    whole process's setting: see :func:`openblas_set_local_threads`). A :class:`cnn_lib.Sequential` with
    convolutions computes its passes inside: its threads are cnn_lib's own (:func:`parallel_map`),
    and a BLAS library's threads, woken by the dense layers' products, keep spinning on the cores
    for a while after each product and slow those threads down (a training step of the seed network took
    2.7-4.3 ms with them, 2.6-2.8 ms without, in five runs each on 2 cores)."""
    previous = _blas_one_thread()
    try:
        yield
    finally:
        if previous is not None:
            _blas_local(previous)


class _Worker(threading.Thread):
    """A helper thread of :func:`parallel_map`, woken by a lock: a lock handed from one thread
    to the other is the cheapest wake-up Python has (12-23 us here, against 40-50 us for a
    ``concurrent.futures`` pool's futures; a training step hands work over 4 or 5 times)."""

    def __init__(self):
        super().__init__(name="cnn_lib", daemon=True)
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._job = self._result = None
        self.start()

    def run(self):
        while True:
            self._go.acquire()                            # wait for work
            fn, items = self._job
            try:
                with one_blas_thread():                   # for this job (restored before _done)
                    self._result = ([fn(item) for item in items], None)
            except BaseException as error:                # handed to the caller, raised there
                self._result = (None, error)
            self._done.release()

    def submit(self, fn, items):
        self._job = (fn, items)
        self._go.release()

    def result(self):
        self._done.acquire()
        (out, error), self._job, self._result = self._result, None, None
        if error is not None:
            raise error
        return out


_workers = []
_busy = threading.Lock()          # one parallel_map at a time; another thread's call runs serially


def _forget_workers():            # after fork(): the child has no helper threads
    global _busy
    _workers.clear()
    _busy = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def set_num_threads(n):
    """Number of threads the fast convolution spreads a batch over (default: 2 or fewer cores).
    With 1, the calling thread does everything, its matrix products on one BLAS thread: one core."""
    global _num_threads
    n = int(n)
    if n < 1:
        raise ValueError(f"the number of threads must be at least 1, got {n}")
    _num_threads = n


def get_num_threads():
    """See :func:`set_num_threads`."""
    return _num_threads


def parallel_map(fn, items):
    """``[fn(item) for item in items]``, the items dealt out round-robin to the calling
    thread and helper threads when there is more than one item and more than one thread.
    Matrix products use one BLAS thread meanwhile (:func:`one_blas_thread`, set before the
    helpers start and restored after they have all finished), also when the calling thread
    works alone: with ``set_num_threads(1)`` a convolution runs on one core. A call made while
    another is running (from another thread, or from ``fn``) runs serially in its caller."""
    T = max(1, min(_num_threads, len(items)))
    if T == 1 or not _busy.acquire(blocking=False):             # (the rule of runs_serially)
        with one_blas_thread():
            return [fn(item) for item in items]
    try:
        # One BLAS thread from before the helpers start until they have all finished: the
        # setting is the whole process's, and restored while a helper still computed, it let
        # OpenBLAS's threads wake and spin beside it (a two-thread convolution was then, in
        # some runs, no faster than a one-thread one).
        with one_blas_thread():
            while len(_workers) < T - 1:
                _workers.append(_Worker())
            for t in range(1, T):
                _workers[t - 1].submit(fn, items[t::T])
            groups, error = [], None
            try:
                groups.append([fn(item) for item in items[0::T]])
            except BaseException as e:                  # still wait for the helpers
                error = e
            for t in range(1, T):
                try:
                    groups.append(_workers[t - 1].result())
                except BaseException as e:
                    error = error or e
        if error is not None:
            raise error
        return [groups[i % T][i // T] for i in range(len(items))]
    finally:
        _busy.release()


def runs_serially(n_items):
    """Whether a :func:`parallel_map` call over ``n_items`` items made now would run them all in
    the calling thread: one thread or one item, or another call running (in another thread, or
    around this one, as in each half of :meth:`cnn_lib.Sequential.train_step`)."""
    return min(_num_threads, n_items) <= 1 or _busy.locked()


def chunks(N, positions=None):
    """Slices cutting a batch of N images into chunks of at most ``size`` images.

    ``size`` is CHUNK (16) for outputs of more than CHUNK_POSITIONS / 2 (24 x 24 / 2)
    positions per image. Outputs 2, 4, 8, ... times smaller get chunks 2, 4, 8, ... times
    larger (powers of two: batches of 32 or 128 still split evenly), so that a chunk keeps
    about as much work and its fixed costs do not dominate; but never more than half the
    batch, so that both cores get a chunk. The size depends only on the shapes, never on the
    number of threads, so results do not either.
    """
    size = CHUNK
    if positions:
        while size * positions * 2 <= CHUNK * CHUNK_POSITIONS and size * 2 <= -(-N // 2):
            size *= 2
    return [slice(i, min(i + size, N)) for i in range(0, N, size)]



# --------------------------------------------------------------------------- scratch arrays
_scratch = threading.local()


def workspace(name, shape, dtype):
    """A scratch array of the calling thread, made once and handed out again at every call
    with the same ``name``, shape and dtype (its content is whatever the last user left).

    The fast convolution's temporaries are the size of the processor's cache (about 1 MB),
    and a fresh array that size costs more than its arithmetic on some machines: the C
    library hands big blocks back to the system when they are freed, so each new one
    page-faults (about 1 ms per 3 MB on a cloud VM; a chunk's product takes 0.2 ms).
    A thread keeps at most 64 arrays and 256 MB (then it forgets them all and starts again)."""
    arrays = getattr(_scratch, "arrays", None)
    if arrays is None:
        arrays = _scratch.arrays = {}
    key = (name, tuple(shape), np.dtype(dtype))
    a = arrays.get(key)
    if a is None:
        a = np.zeros(shape, dtype)
        if len(arrays) >= 64 or sum(b.nbytes for b in arrays.values()) + a.nbytes > 256 * 2**20:
            arrays.clear()
        arrays[key] = a
    return a


# --------------------------------------------------------------------------- conv2d
def unroll_kind(C, F, KW):
    """How :func:`conv2d_forward_chunk` unrolls its input for ``C`` input channels, ``F``
    filters and a kernel ``KW`` wide: ``"windows"`` (``C * KW`` below ``FULL_UNROLL_BELOW``),
    ``"columns"`` (fewer than ``FEW_FILTERS_BELOW`` filters) or ``"rows"``."""
    if C * KW < FULL_UNROLL_BELOW:
        return "windows"
    return "columns" if F < FEW_FILTERS_BELOW else "rows"


def unrolled_shape(x_shape, w_shape, geometry):
    """The shape of the unrolled input ``cols`` that :func:`conv2d_forward_chunk` keeps, by
    :func:`unroll_kind`: ``(N, C, KH, KW, H_out, W_out)`` for whole windows, ``(N, C, KH, H_out, Wp)``
    for whole rows (``"columns"``), ``(N, C, KW, Hp, W_out)`` for ``"rows"``. ``geometry`` as
    returned by :func:`cnn_lib.shapes.check_conv2d`."""
    N, C, H, W = x_shape
    F, _, KH, KW = w_shape
    sh, sw, ph, pw, H_out, W_out = geometry
    return {"windows": (N, C, KH, KW, H_out, W_out), "columns": (N, C, KH, H_out, W + 2 * pw),
            "rows": (N, C, KW, H + 2 * ph, W_out)}[unroll_kind(C, F, KW)]


def _unroll(view, out=None):
    """``view`` copied into a new C-contiguous array, or into ``out`` (a C-contiguous array of
    its shape and dtype, checked), which is returned."""
    if out is None:
        return np.ascontiguousarray(view)
    if out.shape != view.shape or out.dtype != view.dtype or not out.flags.c_contiguous:
        raise ValueError(f"cols_out must be a C-contiguous {view.dtype} array of shape {view.shape}, "
                         f"got {out.dtype} {out.shape}" + ("" if out.flags.c_contiguous else " (not contiguous)"))
    np.copyto(out, view)
    return out


def _windows_view(x, KH, KW, sh, sw, H_out, W_out):
    """Every window of ``x (N, C, H, W)``, a view (no copy):
    ``view[n, c, u, v, i, j] = x[n, c, i*sh + u, j*sw + v]``, shape ``(N, C, KH, KW, H_out, W_out)``
    (the unrolled input of im2col, and the offsets max pooling compares)."""
    s0, s1, s2, s3 = x.strides
    return as_strided(x, x.shape[:2] + (KH, KW, H_out, W_out), (s0, s1, s2, s3, s2 * sh, s3 * sw))


def _add_shifted(Z, out, origin, step, shift):
    """``out[n, f, i, j] = sum_k Z[n, k, f, r0 + i*si + k*dr, c0 + j*sj + k*dc]`` for ``Z (N, K, F, R, W)``,
    with ``origin = (r0, c0)``, ``step = (si, sj)``, ``shift = (dr, dc)``: one product's rows (or
    columns) for every kernel row (or column) ``k``, each taken from where that kernel row reached,
    added up (one reduction over a strided view; nothing is copied)."""
    N, K, F, R, W = Z.shape
    z0, z1, z2, z3, z4 = Z.strides
    (r0, c0), (si, sj), (dr, dc) = origin, step, shift
    view = as_strided(Z[:, :, :, r0:, c0:], (N, K, F) + out.shape[2:],
                      (z0, z1 + dr * z3 + dc * z4, z2, si * z3, sj * z4))
    return np.add.reduce(view, axis=1, out=out)


def _unroll_dy(dy, KW, Wp, sw):
    """``dy`` on rows of ``Wp`` columns, dilated by the stride, unrolled along the kernel width:
    ``d[n, k, f, i, j*sw + KW - 1 - k] = dy[n, f, i, j]``, zero elsewhere; returned as a scratch
    array ``(N, KW, F, H_out * Wp)``. That is the gradient each kernel column ``kw = KW - 1 - k``
    sends to the columns it read (``dZ`` of the forward with few filters), and also ``dy``
    unrolled as the input gradient's full convolution reads it. Built as ``KW`` shifted copies of
    long contiguous blocks of one flat array, ``flat[n, f, KW - 1 + i*Wp + j*sw] = dy[n, f, i, j]``:
    a shift that runs past a row's end reads the zero columns on either side of the next one."""
    N, F, H_out, W_out = dy.shape
    P = H_out * Wp
    # the zeros are never written (the same entries receive dy every time): they stay zeros
    flat = workspace(f"conv-dy-flat {KW} {Wp} {W_out} {sw}", (N, F, KW - 1 + P), dy.dtype)
    f0, f1, f2 = flat.strides
    np.copyto(as_strided(flat[:, :, KW - 1:], dy.shape, (f0, f1, Wp * f2, sw * f2)), dy)
    d = workspace("conv-dy-unrolled", (N, KW, F, P), dy.dtype)
    np.copyto(d, as_strided(flat, (N, KW, F, P), (f0, f2, f1, f2)))          # d[n, k, f, p] = flat[n, f, p + k]
    return d


def conv2d_forward_chunk(x, w, b, stride=1, padding=0, out=None, geometry=None, cols_out=None):
    """Fast cross-correlation of one chunk; returns ``(y, cache)``, a :class:`ChunkCache`
    whose ``cols`` backward reuses.

    The input is unrolled along the kernel *width* only (5x the input instead of
    25x for a 5x5 kernel): ``cols[n, c, kw, h, j] = xp[n, c, h, j*sw + kw]``.
    For each kernel row ``kh`` the rows ``kh, kh + sh, ...`` of ``cols`` form a
    ``(C*KW, H_out*W_out)`` matrix per image (a view when ``sh == 1``), and one
    batched matrix product with ``w[:, :, kh, :]`` adds that row's contribution.
    With fewer than ``FEW_FILTERS_BELOW`` filters, those products of ``F`` rows are too thin
    to be fast, and the roles of rows and columns are swapped: the input is unrolled along the
    kernel *height*, whole rows, ``cols[n, c, kh, i, t] = xp[n, c, i*sh + kh, t]`` (copies of
    long contiguous blocks, much cheaper than the short rows of the other way), one product of
    ``KW * F`` rows applies every kernel column to every column of the padded input,
    ``Z[n, kw, f, i, t] = sum_{c, kh} w[f, c, kh, kw] cols[n, c, kh, i, t]``, and
    ``y[n, f, i, j] = sum_kw Z[n, kw, f, i, j*sw + kw]``. It computes columns no output reads
    (``Wp / W_out`` times the work: 1.2 for the seed network's second layer, more with a
    stride), and is still faster there; with 32 filters it is slower.
    ``out``: an optional C-contiguous ``(N, F, H_out, W_out)`` array to write ``y`` into.
    ``geometry``: ``(sh, sw, ph, pw, H_out, W_out)`` from :func:`cnn_lib.shapes.check_conv2d`
    when the caller has checked the arguments already (:func:`conv2d_forward` does, once for
    all its chunks); then ``stride`` and ``padding`` are not read. ``cols_out``: an optional
    C-contiguous array of the shape of ``cols`` (:func:`unrolled_shape`) to unroll into.
    """
    sh, sw, ph, pw, H_out, W_out = geometry or check_conv2d(x, w, b, stride, padding)
    N, C = x.shape[:2]
    F, _, KH, KW = w.shape
    xp = _pad(x, ph, pw)                                                    # (N, C, Hp, Wp)
    s0, s1, s2, s3 = xp.strides
    Hp, Wp = xp.shape[2:]
    y = np.empty((N, F, H_out, W_out), dtype=np.result_type(x, w)) if out is None else out
    kind = unroll_kind(C, F, KW)
    if kind == "windows":
        # Few input channels (the first layer): a kernel row alone would make products of
        # depth C*KW (5 for MNIST), too shallow to be fast. Unroll the whole window
        # (classic im2col, cheap when C is small) and make one product of depth C*KH*KW:
        # cols[n, c, kh, kw, i, j] = xp[n, c, i*sh + kh, j*sw + kw]
        cols = _unroll(_windows_view(xp, KH, KW, sh, sw, H_out, W_out), cols_out)   # (N, C, KH, KW, H_out, W_out)
        np.matmul(w.reshape(F, C * KH * KW), cols.reshape(N, C * KH * KW, H_out * W_out),
                  out=y.reshape(N, F, H_out * W_out))
    elif kind == "columns":
        # Few filters: products of F rows are too thin to be fast. Unroll along the kernel
        # height, whole rows of the padded input (copies of long contiguous blocks):
        # cols[n, c, kh, i, t] = xp[n, c, i*sh + kh, t]
        cols = _unroll(as_strided(xp, (N, C, KH, H_out, Wp), (s0, s1, s2, s2 * sh, s3)), cols_out)  # (N, C, KH, H_out, Wp)
        # One product applies every kernel column to every column of those rows,
        # Z[n, kw, f, i, t] = sum_{c, kh} w[f, c, kh, kw] cols[n, c, kh, i, t],
        # and y[n, f, i, j] = sum_kw Z[n, kw, f, i, j*sw + kw] (kernel column kw reads column j*sw + kw).
        wk = np.ascontiguousarray(w.transpose(3, 0, 1, 2)).reshape(KW * F, C * KH)   # (KW*F, C*KH)
        Z = workspace("conv-columns", (N, KW * F, H_out * Wp), y.dtype)
        np.matmul(wk, cols.reshape(N, C * KH, H_out * Wp), out=Z)
        _add_shifted(Z.reshape(N, KW, F, H_out, Wp), y, origin=(0, 0), step=(1, sw), shift=(0, 1))
    else:
        # cols[n, c, kw, h, j] = xp[n, c, h, j*sw + kw]
        cols = _unroll(as_strided(xp, (N, C, KW, Hp, W_out), (s0, s1, s3, s2, s3 * sw)), cols_out)  # (N, C, KW, Hp, W_out)
        # One batched product per kernel row kh: the rows kh, kh + sh, ... of cols form a
        # (C*KW, H_out*W_out) matrix per image (a view when sh == 1).
        y3 = y.reshape(N, F, H_out * W_out)
        for kh in range(KH):
            rows = cols[:, :, :, kh : kh + (H_out - 1) * sh + 1 : sh]       # (N, C, KW, H_out, W_out)
            rows = rows.reshape(N, C * KW, H_out * W_out)                   # a view when sh == 1
            wk = w[:, :, kh, :].reshape(F, C * KW)                          # (F, C*KW)
            if kh == 0:
                np.matmul(wk, rows, out=y3)                                 # (N, F, H_out*W_out)
            else:
                y3 += np.matmul(wk, rows)
    if b is not None:
        y += b.reshape(1, F, 1, 1).astype(y.dtype, copy=False)
    return y, ChunkCache(kind, cols)


def conv2d_backward_chunk(dy, cache, x_shape, w, stride=1, padding=0, need_dx=True, dx_out=None):
    """Backward of :func:`conv2d_forward_chunk` from its :class:`ChunkCache`.

    ``dw[:, :, kh, :]`` is one batched product of ``dy`` with the rows of ``cols`` that
    kernel row ``kh`` saw; with few filters, one product for all kernel columns, of ``dy``
    unrolled along the kernel width (:func:`_unroll_dy`: where each kernel column's output
    went) with ``cols``. ``dx`` is the *full convolution* of ``dy`` (dilated by the stride)
    with ``w``, summed over the filters. With stride 1
    it is computed the way the forward is with few filters, rows and columns swapped: the same
    unrolled ``dy`` meets every kernel row in one product, and the rows of that product are
    added with their shifts (only the rows of the unpadded input are computed; the padding's
    columns are computed, then dropped). With a larger stride, ``dy`` is dilated by the stride
    (``s - 1`` zeros between entries), padded by ``K - 1``, then cross-correlated by
    :func:`conv2d_forward_chunk` with the kernel flipped in both axes and with the roles of
    input and output channels swapped.

    Shapes: ``dy (N, F, H_out, W_out)``, ``x_shape = (N, C, H, W)``, ``w (F, C, KH, KW)``
    -> ``dx (N, C, H, W)`` (``None`` when ``need_dx`` is false), ``dw (F, C, KH, KW)``, ``db (F,)``.
    """
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    N, C, H, W = x_shape
    F, _, KH, KW = w.shape
    H_out, W_out = dy.shape[2], dy.shape[3]
    dy3 = dy.reshape(N, F, H_out * W_out)                                   # (N, F, H_out*W_out)
    db = dy.sum(axis=(0, 2, 3))                                             # (F,)
    # dL/dw[f, c, kh, kw] = sum_{n,i,j} dy[n, f, i, j] xp[n, c, i*sh + kh, j*sw + kw]
    cols = cache.cols
    if cache.kind == "windows":                                              # whole windows unrolled
        K = C * KH * KW
        dw = np.matmul(dy3, cols.reshape(N, K, H_out * W_out).transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    elif cache.kind == "rows":                                               # one kernel row at a time
        dw = np.empty(w.shape, dtype=np.result_type(dy, cols))
        for kh in range(KH):
            rows = cols[:, :, :, kh : kh + (H_out - 1) * sh + 1 : sh]
            rows = rows.reshape(N, C * KW, H_out * W_out)                   # (N, C*KW, H_out*W_out)
            dw[:, :, kh, :] = np.matmul(dy3, rows.transpose(0, 2, 1)).sum(axis=0).reshape(F, C, KW)
    elif cache.kind == "columns":                                            # few filters: all columns at once
        # The forward's Z in reverse: dZ[n, kw, f, i, j*sw + kw] = dy[n, f, i, j] (zero on the
        # columns kernel column kw never read), then one product per image with cols.
        Wp = cols.shape[-1]
        dZ = _unroll_dy(dy, KW, Wp, sw)                                      # dZ[:, KW - 1 - kw] for kernel column kw
        dwk = np.matmul(dZ.reshape(N, KW * F, H_out * Wp),
                        cols.reshape(N, C * KH, H_out * Wp).transpose(0, 2, 1)).sum(axis=0)  # (KW*F, C*KH)
        dw = np.ascontiguousarray(dwk.reshape(KW, F, C, KH)[::-1].transpose(1, 2, 3, 0))
    else:
        raise ValueError(f"unknown kind of chunk cache {cache.kind!r}")
    if not need_dx:
        return None, dw, db
    dx = np.empty((N, C, H, W), dtype=np.result_type(dy, w)) if dx_out is None else dx_out
    if (sh, sw) == (1, 1):
        # dx[n, c, h, t] = sum_{f, kh, kw} w[f, c, kh, kw] dy[n, f, h + ph - kh, t + pw - kw]: as in
        # the forward with few filters, one product applies every kernel row to every row of dy,
        # G[n, kh, c, i, u] = sum_{f, kw} w[f, c, kh, kw] dy[n, f, i, u - kw] for the Wp columns u of
        # the padded input, and the rows are added with their shifts,
        # dx[n, c, h, t] = sum_kh G[n, kh, c, h + ph - kh, t + pw] (only the unpadded H x W part).
        Wp = W + 2 * pw
        # dZ[n, k, f, i, u] = dy[n, f, i, u - (KW - 1 - k)] (with few filters, already made for dw)
        dZ = dZ if cache.kind == "columns" else _unroll_dy(dy, KW, Wp, 1)
        wt = np.ascontiguousarray(w[:, :, :, ::-1].transpose(2, 1, 3, 0)).reshape(KH * C, KW * F)  # [(kh, c), (k, f)]
        # G, written between KH - 1 zero rows above and below, so that every shifted row exists
        R = H_out + 2 * (KH - 1)
        Gp = workspace(f"conv-dx-G {KH} {Wp}", (N, KH * C, R, Wp), dx.dtype)
        np.matmul(wt, dZ.reshape(N, KW * F, H_out * Wp),
                  out=Gp[:, :, KH - 1:KH - 1 + H_out].reshape(N, KH * C, H_out * Wp))  # (N, KH*C, H_out*Wp)
        # the rows each dx[n, c, h] adds up: Gp[n, kh*C + c, h + ph - kh + KH - 1], over kh
        _add_shifted(Gp.reshape(N, KH, C, R, Wp), dx, origin=(ph + KH - 1, pw), step=(1, 1), shift=(-1, 0))
        return dx, dw, db
    Hp, Wp = H + 2 * ph, W + 2 * pw
    # Rows/columns of the padded input that no window reached get no gradient: pad the
    # far side of dy by that remainder so the full convolution has the padded size.
    rh, rw = (Hp - KH) % sh, (Wp - KW) % sw
    # dy dilated and padded: a scratch array whose zeros are never written (the same entries
    # receive dy every time), so they stay zeros from one call to the next
    dyp = workspace(f"conv-dy-dilated {KH} {KW} {H_out} {W_out} {sh} {sw}",
                    (N, F, (H_out - 1) * sh + 2 * KH - 1 + rh, (W_out - 1) * sw + 2 * KW - 1 + rw), dy.dtype)
    dyp[:, :, KH - 1 : KH - 1 + (H_out - 1) * sh + 1 : sh, KW - 1 : KW - 1 + (W_out - 1) * sw + 1 : sw] = dy
    w_flip = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, F, KH, KW)
    # The full convolution would give the gradient of the *padded* input (N, C, Hp, Wp);
    # only its inner H x W part is wanted, so feed it just the rows and columns of dyp that
    # part reads (no work spent on the gradient of the zero padding).
    dyp = dyp[:, :, ph : ph + H + KH - 1, pw : pw + W + KW - 1]
    conv2d_forward_chunk(dyp, w_flip, None, out=dx, geometry=(1, 1, 0, 0, H, W))  # (N, C, H, W)
    return dx, dw, db


def conv2d_forward(x, w, b, stride=1, padding=0, keep_cache=True):
    """Fast cross-correlation of a batch, chunk by chunk (each chunk writes its part of ``y``).

    Same result as :func:`cnn_lib.functional.conv2d_forward` (up to the order of the sums).
    With ``keep_cache=False`` (inference: no backward pass will follow) the cache is ``None``,
    and each thread unrolls its chunks into the same scratch array (:func:`workspace`) instead
    of a new array per chunk, whose memory the system would provide afresh at every call
    (page faults): the same ``y``, bit for bit.

    Shapes: ``x (N, C, H, W)``, ``w (F, C, KH, KW)``, ``b (F,)`` or ``None``
    -> ``y (N, F, H_out, W_out)``, and a :class:`FastConvCache` for :func:`conv2d_backward`.
    """
    sh, sw, ph, pw, H_out, W_out = check_conv2d(x, w, b, stride, padding)
    y = np.empty((x.shape[0], w.shape[0], H_out, W_out), dtype=np.result_type(x, w))
    geometry = (sh, sw, ph, pw, H_out, W_out)
    if not keep_cache:
        def one_chunk(sl):
            shape = unrolled_shape((sl.stop - sl.start,) + x.shape[1:], w.shape, geometry)
            cols = workspace("conv-cols-inference", shape, x.dtype)
            conv2d_forward_chunk(x[sl], w, b, out=y[sl], geometry=geometry, cols_out=cols)
        parallel_map(one_chunk, chunks(x.shape[0], H_out * W_out))
        return y, None
    # When one thread does every chunk (one thread, or a call made inside another parallel_map,
    # as in each half of Sequential.train_step), the chunks unroll into one array for the whole
    # batch: with an array per chunk, all freed at once, the C library handed the memory back to
    # the system and every call page-faulted anew (1.5 instead of 0.7 ms at batch 32). With several
    # threads each chunk keeps its own array (the shared one made training steps 4% slower).
    slices = chunks(x.shape[0], H_out * W_out) or [slice(0, 0)]
    cols = np.empty(unrolled_shape(x.shape, w.shape, geometry), dtype=x.dtype) if runs_serially(len(slices)) else None
    caches = parallel_map(lambda sl: conv2d_forward_chunk(x[sl], w, b, out=y[sl], geometry=geometry,
                                                          cols_out=None if cols is None else cols[sl])[1], slices)
    return y, FastConvCache("fast", x.shape, w, (sh, sw), (ph, pw), caches)


def conv2d_backward(dy, cache, need_dx=True):
    """Backward of :func:`conv2d_forward` from its cache: chunk by chunk (each chunk writes
    its part of ``dx``), the chunks' ``dw`` and ``db`` added in a fixed order.

    Shapes: ``dy (N, F, H_out, W_out)`` -> ``dx (N, C, H, W)`` (``None`` when ``need_dx`` is
    false), ``dw (F, C, KH, KW)``, ``db (F,)``.
    """
    if getattr(cache, "kind", None) != "fast":
        raise TypeError("fast_conv.conv2d_backward takes the cache returned by fast_conv.conv2d_forward, "
                        f"got {type(cache).__name__}" + (f" of kind {cache.kind!r}" if hasattr(cache, "kind") else ""))
    x_shape, w, stride, padding, caches = cache.x_shape, cache.w, cache.stride, cache.padding, cache.chunks
    N = x_shape[0]
    y_shape = (N, w.shape[0]) + tuple(conv_output_size(n, k, s, p) for n, k, s, p in
                                       zip(x_shape[2:], w.shape[2:], stride, padding))
    check_dy(dy, y_shape, "fast_conv.conv2d_backward")
    slices = chunks(N, dy.shape[2] * dy.shape[3]) or [slice(0, 0)]
    dx = np.empty(x_shape, dtype=np.result_type(dy, w)) if need_dx else None
    parts = parallel_map(lambda k: conv2d_backward_chunk(
        dy[slices[k]], caches[k], (slices[k].stop - slices[k].start,) + tuple(x_shape[1:]),
        w, stride, padding, need_dx, None if dx is None else dx[slices[k]]), range(len(slices)))
    dw, db = parts[0][1], parts[0][2]
    for p in parts[1:]:
        dw += p[1]
        db += p[2]
    return dx, dw, db



# --------------------------------------------------------------------------- max pooling
class FastPoolCache(NamedTuple):
    """What :func:`maxpool2d_backward` needs from :func:`maxpool2d_forward`: ``kind`` (always
    ``"fast_max"``), the input's shape, ``argmax`` (for each output, the row-major offset
    ``u * KW + v`` of its window's first maximum), and ``kernel_size`` and ``stride`` as pairs."""
    kind: str
    x_shape: tuple
    argmax: np.ndarray
    kernel_size: tuple
    stride: tuple


def maxpool2d_forward(x, kernel_size=2, stride=None):
    """Max pooling that also records where each maximum is: the same ``y`` as
    :func:`cnn_lib.functional.maxpool2d_forward`, bit for bit.

    The ``KH * KW`` window offsets are copied side by side once (``xs[k]``, for the offset
    ``k = u * KW + v``), so that the maximum, and which offset holds it, each take one NumPy
    call over the whole batch instead of one per offset (fewer calls also means fewer handovers
    of Python's lock when two threads each pool half a batch).

    Shapes: ``x (N, C, H, W)`` -> ``y (N, C, H_out, W_out)``, and a :class:`FastPoolCache`
    whose ``argmax`` (int8 or int32, same shape as ``y``) is the offset of the first maximum
    of each window (ties go to the first, as in the readable version and PyTorch).
    """
    KH, KW, sh, sw, H_out, W_out = check_pool2d(x, kernel_size, stride)
    K = KH * KW
    offsets = _windows_view(x, KH, KW, sh, sw, H_out, W_out).transpose(2, 3, 0, 1, 4, 5)  # (KH, KW, N, C, H_out, W_out)
    xs = np.ascontiguousarray(offsets).reshape((K,) + x.shape[:2] + (H_out, W_out))  # xs[u*KW + v] = offset (u, v)
    y = xs.max(axis=0)
    # The first offset that holds the maximum has the largest K - 1 - k among those that do.
    dtype = np.int8 if K <= 127 else np.int32
    reverse = np.arange(K - 1, -1, -1, dtype=dtype).reshape(K, 1, 1, 1, 1)
    argmax = (K - 1) - (np.equal(xs, y) * reverse).max(axis=0)
    return y, FastPoolCache("fast_max", x.shape, argmax.astype(dtype, copy=False), (KH, KW), (sh, sw))


def maxpool2d_backward(dy, cache):
    """Gradient of :func:`maxpool2d_forward` from its cache: each ``dy[n, c, i, j]`` goes to
    the recorded arg-max of its window (overlapping windows add up). The same ``dx`` as
    :func:`cnn_lib.functional.maxpool2d_backward` for finite inputs.

    Shapes: ``dy (N, C, H_out, W_out)`` -> ``dx (N, C, H, W)``.
    """
    if getattr(cache, "kind", None) != "fast_max":
        raise TypeError("fast_conv.maxpool2d_backward takes the cache returned by fast_conv.maxpool2d_forward, "
                        f"got {type(cache).__name__}" + (f" of kind {cache.kind!r}" if hasattr(cache, "kind") else ""))
    (KH, KW), (sh, sw), argmax = cache.kernel_size, cache.stride, cache.argmax
    check_dy(dy, argmax.shape, "fast_conv.maxpool2d_backward")
    N, C, H, W = cache.x_shape
    H_out, W_out = argmax.shape[2:]
    disjoint = sh >= KH and sw >= KW                    # every input pixel is in at most one window
    covered = disjoint and H_out * sh == H and W_out * sw == W and (sh, sw) == (KH, KW)
    dx = (np.empty if covered else np.zeros)(cache.x_shape, dtype=dy.dtype)
    windows = _windows_view(dx, KH, KW, sh, sw, H_out, W_out).transpose(2, 3, 0, 1, 4, 5)  # (KH, KW, N, C, H_out, W_out)
    offsets = np.arange(KH * KW, dtype=argmax.dtype).reshape(KH, KW, 1, 1, 1, 1)
    if disjoint:
        np.multiply(argmax == offsets, dy, out=windows)                    # each pixel written once
    else:                                                                   # overlapping windows add up
        for u in range(KH):
            for v in range(KW):
                windows[u, v] += dy * (argmax == offsets[u, v])
    return dx
