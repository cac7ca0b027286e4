"""Tests of cnn_lib.model: Sequential (names, forward/backward, parameters, save/load,
predict) and seed_network (shapes, parameter count, end-to-end gradient check)."""

import os
import zipfile

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cnn_lib import functional as F
from cnn_lib.gradcheck import check_model
from cnn_lib.layers import Arctan, AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid
from cnn_lib.model import Sequential, seed_network

GRAD_TOL = 1e-6
STEP = 1e-5   # see tests/test_functional.py
PARAM_NAMES = ["conv1.w", "conv1.b", "conv2.w", "conv2.b", "dense1.w", "dense1.b", "dense2.w", "dense2.b"]


# --------------------------------------------------------------------------- structure
def test_seed_network_summary_shapes_and_parameter_count():
    model = seed_network(0)
    rows = model.summary((1, 28, 28))
    assert [name for name, *_ in rows] == ["conv1", "relu1", "conv2", "relu2", "pool1", "flatten1",
                                           "dense1", "relu3", "dense2"]
    assert [shape for _, _, shape, _ in rows] == [
        (8, 24, 24), (8, 24, 24), (8, 20, 20), (8, 20, 20), (8, 10, 10), (800,), (128,), (128,), (10,)]
    conv1 = 8 * 1 * 5 * 5 + 8          # 8 filters of 1x5x5, 8 biases
    conv2 = 8 * 8 * 5 * 5 + 8          # 8 filters of 8x5x5
    dense1 = 800 * 128 + 128
    dense2 = 128 * 10 + 10
    assert [count for *_, count in rows] == [conv1, 0, conv2, 0, 0, 0, dense1, 0, dense2]
    assert model.num_params() == conv1 + conv2 + dense1 + dense2 == 105_634
    assert sum(p.size for p in model.params().values()) == 105_634


def _old_seed_network(seed, dtype=np.float32):
    """seed_network as it was built before from_spec: the layers by hand, one Generator."""
    rng = np.random.default_rng(seed)
    return Sequential(Conv2D(1, 8, 5, rng=rng, dtype=dtype), ReLU(), Conv2D(8, 8, 5, rng=rng, dtype=dtype), ReLU(),
                      MaxPool2D(2, 2), Flatten(), Dense(800, 128, rng=rng, dtype=dtype), ReLU(),
                      Dense(128, 10, rng=rng, dtype=dtype))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_seed_network_is_built_by_from_spec_with_the_same_draws(seed):
    """Same random draws in the same order as the hand-built network: trained weights of a
    given configuration do not change."""
    for dtype in (np.float32, np.float64):
        new, old = seed_network(seed, dtype=dtype), _old_seed_network(seed, dtype)
        assert repr(new) == repr(old)
        assert list(new.params()) == list(old.params())
        for k, p in new.params().items():
            assert p.dtype == dtype
            assert_array_equal(p, old.params()[k], err_msg=k)


def test_from_spec_infers_input_sizes_and_accepts_keywords():
    model = Sequential.from_spec([("conv", 4, 3, {"padding": 1}), "relu", ("conv", 6, 3, 2), "sigmoid",
                                  ("avgpool", 2, 1), "flatten", ("dense", 5), "arctan", ("dense", 3)],
                                 input_shape=(2, 9, 9), seed=3, dtype=np.float64)
    rows = model.summary((2, 9, 9))
    assert [r[0] for r in rows] == ["conv1", "relu1", "conv2", "sigmoid1", "pool1", "flatten1", "dense1",
                                    "arctan1", "dense2"]
    assert [r[2] for r in rows] == [(4, 9, 9), (4, 9, 9), (6, 4, 4), (6, 4, 4), (6, 3, 3), (54,), (5,), (5,), (3,)]
    conv2 = model.layers["conv2"]
    assert (conv2.in_channels, conv2.stride, conv2.padding) == (4, (2, 2), (0, 0))
    assert model.layers["conv1"].padding == (1, 1)
    assert model.layers["dense1"].in_features == 54
    assert model.forward(np.zeros((2, 2, 9, 9))).shape == (2, 3)
    # a Generator is used as is; the same seed gives the same weights
    again = Sequential.from_spec([("conv", 4, 3, {"padding": 1}), "relu", ("conv", 6, 3, 2), "sigmoid",
                                  ("avgpool", 2, 1), "flatten", ("dense", 5), "arctan", ("dense", 3)],
                                 input_shape=(2, 9, 9), seed=np.random.default_rng(3), dtype=np.float64)
    for k, p in model.params().items():
        assert_array_equal(p, again.params()[k])


