"""Shared fixtures: the real MNIST folder (same lookup as tests/test_data.py), and figures
closed after every test."""

import os
import sys
from pathlib import Path

import pytest

from cnn_lib import data


def _mnist_folder():
    env = os.environ.get("CNN_LIB_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "mnist"


MNIST_DIR = _mnist_folder()  # read once, at import, before any test changes the environment
MNIST_PRESENT = all((MNIST_DIR / (n + ".gz")).is_file() or (MNIST_DIR / n).is_file() for n in data.FILES)


@pytest.fixture(scope="session")
def mnist():
    """``(x_train, y_train, x_test, y_test)`` of the real MNIST: float32 (N, 1, 28, 28) and int64 (N,).

    Tests that use it are skipped (not failed) when the folder is absent."""
    if not MNIST_PRESENT:
        pytest.skip(f"real MNIST not found in {MNIST_DIR} (set CNN_LIB_DATA to a folder with the four MNIST IDX files)")
    return data.load_mnist(MNIST_DIR, download=False, progress=False)


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the matplotlib figures a test opened (tests draw with the Agg backend)."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
