"""cnn_lib.teaching.zoo: architectures, augmentation, and the cache of trained networks."""

import json
import re

import numpy as np
import pytest

from cnn_lib import seed_network
from cnn_lib.teaching import zoo
from cnn_lib.data import MNIST_MEAN, MNIST_STD

SMALL = dict(epochs=1, batch_size=64, n_train=256, progress=False)


def _same_weights(a, b):
    pa, pb = a.params(), b.params()
    return list(pa) == list(pb) and all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_seed_architecture_is_seed_network():
    assert _same_weights(zoo.build("seed", 3), seed_network(3))
    assert zoo.build("mlp").num_params() == 101_770
    assert zoo.build("seed").num_params() == 105_634


def _old_build(arch, seed, dtype=np.float32, input_shape=(1, 28, 28)):
    """zoo.build as it was before Sequential.from_spec: the layers constructed by hand, in
    order, all drawing from one Generator."""
    from cnn_lib import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential

    rng, layers, shape = np.random.default_rng(seed), [], tuple(input_shape)
    for t in zoo.parse_architecture(arch):
        m = re.match(r"^(?:conv(?P<F>\d+)k(?P<K>\d+)(?:p(?P<P>\d+))?|pool(?P<pool>\d+)|dense(?P<M>\d+)|relu|flatten)$", t)
        if m["F"]:
            layer = Conv2D(shape[0], int(m["F"]), int(m["K"]), padding=int(m["P"] or 0), rng=rng, dtype=dtype)
        elif m["pool"]:
            layer = MaxPool2D(int(m["pool"]), int(m["pool"]))
        elif m["M"]:
            layer = Dense(shape[0], int(m["M"]), rng=rng, dtype=dtype)
        else:
            layer = ReLU() if t == "relu" else Flatten()
        shape = layer.output_shape(shape)
        layers.append(layer)
    return Sequential(*layers)


@pytest.mark.parametrize("arch", ["seed", "mlp", "conv4k3p1-relu-pool2-flatten-dense10",
                                  "conv8k5-relu-conv8k5-relu-pool2-conv16k3-relu-flatten-dense128-relu-dense10"])
def test_build_draws_the_same_initial_weights_as_before(arch):
    """zoo.build now goes through Sequential.from_spec: same layers, same random draws in the
    same order, so a cached configuration trains to the same weights."""
    for seed in (0, 5):
        new, old = zoo.build(arch, seed), _old_build(arch, seed)
        assert repr(new) == repr(old)
        assert _same_weights(new, old)
    assert _same_weights(zoo.build(arch, 2, dtype=np.float64), _old_build(arch, 2, np.float64))


def test_architecture_strings():
    m = zoo.build("conv4k3p1-relu-pool2-flatten-dense10")
    assert [r[2] for r in m.summary()] == [(4, 28, 28), (4, 28, 28), (4, 14, 14), (784,), (10,)]
    with pytest.raises(ValueError, match="cannot read layer 'conv4'"):
        zoo.build("conv4-relu")
    with pytest.raises(ValueError, match="flatten"):
        zoo.build("conv4k3-dense10")
    # drop{P}: a Dropout of P percent; the weights are those of the same network without it
    m = zoo.build("conv4k3p1-relu-pool2-flatten-dense16-relu-drop25-dense10", 3)
    assert repr(m.layers["dropout1"]) == "Dropout(p=0.25)"
    assert _same_weights(m, zoo.build("conv4k3p1-relu-pool2-flatten-dense16-relu-dense10", 3))
    for bad in ("drop0", "drop100", "drop5x", "drop"):
        with pytest.raises(ValueError, match=f"cannot read layer '{bad}'.*drop"):
            zoo.build(f"flatten-{bad}-dense10")
    with pytest.raises(ValueError, match="optimizer"):
        zoo.make_config("seed", optimizer="sgd")


def test_keys_differ_with_config():
    base = zoo.make_config("seed")
    keys = {zoo.cache_key(base)}
    for change in (dict(epochs=4), dict(lr=2e-3), dict(seed=1), dict(batch_size=64), dict(shift=1),
                   dict(lr_decay=0.5), dict(optimizer="report_adam"), dict(n_train=1000),
                   dict(val_size=10_000)):
        keys.add(zoo.cache_key(zoo.make_config("seed", **change)))
    keys.add(zoo.cache_key(zoo.make_config("mlp")))
    keys.add(zoo.cache_key(zoo.make_config("flatten-dense128-relu-drop50-dense10")))
    assert len(keys) == 12
    assert zoo.cache_key(zoo.make_config("seed")) == zoo.cache_key(base)      # deterministic
    # a name and its architecture string are the same configuration
    assert zoo.make_config("seed") == zoo.make_config(zoo.ARCHITECTURES["seed"])


def test_cache_hit_returns_identical_weights(mnist, tmp_path):
    model, history = zoo.trained_model("seed", cache_dir=tmp_path, **SMALL)
    assert history["from_cache"] is False and len(history["loss"]) == 1
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".npz"]      # no temporary files left
    again, history2 = zoo.trained_model("seed", cache_dir=tmp_path, **SMALL)
    assert history2["from_cache"] is True and history2["key"] == history["key"]
    assert _same_weights(model, again)
    assert history2["loss"] == history["loss"] and history2["seconds"] == history["seconds"]
    assert not _same_weights(model, seed_network(0))                               # it did train