def test_from_spec_dropout_has_its_own_stream():
    """A dropout layer does not move the weights' stream: the same spec with and without it starts
    from the same weights; its masks are reproducible from the seed and differ between layers."""
    from cnn_lib.layers import Dropout

    plain = ["flatten", ("dense", 32), "relu", ("dense", 32), "relu", ("dense", 10)]
    dropped = ["flatten", ("dense", 32), "relu", ("dropout", 0.5), ("dense", 32), "relu", ("dropout", 0.25),
               ("dense", 10)]
    a = Sequential.from_spec(plain, input_shape=(1, 4, 4), seed=5)
    b = Sequential.from_spec(dropped, input_shape=(1, 4, 4), seed=5)
    assert list(a.params()) == list(b.params())
    for k, p in a.params().items():
        assert_array_equal(p, b.params()[k], err_msg=k)
    d1, d2 = b.layers["dropout1"], b.layers["dropout2"]
    assert isinstance(d1, Dropout) and (d1.p, d2.p) == (0.5, 0.25)
    x = np.ones((64, 1, 4, 4), np.float32)
    again = Sequential.from_spec(dropped, input_shape=(1, 4, 4), seed=5)
    assert_array_equal(b.forward(x, train=True), again.forward(x, train=True))    # same masks from the seed
    m1 = d1.forward(np.ones((64, 32)), train=True) == 0
    m2 = d2.forward(np.ones((64, 32)), train=True) == 0
    assert 0.3 < m1.mean() < 0.7 and 0.1 < m2.mean() < 0.4 and not np.array_equal(m1, m2)
    assert_array_equal(b.forward(x, train=False), a.forward(x, train=False))      # identity in evaluation
    with pytest.raises(ValueError):
        Sequential.from_spec([("dropout", 1.0)], input_shape=(3,))


@pytest.mark.parametrize("spec, error, word", [
    ([("dense", 10)], ValueError, "put 'flatten' before it"),
    (["flatten", ("conv", 8, 5)], ValueError, r"shape \(C, H, W\)"),
    ([("conv", 8, 29)], ValueError, "does not fit"),
    (["tanh"], ValueError, "is not one of"),
    ([("pool", 2)], ValueError, "is not one of"),
    ([42], ValueError, "is not one of"),
    ([("conv", 8)], TypeError, r"layer 0 of the spec, \('conv', 8\)"),
    ([("maxpool", 2.5)], TypeError, "kernel_size must be an integer"),
])
def test_from_spec_rejects_bad_specs(spec, error, word):
    with pytest.raises(error, match=word):
        Sequential.from_spec(spec, input_shape=(1, 28, 28))


def test_seed_network_names_shapes_and_dtype():
    model = seed_network(0)
    params = model.params()
    assert list(params) == PARAM_NAMES
    assert {k: v.shape for k, v in params.items()} == {
        "conv1.w": (8, 1, 5, 5), "conv1.b": (8,), "conv2.w": (8, 8, 5, 5), "conv2.b": (8,),
        "dense1.w": (800, 128), "dense1.b": (128,), "dense2.w": (128, 10), "dense2.b": (10,)}
    assert all(p.dtype == np.float32 for p in params.values())
    assert all(p.dtype == np.float64 for p in seed_network(0, dtype=np.float64).params().values())
    for k, v in seed_network(0).params().items():            # same seed, same weights
        assert_array_equal(v, params[k])
    assert not np.array_equal(seed_network(1).params()["conv1.w"], params["conv1.w"])
    assert isinstance(model.layers["pool1"], MaxPool2D)


