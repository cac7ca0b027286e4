"""The command line: clear one-line errors, and a real (small) train/evaluate round trip."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnn_lib
from cnn_lib.__main__ import main

DATA = os.environ.get("CNN_LIB_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "mnist")
needs_data = pytest.mark.skipif(not Path(DATA).is_dir(), reason=f"MNIST not found in {DATA}")


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cnn_lib", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.parametrize("args, words", [
    (["train", "--epochs", "0"], "positive"),
    (["train", "--batch-size", "abc"], "int"),
    (["train", "--lr", "-1"], "positive"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_bad_arguments_give_one_line(args, words):
    r = run(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_evaluate_missing_and_bad_files(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.npz"), "--data", DATA]) == 1
    assert "no weights file" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    assert main(["evaluate", str(bad), "--data", DATA]) == 1
    assert "not an .npz archive" in capsys.readouterr().err
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **{"conv1.w": np.zeros((3, 3))})
    assert main(["evaluate", str(wrong), "--data", DATA]) == 1
    assert "does not match" in capsys.readouterr().err


def test_missing_data_folder_is_one_clear_line(tmp_path):
    r = run("train", "--data", str(tmp_path), "--no-progress", "--out", str(tmp_path / "w.npz"))
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert not (tmp_path / "w.npz").exists()


def test_out_must_be_npz(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "w.txt"), "--data", DATA, "--no-progress"]) == 1
    assert ".npz" in capsys.readouterr().err


@needs_data
def test_train_then_evaluate_round_trip(tmp_path, monkeypatch, capsys):
    # One epoch on a 3,000-image subset keeps this test quick: shrink the data the CLI sees.
    real = cnn_lib.data.load_mnist

    def small(*args, **kwargs):
        x, y, xt, yt = real(*args, **kwargs)
        return x[:3000], y[:3000], xt[:1000], yt[:1000]

    monkeypatch.setattr(cnn_lib.data, "load_mnist", small)
    out = tmp_path / "w.npz"
    assert main(["train", "--epochs", "1", "--data", DATA, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and out.exists()
    trained_acc = float(printed.split("test accuracy ")[1].split("%")[0])
    assert trained_acc > 85
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # no temporary file left behind
    assert main(["evaluate", str(out), "--data", DATA]) == 0
    again = float(capsys.readouterr().out.split("test accuracy ")[1].split("%")[0])
    assert again == trained_acc


# --------------------------------------------------------------------------- issue 12: nothing silent
@pytest.mark.parametrize("option", ["--lr-decay", "--lr"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e999"])
def test_non_finite_float_options_are_refused(option, value, tmp_path):
    r = run("train", f"{option}={value}", "--out", str(tmp_path / "w.npz"), "--data", str(tmp_path))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "finite" in lines[0] and option in lines[0], r.stderr
    assert not (tmp_path / "w.npz").exists()


@pytest.mark.parametrize("seed", ["-1", "1.5", "x"])
def test_bad_seed_is_refused_before_loading_data(seed, tmp_path):
    r = run("train", "--seed", seed, "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "w.npz"))
    assert r.returncode == 2 and "--seed" in r.stderr and "MNIST" not in r.stderr, r.stderr


def _no_data(*args, **kwargs):
    raise AssertionError("load_mnist was called before the destination was checked")


@pytest.mark.parametrize("kind", ["missing folder", "directory", "read-only folder"])
def test_out_is_checked_before_training_and_named(kind, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cnn_lib.data, "load_mnist", _no_data)
    if kind == "missing folder":
        out = tmp_path / "no" / "such" / "w.npz"
    elif kind == "directory":
        out = tmp_path / "w.npz"
        out.mkdir()
    else:
        if os.geteuid() == 0:
            pytest.skip("root can write into a read-only folder")
        (tmp_path / "ro").mkdir()
        os.chmod(tmp_path / "ro", 0o500)
        out = tmp_path / "ro" / "w.npz"
    try:
        assert main(["train", "--out", str(out), "--data", DATA, "--no-progress"]) == 1
    finally:
        if kind == "read-only folder":
            os.chmod(tmp_path / "ro", 0o700)
    err = capsys.readouterr().err
    assert str(out) in err and ".tmp" not in err, err


def test_training_that_goes_non_finite_saves_nothing(tmp_path, monkeypatch, capsys):
    """A schedule that reaches NaN (here: via a tiny subset and a patched fit) never leaves a
    weights file: the error is reported, the exit code is 1."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    x[5, 0, 3, 3] = np.nan                                   # a NaN pixel in the training data
    y = rng.integers(0, 10, 64)
    monkeypatch.setattr(cnn_lib.data, "load_mnist", lambda *a, **k: (x, y, x[:8], y[:8]))
    out = tmp_path / "w.npz"
    assert main(["train", "--epochs", "1", "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "epoch 1" in err and "NaN" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_evaluate_crafted_huge_header_is_refused_without_reading(tmp_path):
    """An .npz whose header declares 2**44 floats: one clear line, no MemoryError, and the data
    is never loaded (the check happens before load_mnist)."""
    import io
    import zipfile
    from numpy.lib import format as npformat
    path = tmp_path / "huge.npz"
    state = cnn_lib.seed_network(0).state_dict()
    np.savez(path, **{k: v for k, v in state.items() if k != "conv1.w"})
    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (2 ** 44,)})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("conv1.w.npy", buf.getvalue())
    r = run("evaluate", str(path), "--data", str(tmp_path / "nowhere"))
    assert r.returncode == 1, r.stderr
    assert "conv1.w" in r.stderr and "shape" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("decay", ["1e300", "1e-300"])
def test_schedule_out_of_range_is_refused_before_loading_data(decay, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cnn_lib.data, "load_mnist", _no_data)
    out = tmp_path / "w.npz"
    assert main(["train", "--epochs", "3", "--lr-decay", decay, "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--lr-decay" in err and "epoch" in err
    assert not out.exists()
