"""Tests for cnn_lib.data: IDX reading, MNIST loading, checks and downloads."""

import functools
import gzip
import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from cnn_lib import data
from cnn_lib.data import DataError, load_mnist, read_idx

NAMES = list(data.FILES)  # train-images, train-labels, t10k-images, t10k-labels
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def idx_bytes(arr, code=None):
    """Encode ``arr`` as IDX content (big-endian, header from its shape)."""
    arr = np.asarray(arr)
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    key = arr.dtype.kind + str(arr.dtype.itemsize)
    code = codes[key] if code is None else code
    header = bytes([0, 0, code, arr.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in arr.shape
    )
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def synthetic_contents(n_train=5, n_test=3, seed=0):
    """Small fake MNIST: {name: uncompressed IDX content}."""
    rng = np.random.default_rng(seed)
    return {
        NAMES[0]: idx_bytes(rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)),
        NAMES[1]: idx_bytes(np.arange(n_train, dtype=np.uint8) % 10),
        NAMES[2]: idx_bytes(rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)),
        NAMES[3]: idx_bytes(np.arange(n_test, dtype=np.uint8) % 10),
    }


def files_table(contents):
    return {n: (hashlib.sha256(c).hexdigest(), len(c)) for n, c in contents.items()}


def write_folder(folder, contents, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for name, c in contents.items():
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(c))
        else:
            (folder / name).write_bytes(c)
    return folder


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No CNN_LIB_DATA, a private cache folder, no network. (load_mnist's in-memory memo needs
    no clearing: its key holds the folder, the files table and each file's size, time and
    inode, so a test's own folders never meet another test's entries.)"""
    monkeypatch.delenv("CNN_LIB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(data, "MIRRORS", [])
    monkeypatch.setattr(data, "TIMEOUT", 5.0)
    yield


@pytest.fixture
def synthetic(monkeypatch):
    contents = synthetic_contents()
    monkeypatch.setattr(data, "FILES", files_table(contents))
    return contents


def cache_folder(tmp_path):
    return tmp_path / "xdg" / "cnn_lib" / "mnist"


# --------------------------------------------------------------------------
# real MNIST
# --------------------------------------------------------------------------


def _real_folder():
    env = os.environ.get("CNN_LIB_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "mnist"


REAL = _real_folder()
needs_real = pytest.mark.skipif(
    not all(
        (REAL / (n + ".gz")).is_file() or (REAL / n).is_file() for n in data.FILES
    ),
    reason=f"real MNIST not found in {REAL} (set CNN_LIB_DATA to a folder with "
    "the four MNIST IDX files)",
)


@pytest.fixture(scope="module")
def real_unnormalized():
    return load_mnist(REAL, normalize=False, progress=False)


@pytest.fixture(scope="module")
def real(real_unnormalized):
    """load_mnist(REAL), set up right after real_unnormalized: hits the memo."""
    return load_mnist(REAL, progress=False)


@pytest.fixture(scope="module")
def real_raw_train_images():
    name = next(n for n in data.FILES if n.startswith("train-images"))
    path = REAL / (name + ".gz")
    return read_idx(path if path.is_file() else REAL / name)


def mean_std(x, chunks=10):
    """float64 mean and std of a big float32 array, without a full float64 copy."""
    parts = np.array_split(x.reshape(-1), chunks)
    n = x.size
    mean = sum(p.sum(dtype=np.float64) for p in parts) / n
    var = sum(np.square(p.astype(np.float64) - mean).sum() for p in parts) / n
    return mean, np.sqrt(var)


@needs_real
def test_real_shapes_dtypes_counts(real):
    x_tr, y_tr, x_te, y_te = real
    assert x_tr.shape == (60000, 1, 28, 28) and x_te.shape == (10000, 1, 28, 28)
    assert y_tr.shape == (60000,) and y_te.shape == (10000,)
    assert x_tr.dtype == x_te.dtype == np.float32
    assert y_tr.dtype == y_te.dtype == np.int64
    assert x_tr.flags.writeable and y_tr.flags.writeable


@needs_real
def test_real_label_histogram(real):
    _, y_tr, _, y_te = real
    counts = np.bincount(y_tr, minlength=10)
    assert counts.tolist() == TRAIN_COUNTS
    assert np.all((counts >= 5000) & (counts <= 7000))
    assert np.bincount(y_te, minlength=10).sum() == 10000
    assert y_te.min() == 0 and y_te.max() == 9


@needs_real
def test_real_normalized_statistics(real):
    x_tr, _, x_te, _ = real
    mean, std = mean_std(x_tr)
    assert abs(mean) < 1e-5 and abs(std - 1) < 1e-5
    # the test set uses the training statistics: close to, but not exactly, 0/1
    mean, std = mean_std(x_te)
    assert 0 < abs(mean) < 0.05 and 0 < abs(std - 1) < 0.05


@needs_real
def test_real_raw_pixels_and_unnormalized(real, real_unnormalized, real_raw_train_images):
    raw = real_raw_train_images
    assert raw.dtype == np.uint8 and raw.shape == (60000, 28, 28)
    assert raw.min() == 0 and raw.max() == 255
    x_tr, y_tr, x_te, _ = real_unnormalized
    assert x_tr.min() == 0.0 and x_tr.max() == 1.0 and x_te.max() == 1.0
    sl = slice(0, 60000, 97)
    np.testing.assert_array_equal(x_tr[sl, 0], raw[sl].astype(np.float32) / np.float32(255))
    expected = (raw[sl] / 255.0 - data.MNIST_MEAN) / data.MNIST_STD
    np.testing.assert_allclose(real[0][sl, 0], expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(y_tr, real[1])


@needs_real
def test_real_mean_std_constants(real_raw_train_images):
    raw = real_raw_train_images
    # exact statistics from the 256-bin pixel histogram, in float64
    hist = sum(np.bincount(c, minlength=256) for c in np.array_split(raw.ravel(), 20))
    hist = hist.astype(np.float64)
    values = np.arange(256) / 255.0
    n = hist.sum()
    mean = (hist * values).sum() / n
    std = np.sqrt((hist * (values - mean) ** 2).sum() / n)
    assert abs(mean - data.MNIST_MEAN) < 1e-6
    assert abs(std - data.MNIST_STD) < 1e-6


@needs_real
def test_real_returns_fresh_arrays(real):
    real[0][0, 0, 0, 0] = 123.0  # callers may modify what they get ...
    real[1][0] = 42
    b = load_mnist(REAL, progress=False)  # ... without affecting the next call
    assert b[0][0, 0, 0, 0] != 123.0 and b[1][0] != 42
    real[0][0, 0, 0, 0] = b[0][0, 0, 0, 0]
    real[1][0] = b[1][0]


# --------------------------------------------------------------------------
# read_idx
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-3, 0, 5], dtype=np.int8),
        np.array([[-300, 2], [7, 30000]], dtype=np.int16),
        np.array([-(2**31), 2**31 - 1], dtype=np.int32),
        np.array([1.5, -2.25, np.inf], dtype=np.float32),
        np.array([[np.pi]], dtype=np.float64),
    ],
)
def test_read_idx_dtypes_native_order(tmp_path, arr):
    p = tmp_path / "a.idx"
    p.write_bytes(idx_bytes(arr))
    out = read_idx(p)
    assert out.shape == arr.shape
    assert out.dtype == arr.dtype and out.dtype.isnative
    assert out.flags.writeable
    np.testing.assert_array_equal(out, arr)


def test_read_idx_raw_and_gz_identical(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    content = idx_bytes(arr)
    (tmp_path / "raw").write_bytes(content)
    # gzip detected by magic bytes, not by suffix
    (tmp_path / "gz_without_suffix").write_bytes(gzip.compress(content))
    a, b = read_idx(tmp_path / "raw"), read_idx(str(tmp_path / "gz_without_suffix"))
    np.testing.assert_array_equal(a, arr)
    np.testing.assert_array_equal(b, arr)
    assert a.dtype == b.dtype == np.uint8


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found") as e:
        read_idx(tmp_path / "nope.idx")
    assert "nope.idx" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_read_idx_wrong_magic(tmp_path):
    p = tmp_path / "bad.idx"
    p.write_bytes(b"\x01\x00\x08\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(DataError, match="first two bytes must be 0") as e:
        read_idx(p)
    assert "bad.idx" in str(e.value)


def test_read_idx_unknown_type(tmp_path):
    p = tmp_path / "t.idx"
    p.write_bytes(b"\x00\x00\x0a\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(DataError, match="unknown IDX type code 0x0A"):
        read_idx(p)


def test_read_idx_truncated(tmp_path):
    content = idx_bytes(np.zeros((2, 3), dtype=np.int32))  # 4 + 2*4 + 6*4 = 36
    p = tmp_path / "trunc.idx"
    p.write_bytes(content[:-5])
    with pytest.raises(DataError, match="truncated") as e:
        read_idx(p)
    assert "36 bytes" in str(e.value) and "31 bytes" in str(e.value)
    # truncated inside the header, and a truncated gzip stream
    p.write_bytes(content[:6])
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)
    p.write_bytes(gzip.compress(content)[:-10])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(p)


def test_read_idx_trailing_bytes(tmp_path):
    p = tmp_path / "trail.idx"
    p.write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)) + b"junk")
    with pytest.raises(DataError, match="trailing bytes") as e:
        read_idx(p)
    assert "4 extra" in str(e.value)


# --------------------------------------------------------------------------
# load_mnist on synthetic folders
# --------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_synthetic_folder(tmp_path, synthetic, gz):
    folder = write_folder(tmp_path / "mnist", synthetic, gz=gz)
    x_tr, y_tr, x_te, y_te = load_mnist(folder, normalize=False)
    assert x_tr.shape == (5, 1, 28, 28) and x_te.shape == (3, 1, 28, 28)
    assert y_tr.dtype == np.int64 and y_tr.tolist() == [0, 1, 2, 3, 4]
    raw = np.frombuffer(synthetic[NAMES[0]], np.uint8, offset=16).reshape(5, 28, 28)
    np.testing.assert_array_equal(x_tr[:, 0], raw.astype(np.float32) / np.float32(255))
    xn = load_mnist(folder)[0]
    expected = (raw / 255.0 - data.MNIST_MEAN) / data.MNIST_STD
    np.testing.assert_allclose(xn[:, 0], expected, rtol=0, atol=1e-5)


def test_env_var_folder(tmp_path, synthetic, monkeypatch):
    folder = write_folder(tmp_path / "envdata", synthetic)
    monkeypatch.setenv("CNN_LIB_DATA", str(folder))
    assert load_mnist()[0].shape == (5, 1, 28, 28)


def _no_network(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("load_mnist must not download here")

    monkeypatch.setattr(data.urllib.request, "urlopen", fail)
    monkeypatch.setattr(data, "MIRRORS", ["http://127.0.0.1:9/"])


def test_missing_file_in_path_folder_no_download(tmp_path, synthetic, monkeypatch):
    _no_network(monkeypatch)
    folder = write_folder(tmp_path / "mnist", synthetic)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as e:
        load_mnist(folder)
    msg = str(e.value)
    assert "t10k-labels-idx1-ubyte" in msg and str(folder) in msg
    assert "CNN_LIB_DATA" in msg and "path" in msg
    assert "train-images" not in msg.split("not found")[0]  # only the missing one
    assert not cache_folder(tmp_path).exists()


def test_missing_file_in_env_folder_no_download(tmp_path, synthetic, monkeypatch):
    _no_network(monkeypatch)
    folder = write_folder(tmp_path / "envdata", synthetic)
    (folder / "train-images-idx3-ubyte.gz").unlink()
    monkeypatch.setenv("CNN_LIB_DATA", str(folder))
    with pytest.raises(DataError, match="train-images-idx3-ubyte") as e:
        load_mnist()
    assert "CNN_LIB_DATA" in str(e.value)
    assert not cache_folder(tmp_path).exists()


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_cache_missing_and_download_disabled(tmp_path, synthetic, monkeypatch):
    _no_network(monkeypatch)
    with pytest.raises(DataError, match="download=False"):
        load_mnist(download=False)


def test_count_mismatch(tmp_path, monkeypatch):
    contents = synthetic_contents()
    contents[NAMES[1]] = idx_bytes(np.arange(4, dtype=np.uint8))  # 5 images, 4 labels
    monkeypatch.setattr(data, "FILES", files_table(contents))
    folder = write_folder(tmp_path / "mnist", contents)
    with pytest.raises(DataError, match="count mismatch") as e:
        load_mnist(folder)
    assert "5 images" in str(e.value) and "4 labels" in str(e.value)


def test_bad_image_dims_and_labels(tmp_path, monkeypatch):
    contents = synthetic_contents()
    contents[NAMES[2]] = idx_bytes(np.zeros((3, 28, 27), dtype=np.uint8))
    monkeypatch.setattr(data, "FILES", files_table(contents))
    with pytest.raises(DataError, match="28, 28"):
        load_mnist(write_folder(tmp_path / "a", contents))

    contents = synthetic_contents()
    contents[NAMES[3]] = idx_bytes(np.array([0, 10, 2], dtype=np.uint8))
    monkeypatch.setattr(data, "FILES", files_table(contents))
    with pytest.raises(DataError, match="0..9"):
        load_mnist(write_folder(tmp_path / "b", contents))


def test_checksum_mismatch_user_folder_keeps_file(tmp_path, synthetic, monkeypatch):
    folder = write_folder(tmp_path / "mnist", synthetic)
    table = dict(data.FILES)
    table[NAMES[1]] = ("0" * 64, table[NAMES[1]][1])
    monkeypatch.setattr(data, "FILES", table)
    with pytest.raises(DataError, match="checksum mismatch") as e:
        load_mnist(folder)
    msg = str(e.value)
    assert NAMES[1] in msg and "0" * 64 in msg
    assert hashlib.sha256(synthetic[NAMES[1]]).hexdigest() in msg
    assert (folder / (NAMES[1] + ".gz")).exists()  # never delete user files


def test_memo_rereads_changed_file(tmp_path, synthetic):
    folder = write_folder(tmp_path / "mnist", synthetic)
    load_mnist(folder)
    p = folder / (NAMES[0] + ".gz")
    p.write_bytes(gzip.compress(synthetic[NAMES[0]]) + b"x")  # now different
    with pytest.raises(DataError):
        load_mnist(folder)


# --------------------------------------------------------------------------
# downloads from a local HTTP server
# --------------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/trickle/"):  # one byte every 0.1 s, forever (well, 10 min)
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(6000):
                    self.wfile.write(b"\x1f")
                    self.wfile.flush()
                    threading.Event().wait(0.1)
            except OSError:
                pass
            self.close_connection = True
            return
        if self.path.startswith("/trunc/"):  # promise more bytes than sent
            body = b"\x1f\x8b" + b"\0" * 100
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) * 10))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    (root / "mnist").mkdir(parents=True)
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root / "mnist", f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_into_cache(tmp_path, synthetic, server, monkeypatch):
    served, url = server
    write_folder(served, synthetic)
    monkeypatch.setattr(
        data,
        "MIRRORS",
        [f"http://127.0.0.1:{_closed_port()}/mnist/", f"{url}/missing/", f"{url}/mnist"],
    )
    x_tr, y_tr, x_te, y_te = load_mnist(progress=False)
    assert x_tr.shape == (5, 1, 28, 28) and y_te.tolist() == [0, 1, 2]
    cache = cache_folder(tmp_path)
    # only the four final files: no temporary / partial files left behind
    assert sorted(p.name for p in cache.iterdir()) == sorted(n + ".gz" for n in NAMES)
    for n in NAMES:
        assert gzip.decompress((cache / (n + ".gz")).read_bytes()) == synthetic[n]

    # second call uses the cache, not the network; the files' new times make load_mnist's
    # in-memory memo miss, so they are read and verified again
    _no_network(monkeypatch)
    for p in cache.iterdir():
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    np.testing.assert_array_equal(load_mnist(progress=False)[1], y_tr)


def test_download_progress_bar_runs(tmp_path, synthetic, server, monkeypatch):
    served, url = server
    write_folder(served, synthetic)
    monkeypatch.setattr(data, "MIRRORS", [f"{url}/mnist/"])
    assert load_mnist(progress=True)[0].shape == (5, 1, 28, 28)


def test_download_bad_checksum_leaves_nothing(tmp_path, synthetic, server, monkeypatch):
    served, url = server
    write_folder(served, synthetic)
    table = dict(data.FILES)
    table[NAMES[0]] = ("f" * 64, table[NAMES[0]][1])
    monkeypatch.setattr(data, "FILES", table)
    mirrors = [f"{url}/trunc/", f"{url}/mnist/"]
    monkeypatch.setattr(data, "MIRRORS", mirrors)
    with pytest.raises(DataError) as e:
        load_mnist(progress=False)
    msg = str(e.value)
    assert NAMES[0] in msg and "checksum mismatch" in msg
    assert all(m in msg for m in mirrors)
    assert "CNN_LIB_DATA" in msg and "path=" in msg
    cache = cache_folder(tmp_path)
    assert list(cache.iterdir()) == []  # neither final nor temporary files


def test_download_truncated_transfer_leaves_nothing(tmp_path, synthetic, server, monkeypatch):
    _, url = server
    monkeypatch.setattr(data, "MIRRORS", [f"{url}/trunc/"])
    with pytest.raises(DataError, match="incomplete download"):
        load_mnist(progress=False)
    assert list(cache_folder(tmp_path).iterdir()) == []


def test_no_partial_final_file_during_download(tmp_path, synthetic, server, monkeypatch):
    """The final name appears only via os.replace of a complete, verified file."""
    served, url = server
    write_folder(served, synthetic)
    monkeypatch.setattr(data, "MIRRORS", [f"{url}/mnist/"])
    cache = cache_folder(tmp_path)
    real_replace = os.replace
    seen = []

    def spy(src, dst):
        # at the moment of the rename the final file does not exist yet and
        # the temporary file already holds the complete, verified content
        name = Path(dst).name[: -len(".gz")]
        assert not Path(dst).exists()
        assert Path(src).parent == cache and Path(src).name.startswith(f".{name}.gz.tmp-")
        assert gzip.decompress(Path(src).read_bytes()) == synthetic[name]
        seen.append(name)
        real_replace(src, dst)

    monkeypatch.setattr(data.os, "replace", spy)
    load_mnist(progress=False)
    assert sorted(seen) == sorted(NAMES)


def test_corrupt_cached_file_is_deleted_then_redownloaded(
    tmp_path, synthetic, server, monkeypatch
):
    served, url = server
    write_folder(served, synthetic)
    cache = write_folder(cache_folder(tmp_path), synthetic)
    bad = cache / (NAMES[2] + ".gz")
    bad.write_bytes(gzip.compress(b"\0\0\x08\x01" + (2).to_bytes(4, "big") + b"ab"))
    monkeypatch.setattr(data, "MIRRORS", [f"{url}/mnist/"])
    with pytest.raises(DataError, match="checksum mismatch.*deleted"):
        load_mnist(progress=False)
    assert not bad.exists()
    assert load_mnist(progress=False)[2].shape == (3, 1, 28, 28)
    assert gzip.decompress(bad.read_bytes()) == synthetic[NAMES[2]]


def test_train_val_split_is_a_seeded_partition():
    from cnn_lib import train_val_split
    x = np.arange(100, dtype=np.float32).reshape(100, 1) * 2
    y = np.arange(100)
    xt, yt, xv, yv = train_val_split(x, y, val_size=20, seed=3)
    assert xt.shape == (80, 1) and xv.shape == (20, 1)
    assert sorted(np.concatenate([yt, yv]).tolist()) == list(range(100))   # a partition
    assert np.array_equal(xt[:, 0], 2 * yt) and np.array_equal(xv[:, 0], 2 * yv)   # pairs kept
    assert np.all(np.diff(yt) > 0) and np.all(np.diff(yv) > 0)          # original order kept
    again = train_val_split(x, y, val_size=20, seed=3)
    assert np.array_equal(again[3], yv)                                   # reproducible
    assert not np.array_equal(train_val_split(x, y, val_size=20, seed=4)[3], yv)


@pytest.mark.parametrize("val_size", [0, 100, -1, 2.5, True])
def test_train_val_split_rejects_bad_sizes(val_size):
    from cnn_lib import train_val_split
    with pytest.raises((ValueError, TypeError), match="val_size"):
        train_val_split(np.zeros((100, 2)), np.zeros(100, dtype=int), val_size=val_size)


# --------------------------------------------------------------------------
# issue 12: nothing silent (unreadable files, slow servers, killed downloads)
# --------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_cached_file_is_not_deleted(tmp_path, synthetic):
    """A valid file the user cannot read is not "corrupt": a clear error naming the file and
    the OS error, and the file stays."""
    cache = write_folder(cache_folder(tmp_path), synthetic)
    locked = cache / (NAMES[1] + ".gz")
    os.chmod(locked, 0)
    try:
        with pytest.raises(DataError) as e:
            load_mnist(progress=False)
        msg = str(e.value)
        assert str(locked) in msg and "Permission denied" in msg and "left in place" in msg
        assert "deleted" not in msg.replace("delete it", "")
        assert locked.exists()
    finally:
        os.chmod(locked, 0o644)
    assert load_mnist(progress=False)[1].shape == (5,)      # and it is still good


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied"), OSError(5, "Input/output error")])
def test_read_error_on_cached_file_is_not_deleted(tmp_path, synthetic, monkeypatch, error):
    """The same as above, simulated (so that it also runs as root): the operating system refuses
    to read one cached file."""
    import builtins
    cache = write_folder(cache_folder(tmp_path), synthetic)
    locked = cache / (NAMES[1] + ".gz")

    def refusing_open(path, *args, **kwargs):
        if Path(path) == locked:
            raise error
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(data, "open", refusing_open, raising=False)
    with pytest.raises(DataError) as e:
        load_mnist(progress=False)
    msg = str(e.value)
    assert str(locked) in msg and error.strerror in msg and "left in place" in msg
    assert locked.exists()
    monkeypatch.undo()


def test_trickling_server_hits_the_total_deadline(tmp_path, synthetic, server, monkeypatch):
    """A server that sends a byte every 0.1 s never trips the per-read timeout; the total
    deadline per file stops it (configurable: 1 s here)."""
    import time
    _, url = server
    monkeypatch.setattr(data, "MIRRORS", [f"{url}/trickle/"])
    monkeypatch.setattr(data, "TIMEOUT", 1.0)
    monkeypatch.setattr(data, "DEADLINE", 1.0)
    start = time.monotonic()
    with pytest.raises(DataError, match="too slow"):
        load_mnist(progress=False)
    assert time.monotonic() - start < 4
    assert list(cache_folder(tmp_path).iterdir()) == []


def test_sigterm_during_download_leaves_nothing_and_stale_temporaries_are_cleaned(
        tmp_path, synthetic, server, monkeypatch):
    """SIGTERM while a file is downloading: nothing is left in the cache (the file is received
    in memory). Temporaries of killed writers (a dead pid, or a legacy ``.part`` file older than
    a minute) are removed by the next download; a live writer's temporary is kept."""
    import signal
    import subprocess
    import sys
    import time
    from cnn_lib.atomic import STALE_SECONDS, temporary_name
    served, url = server
    write_folder(served, synthetic)
    cache = cache_folder(tmp_path)
    code = f"""
import sys
from cnn_lib import data
data.MIRRORS = [{url + '/trickle/'!r}]
print("start", flush=True)
data.load_mnist(progress=False)
"""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    env.pop("CNN_LIB_DATA", None)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "start"
        time.sleep(1.0)                                   # inside the trickling download
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGTERM
    assert list(cache.iterdir()) == []

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = cache / (NAMES[0] + ".gz")
    stale = Path(temporary_name(target, pid=dead.pid))
    live = Path(temporary_name(target, pid=os.getppid()))
    legacy = cache / f".{NAMES[0]}.gz.abc123.part"
    for p in (stale, live, legacy):
        p.write_bytes(b"partial")
    past = time.time() - 2 * STALE_SECONDS
    os.utime(legacy, (past, past))
    monkeypatch.setattr(data, "MIRRORS", [f"{url}/mnist/"])
    load_mnist(progress=False)
    left = sorted(p.name for p in cache.iterdir())
    assert left == sorted([n + ".gz" for n in NAMES] + [live.name])