def test_sequential_naming():
    model = Sequential(Conv2D(1, 2, 3), ReLU(), ("head", Dense(2, 3)), Dense(3, 4), AvgPool2D(2), MaxPool2D(2))
    assert list(model.layers) == ["conv1", "relu1", "head", "dense1", "pool1", "pool2"]
    assert list(model.params()) == ["conv1.w", "conv1.b", "head.w", "head.b", "dense1.w", "dense1.b"]
    assert list(Sequential([ReLU(), Flatten()]).layers) == ["relu1", "flatten1"]
    with pytest.raises(ValueError, match="repeated"):
        Sequential(("a", ReLU()), ("a", ReLU()))
    with pytest.raises(ValueError, match="dot"):
        Sequential(("a.b", ReLU()), ReLU())
    with pytest.raises(TypeError, match="Layer"):
        Sequential(ReLU(), np.tanh)
    assert "conv1" in repr(model) and "Dense(2, 3)" in repr(model)


def test_sequential_with_a_single_named_layer():
    """The docstring's "(name, layer) pairs" should work for a one-layer model too; the
    unwrapping of a single list/tuple argument currently takes the pair for a list of layers."""
    model = Sequential(("head", Dense(2, 3)))
    assert list(model.params()) == ["head.w", "head.b"]


def test_forward_equals_composition_of_naive_functions():
    """The seed network, evaluated by hand with the loop versions of every op."""
    model = seed_network(3, dtype=np.float64)
    p = model.params()
    for k in ("conv1.b", "conv2.b", "dense1.b", "dense2.b"):       # non-zero biases
        p[k][:] = np.random.default_rng(0).standard_normal(p[k].shape) * 0.1
    x = np.random.default_rng(1).standard_normal((2, 1, 28, 28))
    h = F.relu_naive(F.conv2d_naive(x, p["conv1.w"], p["conv1.b"]))
    h = F.relu_naive(F.conv2d_naive(h, p["conv2.w"], p["conv2.b"]))
    h = F.maxpool2d_naive(h, 2, 2).reshape(2, 800)
    h = F.relu_naive(F.dense_naive(h, p["dense1.w"], p["dense1.b"]))
    logits = F.dense_naive(h, p["dense2.w"], p["dense2.b"])
    assert_allclose(model.forward(x, train=False), logits, rtol=1e-9, atol=1e-12)
    assert_allclose(model(x), logits, rtol=1e-9, atol=1e-12)


def test_backward_fills_grads_and_returns_dx_on_request():
    model = seed_network(0, dtype=np.float64)
    with pytest.raises(RuntimeError, match="backward"):
        model.grads()
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28))
    logits = model.forward(x)
    assert logits.shape == (3, 10)
    assert model.backward(np.ones_like(logits)) is None
    grads = model.grads()
    assert list(grads) == PARAM_NAMES
    assert all(grads[k].shape == p.shape for k, p in model.params().items())
    model.forward(x)
    dx = model.backward(np.ones_like(logits), need_dx=True)
    assert dx.shape == x.shape
    for k, g in model.grads().items():
        assert_array_equal(g, grads[k])


# --------------------------------------------------------------------------- parameters and state
def test_params_are_live_and_state_dict_copies():
    model = seed_network(0)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    before = model.forward(x, train=False)
    state = model.state_dict()
    assert list(state) == PARAM_NAMES
    for k, v in model.params().items():
        assert not np.shares_memory(state[k], v)
        assert_array_equal(state[k], v)
    state["dense2.b"][:] = 100.0                                   # changing the copy ...
    assert_array_equal(model.forward(x, train=False), before)      # ... leaves the model alone
    model.params()["dense2.b"][:] = 100.0                          # the live arrays do change it
    assert_allclose(model.forward(x, train=False), before + 100.0, rtol=1e-5)


def test_load_state_dict_copies_values():
    a, b = seed_network(0), seed_network(1)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    assert not np.array_equal(a.forward(x, train=False), b.forward(x, train=False))
    state = a.state_dict()
    live = b.params()
    assert b.load_state_dict(state) is b
    assert_array_equal(b.forward(x, train=False), a.forward(x, train=False))
    for k, v in b.params().items():
        assert v is live[k]                       # loaded in place: optimizers keep their arrays
        assert not np.shares_memory(v, state[k])


def test_load_state_dict_errors():
    model = seed_network(0)
    state = model.state_dict()
    missing = {k: v for k, v in state.items() if k != "conv2.b"}
    with pytest.raises(ValueError, match=r"missing \['conv2.b'\]"):
        model.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected \['conv3.w'\]"):
        model.load_state_dict({**state, "conv3.w": np.zeros(3)})
    wrong = dict(state)
    wrong["dense1.w"] = np.zeros((128, 800), np.float32)
    with pytest.raises(ValueError, match=r"dense1.w.*shape"):
        model.load_state_dict(wrong)