def test_env_variable_chooses_the_folder(mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_LIB_CACHE", str(tmp_path / "models"))
    assert zoo.cache_folder() == tmp_path / "models"
    _, history = zoo.trained_model("mlp", **SMALL)
    assert (tmp_path / "models" / f"{history['key']}.npz").is_file()


@pytest.mark.parametrize("which", ["npz", "json", "missing_npz"])
def test_corrupt_cache_is_retrained(mnist, tmp_path, which):
    model, history = zoo.trained_model("seed", cache_dir=tmp_path, **SMALL)
    weights, meta = tmp_path / f"{history['key']}.npz", tmp_path / f"{history['key']}.json"
    if which == "npz":
        weights.write_bytes(b"PK\x03\x04 truncated")
    elif which == "json":
        meta.write_text("{not json", encoding="utf-8")
    else:
        weights.unlink()
    again, history2 = zoo.trained_model("seed", cache_dir=tmp_path, **SMALL)
    assert history2["from_cache"] is False
    assert _same_weights(model, again)                     # same seed, same data: same weights
    assert json.loads(meta.read_text(encoding="utf-8"))["config"]["arch"] == zoo.ARCHITECTURES["seed"]
    _, history3 = zoo.trained_model("seed", cache_dir=tmp_path, **SMALL)
    assert history3["from_cache"] is True


def test_report_adam_and_schedule_and_shifts_train(mnist, tmp_path):
    _, h = zoo.trained_model("seed", cache_dir=tmp_path, optimizer="report_adam", lr=0.01, **SMALL)
    assert np.isfinite(h["loss"][0])
    _, h = zoo.trained_model("seed", cache_dir=tmp_path, lr_decay=0.5, shift=2,
                             **dict(SMALL, epochs=2))
    assert h["lr"] == [1e-3, 5e-4]


def test_val_size_holds_out_a_validation_set(mnist, tmp_path):
    from cnn_lib import Adam, evaluate, fit, train_val_split
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="val_size"):
            zoo.make_config("seed", val_size=bad)
    model, h = zoo.trained_model("seed", cache_dir=tmp_path, val_size=500, **dict(SMALL, epochs=2))
    assert len(h["val_accuracy"]) == len(h["val_loss"]) == 2 and h["cpu_seconds"] > 0
    # the same run by hand: split first (seed 0), then the first n_train of the rest
    x, y, _, _ = mnist
    x_tr, y_tr, x_val, y_val = train_val_split(x, y, val_size=500, seed=0)
    ref = zoo.build("seed", 0)
    fit(ref, x_tr[:256], y_tr[:256], epochs=2, batch_size=64, optimizer=Adam(ref.params(), lr=1e-3),
        seed=0, progress=False)
    assert _same_weights(model, ref)
    assert h["val_accuracy"][-1] == evaluate(ref, x_val, y_val)[1]
    assert 0.1 < h["val_accuracy"][-1] < 1
    # the cached history keeps the validation curve and the CPU time
    again, h2 = zoo.trained_model("seed", cache_dir=tmp_path, val_size=500, **dict(SMALL, epochs=2))
    assert h2["from_cache"] and h2["val_accuracy"] == h["val_accuracy"] and h2["cpu_seconds"] == h["cpu_seconds"]
    # without val_size nothing is held out: different data, different weights
    plain, h3 = zoo.trained_model("seed", cache_dir=tmp_path, **dict(SMALL, epochs=2))
    assert "val_accuracy" not in h3 and not _same_weights(plain, model)


def test_random_shifts_moves_images_and_fills_background():
    x = np.full((50, 1, 8, 8), -MNIST_MEAN / MNIST_STD, dtype=np.float32)
    x[:, 0, 4, 4] = 5.0
    aug = zoo.random_shifts(2)
    out = aug(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    rows, cols = np.nonzero(out[:, 0] == 5.0)[1:]
    assert len(rows) == 50                                           # the dot is never lost
    assert set(rows - 4) <= set(range(-2, 3)) and set(cols - 4) <= set(range(-2, 3))
    assert len(set(zip(rows, cols))) > 10                            # and moves in many ways
    assert np.allclose(np.sort(out, axis=None)[:-50], -MNIST_MEAN / MNIST_STD)
    again = aug(x, np.random.default_rng(0))
    assert np.array_equal(out, again)                                # reproducible from the rng
    assert np.array_equal(zoo.random_shifts(0)(x, np.random.default_rng(0)), x)


def test_layer_outputs_follow_the_summary():
    model = zoo.build("seed")
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    outs = zoo.layer_outputs(model, x)
    assert [n for n, _ in outs] == [r[0] for r in model.summary()]
    assert [a.shape[1:] for _, a in outs] == [r[2] for r in model.summary()]
    assert np.array_equal(outs[-1][1], model.forward(x, train=False))


def test_plot_architecture():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ax = zoo.plot_architecture(zoo.build("seed"))
    texts = " ".join(t.get_text() for t in ax.texts)
    for shape in ("1×28×28", "8×24×24", "8×20×20", "8×10×10", "800", "128", "10"):
        assert shape in texts
    assert "105,634" in ax.get_title()
    assert ax.figure.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    plt.close(ax.figure)


def test_history_is_written_atomically(mnist, tmp_path, monkeypatch):
    """trained_model writes its history with cnn_lib.atomic.atomic_write: an error mid-write
    keeps the old file and leaves no temporary."""
    _, history = zoo.trained_model("seed", cache_dir=tmp_path, **SMALL)
    weights, meta = tmp_path / f"{history['key']}.npz", tmp_path / f"{history['key']}.json"
    before = meta.read_text(encoding="utf-8")
    weights.unlink()                                          # a cache miss: it trains and writes again

    def broken(obj, fh):
        fh.write('{"a": ')
        raise RuntimeError("disk full")

    monkeypatch.setattr(json, "dump", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        zoo.trained_model("seed", cache_dir=tmp_path, **SMALL)
    assert meta.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([weights.name, meta.name])
