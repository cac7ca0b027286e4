"""MNIST: reading IDX files, checking them, downloading them.

MNIST is stored in the IDX format: a 4-byte magic number (two zero bytes, a
type code, the number of dimensions), one big-endian 32-bit size per
dimension, then the values in C order. :func:`read_idx` reads any such file,
gzipped or not. :func:`load_mnist` finds the four MNIST files (a folder you
give, else the ``CNN_LIB_DATA`` environment variable, else a cache folder it
downloads into), checks them against known SHA-256 checksums and returns
float32 images and int64 labels ready for a CNN.

Nothing here ever substitutes other data: a missing, corrupt or unexpected
file raises :class:`DataError` with a message saying what to do.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import time
import urllib.request
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .atomic import atomic_write

__all__ = [
    "DataError",
    "FILES",
    "MIRRORS",
    "MNIST_MEAN",
    "MNIST_STD",
    "load_mnist",
    "read_idx",
    "train_val_split",
]


class DataError(ValueError):
    """A data file is missing, malformed, corrupt or could not be downloaded."""


class _ReadError(DataError):
    """The operating system refused to read a file (permissions, I/O error): its content is
    unknown, so it is not corrupt and must not be deleted."""


#: The four MNIST files: ``{name: (sha256 of the uncompressed IDX content,
#: size in bytes of the uncompressed IDX content)}``. Checking the
#: *uncompressed* content works for both the original ``.gz`` files, files
#: gzipped again, and uncompressed copies.
FILES: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47_040_016,
    ),
    "train-labels-idx1-ubyte": (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        60_008,
    ),
    "t10k-images-idx3-ubyte": (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        7_840_016,
    ),
    "t10k-labels-idx1-ubyte": (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        10_008,
    ),
}

#: Base URLs tried in order; each serves ``NAME.gz`` for every name in FILES.
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

#: Mean and standard deviation of all 60000 * 28 * 28 training pixels after
#: scaling to [0, 1] (computed exactly from the pixel histogram; these are the
#: nearest float64 values).
MNIST_MEAN = 0.13066047627384287
MNIST_STD = 0.30810780385646268

#: Seconds to wait for a mirror to connect or to send the next bytes before giving up on it.
TIMEOUT = 30.0

#: Seconds allowed for downloading one file from one mirror, in total: a server that trickles
#: bytes slowly enough never trips :data:`TIMEOUT`, but is abandoned after this (it may run
#: over by at most one ``TIMEOUT``).
DEADLINE = 600.0

_TRAIN_IMAGES, _TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
_TEST_IMAGES, _TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian dtype as stored in the file.
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# In-process memo of verified raw uint8 arrays (read-only), so that a second
# load_mnist() call skips gunzip + SHA-256. Keyed by folder, the FILES table
# and (path, size, mtime, inode) of each file, so a changed file is re-read.
_MEMO: OrderedDict = OrderedDict()
_MEMO_SIZE = 2


# --------------------------------------------------------------------------
# IDX reading
# --------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    """Return the file's content, gunzipped if it starts with the gzip magic."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found.") from None
    except OSError as e:
        raise _ReadError(f"{path}: cannot read file ({e}).") from e
    return _parse_gz(raw, path)


def _parse_gz(raw: bytes, path) -> bytes:
    """``raw`` gunzipped if it starts with the gzip magic, else ``raw``."""
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(
                f"{path}: starts like a gzip file (bytes 1f 8b) but could not be "
                f"decompressed; the file is truncated or corrupt ({e})."
            ) from e
    return raw