def test_failed_load_state_dict_leaves_the_model_unchanged():
    """Names are checked before anything is copied; shapes should be too, so that a wrong
    state (e.g. weights of a model with another head) does not half-overwrite the model."""
    model = seed_network(0)
    before = model.state_dict()
    state = seed_network(1).state_dict()
    state["dense2.b"] = np.zeros(11, np.float32)            # the last array has the wrong shape
    with pytest.raises(ValueError, match="dense2.b"):
        model.load_state_dict(state)
    for k, v in model.params().items():
        assert np.array_equal(v, before[k]), f"{k} was overwritten by a load that failed"


# --------------------------------------------------------------------------- save and load
def test_save_load_round_trip_on_mnist(tmp_path, mnist):
    x = mnist[2][:50]
    model = seed_network(0)
    # move away from the initialisation so that a silent no-op load would be caught
    rng = np.random.default_rng(5)
    for p in model.params().values():
        p += (0.01 * rng.standard_normal(p.shape)).astype(p.dtype)
    path = tmp_path / "weights.npz"
    assert os.fspath(model.save(path)) == os.fspath(path)
    other = seed_network(1)
    assert not np.array_equal(other.forward(x, train=False), model.forward(x, train=False))
    assert other.load(path) is other
    assert np.array_equal(other.forward(x, train=False), model.forward(x, train=False))
    assert np.array_equal(other.predict(x), model.predict(x))
    # a plain npz: no pickle needed, one array per named parameter, same dtype
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(PARAM_NAMES)
        for k, v in model.params().items():
            assert data[k].dtype == v.dtype
            assert_array_equal(data[k], v)
    assert zipfile.is_zipfile(path)
    # nothing else (no temporary file) was left in the folder
    assert sorted(os.listdir(tmp_path)) == ["weights.npz"]
    # saving again over the file works and still leaves one file
    model.save(os.fspath(path))
    assert sorted(os.listdir(tmp_path)) == ["weights.npz"]


def test_failed_save_leaves_no_temporary_file(tmp_path):
    model = seed_network(0)
    target = tmp_path / "taken"
    target.mkdir()                                  # a folder where the file should go
    with pytest.raises(OSError):
        model.save(target)
    assert sorted(os.listdir(tmp_path)) == ["taken"]
    assert os.listdir(target) == []


def test_load_errors(tmp_path):
    model = seed_network(0)
    before = model.state_dict()
    with pytest.raises(FileNotFoundError, match="no weights file"):
        model.load(tmp_path / "missing.npz")
    text = tmp_path / "notes.npz"
    text.write_text("these are not weights")
    with pytest.raises(ValueError, match="not a weights file"):
        model.load(text)
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match="not a weights file"):
        model.load(npy)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="not a weights file"):
        model.load(empty)
    # an npz of another model: a mismatch, not a crash
    other = tmp_path / "other.npz"
    Sequential(Dense(3, 2)).save(other)
    with pytest.raises(ValueError, match="missing"):
        model.load(other)
    # a pickled object array is refused (loading it could run code)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{k: v for k, v in before.items()}, extra=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        model.load(pickled)
    for k, v in model.params().items():
        assert_array_equal(v, before[k])


# --------------------------------------------------------------------------- predict
def test_predict_and_predict_proba_in_batches(mnist):
    x = mnist[2][:50]
    model = seed_network(0)
    logits = model.forward(x, train=False)
    proba = F.softmax(logits)
    for batch_size in (1, 7, 50, 1000):
        p = model.predict_proba(x, batch_size=batch_size)
        assert p.shape == (50, 10) and p.dtype == np.float32
        assert_allclose(p, proba, rtol=1e-5, atol=1e-7)
        assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
        assert_array_equal(model.predict(x, batch_size=batch_size), logits.argmax(axis=1))
    assert model.predict(x).shape == (50,)
    assert np.issubdtype(model.predict(x).dtype, np.integer)


