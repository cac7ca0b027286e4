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