def _parse_idx(data: bytes, source) -> np.ndarray:
    """Parse IDX content; the result may be a read-only view of ``data``."""
    if len(data) < 4:
        raise DataError(
            f"{source}: truncated IDX file: expected at least 4 header bytes, "
            f"found {len(data)}."
        )
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{source}: not an IDX file: the first two bytes must be 0x00 0x00, "
            f"found 0x{data[0]:02x} 0x{data[1]:02x}."
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        known = ", ".join(f"0x{c:02X} ({d.str})" for c, d in _IDX_TYPES.items())
        raise DataError(
            f"{source}: unknown IDX type code 0x{code:02X}; expected one of {known}."
        )
    dtype = _IDX_TYPES[code]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{source}: truncated IDX file: the header of a {ndim}-dimensional "
            f"array needs {header} bytes, found {len(data)}."
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = 1
    for s in shape:
        count *= s
    expected = header + count * dtype.itemsize
    dims = " x ".join(map(str, shape)) or "scalar"
    if len(data) < expected:
        raise DataError(
            f"{source}: truncated IDX file: the header promises {dims} values of "
            f"{dtype.str} = {expected} bytes in total, found only {len(data)} bytes."
        )
    if len(data) > expected:
        raise DataError(
            f"{source}: trailing bytes after the IDX data: the header promises "
            f"{dims} values of {dtype.str} = {expected} bytes in total, found "
            f"{len(data)} bytes ({len(data) - expected} extra)."
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    if not dtype.isnative:
        arr = arr.astype(dtype.newbyteorder("="))
    return arr


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzipped or raw) into a NumPy array.

    Gzip is detected by the magic bytes ``1f 8b`` at the start of the file,
    not by the file name.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    numpy.ndarray
        A fresh, writable array in native byte order. Its dtype comes from
        the header's type byte: 0x08 uint8, 0x09 int8, 0x0B int16,
        0x0C int32, 0x0D float32, 0x0E float64.

    Shapes
    ------
    The array has the shape written in the header, e.g. ``(60000, 28, 28)``
    for MNIST training images and ``(60000,)`` for their labels.

    Raises
    ------
    DataError
        If the file is missing or unreadable, is not valid gzip although it
        starts with the gzip magic, does not start with two zero bytes, has an
        unknown type code, or has fewer or more bytes than its header promises.
    """
    path = Path(path)
    arr = _parse_idx(_read_bytes(path), path)
    if not arr.flags.writeable:
        arr = arr.copy()
    return arr


# --------------------------------------------------------------------------
# Folders, checksums, downloads
# --------------------------------------------------------------------------


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "cnn_lib" / "mnist"


def _resolve_folder(path) -> tuple[Path, bool, str]:
    """Return (folder, is_cache, description of where it came from)."""
    if path is not None:
        return Path(path).expanduser().resolve(), False, "the `path` argument"
    env = os.environ.get("CNN_LIB_DATA")
    if env:
        return (
            Path(env).expanduser().resolve(),
            False,
            "the CNN_LIB_DATA environment variable",
        )
    return _cache_dir().expanduser().resolve(), True, "the cache folder"


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / (name + ".gz"), folder / name):
        if candidate.is_file():
            return candidate
    return None


def _check_content(data: bytes, name: str, source) -> None:
    """Raise DataError unless ``data`` is the expected content of ``name``."""
    sha_expected, n_expected = FILES[name]
    sha = hashlib.sha256(data).hexdigest()
    if sha != sha_expected:
        raise DataError(
            f"{source}: checksum mismatch for {name}: expected SHA-256 "
            f"{sha_expected} ({n_expected} bytes uncompressed), found {sha} "
            f"({len(data)} bytes uncompressed)."
        )


def _local_help(cache: Path) -> str:
    return (
        "To use a local copy instead, put the four MNIST files ("
        + ", ".join(n + ".gz" for n in FILES)
        + "; gzipped or not) in a folder and call load_mnist(path=FOLDER) or set "
        f"the environment variable CNN_LIB_DATA=FOLDER. (Download cache: {cache}.)"
    )


def _fetch(url: str, out, desc: str, progress: bool) -> None:
    """Streams ``url`` into the file object ``out``; gives up after :data:`DEADLINE` seconds in
    total (each read waits at most :data:`TIMEOUT`)."""
    deadline = time.monotonic() + DEADLINE
    request = urllib.request.Request(url, headers={"User-Agent": "cnn_lib"})
    with urllib.request.urlopen(request, timeout=min(TIMEOUT, DEADLINE)) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        with tqdm(
            total=total,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=not progress,
            leave=False,
        ) as bar:
            while True:
                if time.monotonic() > deadline:
                    raise DataError(
                        f"download too slow: {received} bytes in {DEADLINE:g} s (cnn_lib.data.DEADLINE), "
                        "gave up"
                    )
                chunk = response.read1(1 << 16)  # what has arrived (read() would wait for all 64 KiB)
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise DataError(f"incomplete download: expected {total} bytes, got {received}")


def _download(name: str, folder: Path, progress: bool) -> tuple[Path, bytes]:
    """Download ``name``.gz into ``folder``; return (path, verified content).

    Each attempt is received in memory and checked; only a verified file is written, with
    :func:`cnn_lib.atomic.atomic_write` (a temporary renamed when complete). Temporaries left by
    a killed earlier call (and ``.part`` files of older versions) are removed on the way.
    """
    final = folder / (name + ".gz")
    errors = []
    for base in MIRRORS:
        url = base.rstrip("/") + "/" + name + ".gz"
        buf = io.BytesIO()
        try:
            _fetch(url, buf, name + ".gz", progress)
            raw = buf.getvalue()
            data = _parse_gz(raw, url)
            _check_content(data, name, url)
        except Exception as e:  # any failure: note it, try the next mirror
            errors.append(f"  {url}: {type(e).__name__}: {e}")
            continue
        with atomic_write(final, extra_patterns=(f".{name}.gz.*.part",)) as out:
            out.write(raw)
        return final, data
    raise DataError(
        f"Could not download {name}.gz from any mirror (MIRRORS):\n"
        + "\n".join(errors or ["  (MIRRORS is empty)"])
        + "\n"
        + _local_help(folder)
    )


def _check_pair(images: np.ndarray, labels: np.ndarray, img: Path, lab: Path) -> None:
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"{img}: expected uint8 images of shape (N, 28, 28), found "
            f"{images.dtype} of shape {images.shape}."
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{lab}: expected uint8 labels of shape (N,), found "
            f"{labels.dtype} of shape {labels.shape}."
        )
    if len(images) != len(labels):
        raise DataError(
            f"image/label count mismatch: {img} has {len(images)} images but "
            f"{lab} has {len(labels)} labels."
        )
    if labels.size and labels.max() > 9:
        raise DataError(
            f"{lab}: labels must be in 0..9, found {int(labels.max())}."
        )


def _load_raw(path, download: bool, progress: bool):
    """Find, fetch if allowed, verify and parse the four files (memoized)."""
    folder, is_cache, origin = _resolve_folder(path)
    if not is_cache and not folder.is_dir():
        raise DataError(
            f"MNIST folder {folder} (from {origin}) does not exist or is not a "
            f"folder. Point load_mnist(path=...) or CNN_LIB_DATA at a folder with "
            f"the four MNIST files, or use neither to download them into "
            f"{_cache_dir()}."
        )

    found = {name: _find(folder, name) for name in FILES}
    missing = [name for name, p in found.items() if p is None]
    fresh: dict[str, bytes] = {}  # downloaded in this call, already verified
    if missing:
        wanted = ", ".join(f"{n}.gz (or {n})" for n in missing)
        if not is_cache:
            raise DataError(
                f"MNIST file(s) missing: {wanted} not found in {folder} (from "
                f"{origin}). load_mnist() never downloads into a folder you chose. "
                f"Put the missing files there, point load_mnist(path=...) or "
                f"CNN_LIB_DATA at a folder that has all four files, or pass "
                f"neither (and unset CNN_LIB_DATA) to download them into the "
                f"cache folder {_cache_dir()}."
            )
        if not download:
            raise DataError(
                f"MNIST file(s) missing: {wanted} not found in the cache folder "
                f"{folder}, and download=False. Call load_mnist(download=True) to "
                f"download them. " + _local_help(folder)
            )
        folder.mkdir(parents=True, exist_ok=True)
        for name in missing:
            found[name], fresh[name] = _download(name, folder, progress)

    stats = []
    for p in found.values():
        st = p.stat()
        stats.append((str(p), st.st_size, st.st_mtime_ns, st.st_ino))
    key = (str(folder), tuple(FILES.items()), tuple(stats))
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]

    arrays = {}
    for name, p in found.items():
        try:
            data = fresh[name] if name in fresh else _read_bytes(p)
            if name not in fresh:
                _check_content(data, name, p)
            arrays[name] = _parse_idx(data, p)
        except _ReadError as e:  # content unknown: never deleted
            raise DataError(
                f"{e} The file was left in place: make it readable (check its permissions), "
                f"or delete it to download it again."
            ) from None
        except DataError as e:  # bytes that were read do not match: corrupt
            if not is_cache:
                raise DataError(
                    f"{e} The file was left in place: replace it with the original "
                    f"MNIST file."
                ) from None
            try:
                p.unlink()
                note = "The corrupt cached file was deleted; the next call to "
                note += "load_mnist() will download it again."
            except OSError as e2:
                note = f"Deleting the corrupt cached file failed ({e2}); delete it by hand."
            raise DataError(f"{e} {note}") from None

    _check_pair(arrays[_TRAIN_IMAGES], arrays[_TRAIN_LABELS],
                found[_TRAIN_IMAGES], found[_TRAIN_LABELS])
    _check_pair(arrays[_TEST_IMAGES], arrays[_TEST_LABELS],
                found[_TEST_IMAGES], found[_TEST_LABELS])
    raw = tuple(arrays[n] for n in (_TRAIN_IMAGES, _TRAIN_LABELS, _TEST_IMAGES, _TEST_LABELS))
    for a in raw:
        a.flags.writeable = False
    _MEMO[key] = raw
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return raw


def _images_to_float(images: np.ndarray, normalize: bool) -> np.ndarray:
    x = images.astype(np.float32)  # fresh, writable copy
    x /= np.float32(255.0)
    if normalize:
        x -= np.float32(MNIST_MEAN)
        x /= np.float32(MNIST_STD)
    return x.reshape(len(images), 1, *images.shape[1:])


def load_mnist(path=None, *, normalize=True, download=True, progress=True):
    """Load MNIST as float32 images and int64 labels.

    Pixels are first scaled from 0..255 to [0, 1] by dividing by 255. If
    ``normalize`` is true, they are then standardized with the *training*
    set's statistics, for both sets::

        x = (pixels / 255 - MNIST_MEAN) / MNIST_STD

    so that the training pixels have mean 0 and standard deviation 1
    (``MNIST_MEAN`` = 0.1307, ``MNIST_STD`` = 0.3081).

    Where the files come from, in order: the ``path`` argument, else the
    ``CNN_LIB_DATA`` environment variable, else the cache folder
    ``$XDG_CACHE_HOME/cnn_lib/mnist`` (default ``~/.cache/cnn_lib/mnist``).
    Each of the four files may be ``NAME.gz`` or uncompressed ``NAME``. Only
    the cache folder is ever downloaded into: missing files there are fetched
    from :data:`MIRRORS` in order. Every file is checked against the SHA-256
    of its uncompressed content in :data:`FILES`.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Folder holding the four MNIST files. Nothing is downloaded into it.
    normalize : bool, default True
        Standardize with ``MNIST_MEAN`` and ``MNIST_STD`` (see above); if
        false the pixels are only scaled to [0, 1].
    download : bool, default True
        Allow downloading missing files into the cache folder.
    progress : bool, default True
        Show a tqdm progress bar while downloading.

    Returns
    -------
    x_train : numpy.ndarray of float32
    y_train : numpy.ndarray of int64, values 0..9
    x_test : numpy.ndarray of float32
    y_test : numpy.ndarray of int64, values 0..9
        Fresh, writable arrays on every call.

    Shapes
    ------
    x_train : (60000, 1, 28, 28), i.e. (N, channels, height, width)
    y_train : (60000,)
    x_test : (10000, 1, 28, 28)
    y_test : (10000,)

    Raises
    ------
    DataError
        If a file is missing (outside the cache folder, or download=False),
        every mirror fails, a file's checksum does not match (a corrupt file
        in the cache folder is deleted so the next call downloads it again;
        files in your own folder are never deleted), or the contents are
        inconsistent (image/label counts, 28 x 28 images, labels 0..9).

    Notes
    -----
    The verified raw uint8 arrays are memoized in the process, so a second
    call is fast; a file that changes on disk is read and checked again.
    """
    x_tr, y_tr, x_te, y_te = _load_raw(path, download, progress)
    return (
        _images_to_float(x_tr, normalize),
        y_tr.astype(np.int64),
        _images_to_float(x_te, normalize),
        y_te.astype(np.int64),
    )


def train_val_split(x, y, val_size=10_000, seed=0):
    """Hold out ``val_size`` examples of a training set as a validation set.

    Every choice the book makes (a learning rate, a width, when to stop, which network) is
    made on the validation set; the test set is used once, to report the chosen model.
    The examples are drawn by a seeded permutation, so the split is the same on every run.

    Shapes
    ------
    x : (N, ...) ; y : (N,)
    returns x_train (N - val_size, ...), y_train (N - val_size,), x_val (val_size, ...), y_val (val_size,)

    Raises ``ValueError`` if ``val_size`` is not an integer in ``1 .. N - 1`` or the lengths differ.
    Lists are converted to arrays.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"expected x (N, ...) and y (N,), got shapes {x.shape} and {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"{len(x)} inputs but {len(y)} labels")
    if isinstance(val_size, bool) or not isinstance(val_size, (int, np.integer)):
        raise TypeError(f"val_size must be an integer, got {val_size!r}")
    if not 1 <= val_size < len(x):
        raise ValueError(f"val_size must lie in 1..{len(x) - 1} for {len(x)} examples, got {val_size}")
    order = np.random.default_rng(seed).permutation(len(x))
    train, val = np.sort(order[val_size:]), np.sort(order[:val_size])   # keep the original order within each part
    return x[train], y[train], x[val], y[val]