# --------------------------------------------------------------------------- gradient checks
def test_seed_network_gradcheck():
    model = seed_network(seed=0, dtype=np.float64)
    for k, p in model.params().items():               # generic biases, not all zero
        if k.endswith(".b"):
            p[:] = 0.1 * np.random.default_rng(1).standard_normal(p.shape)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 28, 28))
    y = np.array([3, 7, 0])
    errors = check_model(model, x, y, samples=20, rng=0, h=STEP)
    assert set(errors) == {"x"} | set(PARAM_NAMES)
    assert max(errors.values()) < GRAD_TOL, errors


def test_small_model_with_every_layer_gradcheck():
    """Every parameter entry and every input pixel, through every layer type."""
    rng = np.random.default_rng(0)
    model = Sequential(
        Conv2D(2, 3, 3, stride=2, padding=1, rng=rng, dtype=np.float64), Sigmoid(),
        Conv2D(3, 4, (2, 3), rng=rng, dtype=np.float64), Arctan(),
        AvgPool2D(2, 1), MaxPool2D(2),
        Flatten(), Dense(8, 5, rng=rng, dtype=np.float64), ReLU(), Dense(5, 4, rng=rng, dtype=np.float64),
    )
    assert [shape for _, _, shape, _ in model.summary((2, 11, 12))] == [
        (3, 6, 6), (3, 6, 6), (4, 5, 4), (4, 5, 4), (4, 4, 3), (4, 2, 1), (8,), (5,), (5,), (4,)]
    for k, p in model.params().items():
        if k.endswith(".b"):
            p[:] = 0.3 + 0.1 * rng.standard_normal(p.shape)   # keeps the ReLU units alive
    x = rng.standard_normal((2, 2, 11, 12))
    errors = check_model(model, x, np.array([1, 3]), rng=0, h=STEP)
    assert max(errors.values()) < GRAD_TOL, errors


# --------------------------------------------------------------------------- issue 12: nothing silent
def _perturbed_state(seed=1):
    return seed_network(seed).state_dict()


@pytest.mark.parametrize("bad, words", [
    (np.array(["a", "b"] * 5), "dtype"),                                    # strings
    (np.zeros(10, np.complex64) + 1j, "complex"),                           # would be truncated
    (np.full(10, np.nan, np.float32), "NaN"),                                # not a model
    (np.array([np.inf] * 10), "NaN or inf"),
    (np.zeros(10, bool), "dtype"),
])
def test_load_state_dict_bad_last_array_changes_nothing(bad, words):
    """The LAST array (dense2.b) is bad: every array is validated and converted before any is
    assigned, so the earlier layers are not overwritten."""
    model = seed_network(0)
    before = model.state_dict()
    state = _perturbed_state()
    state["dense2.b"] = bad
    with pytest.raises(ValueError, match=words):
        model.load_state_dict(state)
    for k, v in model.params().items():
        assert np.array_equal(v, before[k]), f"{k} was overwritten by a load that failed"


def test_load_file_with_bad_last_array_changes_nothing(tmp_path):
    model = seed_network(0)
    before = model.state_dict()
    state = _perturbed_state()
    state["dense2.b"] = np.array(["x"] * 10)
    path = tmp_path / "w.npz"
    np.savez(path, **state)
    with pytest.raises(ValueError, match="dense2.b"):
        model.load(path)
    for k, v in model.params().items():
        assert np.array_equal(v, before[k])


def test_save_refuses_a_non_finite_model(tmp_path):
    model = seed_network(0)
    model.params()["conv1.w"][0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="conv1.w"):
        model.save(tmp_path / "w.npz")
    assert list(tmp_path.iterdir()) == []


def _npz_with_crafted_member(path, arrays, name, shape, dtype="<f4"):
    """An npz with ``arrays`` plus ``name.npy`` whose header declares ``shape`` but holds no data."""
    import io
    from numpy.lib import format as npformat
    np.savez(path, **arrays)
    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(name + ".npy", buf.getvalue() + b"\0" * 64)


@pytest.mark.parametrize("shape, dtype", [((2 ** 44,), "<f4"), ((10,), "<U3"), ((10,), "<c8"), ((10,), "|O")])
def test_load_checks_declared_shapes_and_dtypes_before_reading(tmp_path, shape, dtype):
    """A crafted file whose last member declares 2**44 floats (or a bad dtype) is refused from
    its header, before its data is read or memory allocated, and the model is unchanged."""
    model = seed_network(0)
    before = model.state_dict()
    state = _perturbed_state()
    path = tmp_path / "crafted.npz"
    _npz_with_crafted_member(path, {k: v for k, v in state.items() if k != "dense2.b"}, "dense2.b", shape, dtype)
    with pytest.raises(ValueError, match=r"dense2.b"):
        model.load(path)
    for k, v in model.params().items():
        assert np.array_equal(v, before[k])


@pytest.mark.parametrize("shape", [(0, 1, 28, 28)])
def test_zero_images_give_empty_results(shape):
    model = seed_network(0)
    x = np.zeros(shape, np.float32)
    assert model.forward(x, train=False).shape == (0, 10)
    assert model.forward(x, train=False).dtype == np.float32
    assert model.predict(x).shape == (0,)
    assert model.predict_proba(x).shape == (0, 10)
    from cnn_lib import predict
    assert predict(model, x).shape == (0,)


def test_networks_with_convolutions_keep_the_blas_library_on_one_thread():
    """With convolutions (cnn_lib's own threads) the passes run with one BLAS thread; an MLP
    keeps the BLAS library's threads; the setting from before is restored after each pass."""
    from cnn_lib import fast_conv
    from cnn_lib.layers import Layer

    set_local = fast_conv.openblas_set_local_threads()
    if set_local is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS with per-thread settings")
    seen = []

    class Probe(Layer):                                    # records the BLAS threads of its pass
        def forward(self, x, train=True):
            n = set_local(1)
            set_local(n)
            seen.append(n)
            return x

        def backward(self, dy, need_dx=True):
            return self.forward(dy)

    before = set_local(2)
    try:
        x = np.zeros((2, 1, 6, 6), np.float32)
        with_conv = Sequential(Conv2D(1, 2, 3, rng=0), Probe(), Flatten(), Dense(32, 3, rng=0))
        with_conv.backward(with_conv.forward(x))
        assert seen == [1, 1]
        seen.clear()
        mlp = Sequential(Flatten(), Probe(), Dense(36, 3, rng=0))
        mlp.backward(mlp.forward(x))
        assert seen == [2, 2]
        assert set_local(2) == 2                           # restored after the passes
    finally:
        set_local(before)


# --------------------------------------------------------------------------- train_step: two halves
def _batch(N, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, N)


def _layer_by_layer(model, x, y):
    """What train_step computes, through forward, the loss and backward."""
    from cnn_lib.losses import softmax_cross_entropy
    logits = model.forward(x, train=True)
    loss, d = softmax_cross_entropy(logits, y)
    model.backward(d)
    return loss, logits, {k: g.copy() for k, g in model.grads().items()}


@pytest.fixture
def threads():
    """Sets fast_conv's number of threads for a test, and restores it afterwards."""
    from cnn_lib import fast_conv
    before = fast_conv.get_num_threads()
    yield fast_conv.set_num_threads
    fast_conv.set_num_threads(before)


@pytest.mark.parametrize("N", [32, 33, 64])
def test_train_step_in_halves_equals_forward_loss_backward(N):
    from cnn_lib import model as M
    model = seed_network(3)
    assert model.runs_in_halves(N) and N >= M.HALVES_FROM
    x, y = _batch(N)
    loss_ref, logits_ref, grads_ref = _layer_by_layer(model, x, y)
    before = model.state_dict()
    loss, logits = model.train_step(x, y)
    assert logits.shape == (N, 10)
    assert_allclose(logits, logits_ref, rtol=1e-4, atol=1e-5)     # float32: sums in another order
    assert loss == pytest.approx(loss_ref, rel=1e-6)
    grads = model.grads()
    assert list(grads) == list(grads_ref)
    for k in grads:
        assert grads[k].shape == grads_ref[k].shape and grads[k].dtype == np.float32
        assert_allclose(grads[k], grads_ref[k], rtol=1e-4, atol=1e-6, err_msg=k)
    for k, v in model.state_dict().items():                  # the parameters are not touched
        assert_array_equal(v, before[k])
    with pytest.raises(RuntimeError, match="before forward"):  # no stale cache is left behind
        model.backward(np.zeros((N, 10), np.float32))


def test_train_step_halves_do_not_depend_on_the_number_of_threads(threads):
    model = seed_network(1)
    x, y = _batch(64, seed=5)
    results = []
    for n in (1, 2, 2, 1):
        threads(n)
        loss, logits = model.train_step(x, y)
        results.append((loss, logits, {k: g.copy() for k, g in model.grads().items()},
                        model.forward(x, train=False)))
    for loss, logits, grads, out in results[1:]:
        assert loss == results[0][0]
        assert_array_equal(logits, results[0][1])
        for k, g in grads.items():
            assert_array_equal(g, results[0][2][k])
        assert_array_equal(out, results[0][3])


def test_train_step_is_the_layer_by_layer_pass_when_halves_do_not_apply():
    """Small batches, networks with dropout, networks without convolutions: the same numbers,
    bit for bit, as forward, the loss and backward."""
    cases = [(seed_network(0), 31),
             (Sequential.from_spec([("conv", 4, 5), "relu", ("maxpool", 2), "flatten", ("dropout", 0.5),
                                    ("dense", 10)], seed=2), 40),
             (Sequential.from_spec(["flatten", ("dense", 32), "relu", ("dense", 10)], seed=2), 40)]
    for model, N in cases:
        assert not model.runs_in_halves(N)
        x, y = _batch(N, seed=N)
        def same_masks():                                    # dropout: a mask from a fresh stream
            for layer in model.layers.values():
                if hasattr(layer, "rng"):
                    layer.rng = np.random.default_rng(7)
        same_masks()
        loss_ref, logits_ref, grads_ref = _layer_by_layer(model, x, y)
        same_masks()                                         # ... and the same mask again
        loss, logits = model.train_step(x, y)
        assert loss == loss_ref
        assert_array_equal(logits, logits_ref)
        for k, g in model.grads().items():
            assert_array_equal(g, grads_ref[k])


def test_train_step_checks_its_labels():
    model = seed_network(0)
    x, y = _batch(32)
    with pytest.raises(ValueError, match=r"labels of shape \(32,\)"):
        model.train_step(x, y[:31])
    y_bad = y.copy()
    y_bad[-1] = 10                                         # in the second half: raised from its thread
    with pytest.raises(ValueError, match="labels must lie in 0..9"):
        model.train_step(x, y_bad)
    with pytest.raises(ValueError, match="integer labels"):
        model.train_step(x, y.astype(np.float32))


def test_evaluation_in_halves_equals_the_layer_by_layer_pass():
    model = seed_network(2)
    x, _ = _batch(70, seed=3)
    assert model.runs_in_halves(70)
    model.forward(x, train=True)                             # a cache that evaluation must drop
    out = model.forward(x, train=False)
    layers = list(model.layers.values())

    def layer_by_layer(xs):
        from cnn_lib import fast_conv
        with fast_conv.one_blas_thread():                  # as Sequential runs its passes
            for layer in layers:
                xs = layer.forward(xs, train=False)
        return xs
    assert_array_equal(out, np.concatenate([layer_by_layer(x[:35]), layer_by_layer(x[35:])]))
    assert_allclose(out, layer_by_layer(x), rtol=1e-4, atol=1e-5)   # whole batch: sums in another order
    with pytest.raises(RuntimeError, match="before forward"):  # nothing kept for a backward pass
        model.backward(np.zeros((70, 10), np.float32))


def test_train_step_halves_run_on_two_threads(threads, monkeypatch):
    """With 2 threads, each half's loss is computed on its own thread; with 1, both on the caller's."""
    import threading
    from cnn_lib import model as M
    seen, loss = [], M.softmax_cross_entropy

    def recording_loss(logits, y):
        seen.append((threading.get_ident(), len(y)))
        return loss(logits, y)
    monkeypatch.setattr(M, "softmax_cross_entropy", recording_loss)
    model = seed_network(0)
    x, y = _batch(33)
    for n, expected_threads in ((2, 2), (1, 1)):
        threads(n)
        seen.clear()
        model.train_step(x, y)
        assert sorted(size for _, size in seen) == [16, 17]            # two halves, 16 + 17 images
        assert len({ident for ident, _ in seen}) == expected_threads
        assert threading.get_ident() in {ident for ident, _ in seen}  # the caller takes one half
