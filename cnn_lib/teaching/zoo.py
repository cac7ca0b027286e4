"""Trained networks for the book's chapters, trained once and cached outside git.

:func:`trained_model` trains a network on the full MNIST training set, or loads it from a
cache folder when the same configuration was trained before, by an earlier chapter or an
earlier run. The cache key is a hash of everything that determines the weights: the
architecture, the training hyper-parameters, the seed, ``cnn_lib``'s version *and source
code* (a change to the library retrains instead of reusing stale weights) and the checksums
of the MNIST files. Weights are written as ``.npz`` and the training history as ``.json``,
each atomically (a temporary file renamed when complete); a missing, partial or corrupt
entry is simply trained again. No weight file is ever committed to the repository.

Cache folder: ``$CNN_LIB_CACHE`` if set, else ``$XDG_CACHE_HOME/cnn_lib/models``, else
``~/.cache/cnn_lib/models``.

Architectures are written as short strings, layer by layer, e.g. the report's network::

    conv8k5-relu-conv8k5-relu-pool2-flatten-dense128-relu-dense10

``conv{F}k{K}`` (optionally ``p{P}`` for zero padding) is a ``Conv2D`` with ``F`` filters of
size ``K x K``, ``pool{K}`` a ``K x K`` max-pooling with stride ``K``, ``dense{M}`` a ``Dense``
layer with ``M`` outputs, ``drop{P}`` a ``Dropout`` that drops ``P`` percent of its inputs in
training (``drop50``: ``p = 0.5``), ``relu`` and ``flatten`` what they say. Input channels and sizes
follow from the input shape ``(1, 28, 28)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..atomic import atomic_write

__all__ = [
    "ARCHITECTURES", "build", "parse_architecture", "random_shifts", "make_config", "cache_key",
    "cache_folder", "trained_model", "layer_outputs", "plot_architecture",
]

#: Named architectures used by the book (see the module docstring for the notation).
ARCHITECTURES = {
    # the report's Figure 5: two conv 8@5x5 + ReLU, max-pool 2x2, dense 128 + ReLU, dense 10
    "seed": "conv8k5-relu-conv8k5-relu-pool2-flatten-dense128-relu-dense10",
    # a multi-layer perceptron with about as many parameters (101,770 against 105,634)
    "mlp": "flatten-dense128-relu-dense10",
}

_TOKEN = re.compile(r"^(?:conv(?P<F>\d+)k(?P<K>\d+)(?:p(?P<P>\d+))?|pool(?P<pool>\d+)|dense(?P<M>\d+)"
                    r"|drop(?P<drop>[1-9]\d?)|relu|flatten)$")

_INPUT_SHAPE = (1, 28, 28)


def parse_architecture(arch):
    """The layer tokens of an architecture string (or the string of a name in
    :data:`ARCHITECTURES`); raises ``ValueError`` naming the first token it cannot read."""
    arch = ARCHITECTURES.get(arch, arch)
    if not isinstance(arch, str) or not arch:
        raise ValueError(f"an architecture is a name in {sorted(ARCHITECTURES)} or a string like "
                         f"{ARCHITECTURES['seed']!r}, got {arch!r}")
    tokens = arch.split("-")
    for t in tokens:
        if not _TOKEN.match(t):
            raise ValueError(f"cannot read layer {t!r} in architecture {arch!r} "
                             "(expected conv{F}k{K}[p{P}], pool{K}, dense{M}, drop{P} with P in 1..99, relu or flatten)")
    return tokens


def build(arch="seed", seed=0, dtype=np.float32, input_shape=_INPUT_SHAPE):
    """A :class:`~cnn_lib.model.Sequential` for an architecture, He-initialised from ``seed``.

    All layers draw from one Generator in order, so ``build("seed", s)`` has the same
    initial weights as :func:`cnn_lib.seed_network` ``(s)``.
    """
    from ..model import Sequential

    spec = []
    for t in parse_architecture(arch):
        m = _TOKEN.match(t)
        if m["F"]:
            spec.append(("conv", int(m["F"]), int(m["K"]), {"padding": int(m["P"] or 0)}))
        elif m["pool"]:
            spec.append(("maxpool", int(m["pool"]), int(m["pool"])))
        elif m["M"]:
            spec.append(("dense", int(m["M"])))
        elif m["drop"]:
            spec.append(("dropout", int(m["drop"]) / 100))
        else:
            spec.append(t)                                   # "relu" or "flatten"
    return Sequential.from_spec(spec, input_shape=input_shape, seed=seed, dtype=dtype)


def random_shifts(max_shift=2, fill=None):
    """An ``augment(xb, rng)`` for :func:`cnn_lib.fit` that moves each image of a batch by a
    random whole number of pixels in ``-max_shift..max_shift`` along each axis.

    Pixels that enter the image take the value ``fill``, by default the background of
    images normalized by :func:`cnn_lib.load_mnist` (``-MNIST_MEAN / MNIST_STD``).
    Shapes: ``xb (N, C, H, W)`` -> same shape, a new array.
    """
    from ..data import MNIST_MEAN, MNIST_STD

    s = int(max_shift)
    if s < 0:
        raise ValueError(f"max_shift must be non-negative, got {max_shift}")
    fill_value = -MNIST_MEAN / MNIST_STD if fill is None else float(fill)

    def augment(xb, rng):
        N, C, H, W = xb.shape
        padded = np.full((N, C, H + 2 * s, W + 2 * s), fill_value, dtype=xb.dtype)  # (N, C, H+2s, W+2s)
        padded[:, :, s:s + H, s:s + W] = xb
        dy, dx = rng.integers(-s, s + 1, size=(2, N))
        windows = sliding_window_view(padded, (H, W), axis=(2, 3))          # (N, C, 2s+1, 2s+1, H, W)
        return windows[np.arange(N), :, s - dy, s - dx]                      # one gather: (N, C, H, W)

    augment.max_shift = s
    return augment


# --------------------------------------------------------------------------- cache keys
def make_config(arch="seed", *, epochs=3, batch_size=32, lr=1e-3, seed=0, optimizer="adam",
                lr_decay=1.0, shift=0, n_train=None, val_size=None):
    """The dictionary that identifies a training run (and is hashed into its cache key).

    ``optimizer`` is ``"adam"`` (:class:`cnn_lib.Adam`) or ``"report_adam"``
    (:class:`cnn_lib.teaching.report.ReportAdam`, the report's update rule); the learning rate of
    epoch ``e`` (from 0) is ``lr * lr_decay**e``; ``shift > 0`` trains on images moved by up
    to ``shift`` pixels (:func:`random_shifts`); ``n_train`` uses the first ``n_train``
    training images (all 60,000 when ``None``); ``val_size`` holds out that many of them as a
    validation set (:func:`cnn_lib.train_val_split` with ``seed=0``, taken before ``n_train``
    is applied), trains on the rest and records the validation accuracy after every epoch.
    """
    tokens = parse_architecture(arch)
    if optimizer not in ("adam", "report_adam"):
        raise ValueError(f"optimizer must be 'adam' or 'report_adam', got {optimizer!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if not lr > 0 or not lr_decay > 0:
        raise ValueError(f"lr and lr_decay must be positive, got {lr} and {lr_decay}")
    if val_size is not None and (isinstance(val_size, bool) or int(val_size) != val_size or val_size < 1):
        raise ValueError(f"val_size must be a positive integer or None, got {val_size!r}")
    return {"arch": "-".join(tokens), "epochs": int(epochs), "batch_size": int(batch_size),
            "lr": float(lr), "seed": int(seed), "optimizer": optimizer, "lr_decay": float(lr_decay),
            "shift": int(shift), "n_train": None if n_train is None else int(n_train),
            "val_size": None if val_size is None else int(val_size)}


def _library_digest():
    """SHA-256 of the source files that determine trained weights."""
    here = Path(__file__).resolve().parent            # cnn_lib/teaching
    engine = sorted(here.parent.glob("*.py"))          # every module of the engine (cnn_lib/*.py)
    h = hashlib.sha256()
    for path in engine + [here / "report.py", here / "zoo.py"]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def cache_key(config):
    """A short hash of ``config`` plus the library's version and source and the data checksums."""
    from .. import __version__
    from ..data import FILES

    payload = {"config": config, "cnn_lib": __version__, "source": _library_digest(),
               "data": [FILES[n][0] for n in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")]}
    blob = json.dumps(payload, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cache_folder(cache_dir=None):
    """The folder models are cached in (created if needed); see the module docstring."""
    if cache_dir is None:
        env = os.environ.get("CNN_LIB_CACHE")
        if env:
            cache_dir = env
        else:
            base = os.environ.get("XDG_CACHE_HOME")
            cache_dir = Path(base if base else Path.home() / ".cache") / "cnn_lib" / "models"
    path = Path(cache_dir).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_json(path, obj):
    with atomic_write(path, "w", encoding="utf-8", extra_patterns=(".tmp-*.json",)) as fh:
        json.dump(obj, fh)


def _load_cached(model, weights, meta, config):
    """``history`` if both files are present, readable and match ``config``, else ``None``."""
    try:
        with open(meta, encoding="utf-8") as fh:
            record = json.load(fh)
        if record.get("config") != config or not isinstance(record.get("history"), dict):
            return None
        model.load(weights)
        return record["history"]
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):   # missing, partial, corrupt
        return None


# --------------------------------------------------------------------------- training
def trained_model(name="seed", epochs=3, batch_size=32, lr=1e-3, seed=0, *, optimizer="adam",
                  lr_decay=1.0, shift=0, n_train=None, val_size=None, cache_dir=None, progress=False):
    """A network trained on MNIST, and its training history: loaded from the cache when this
    exact configuration (see :func:`make_config`) was trained before, trained and cached
    otherwise.

    Parameters
    ----------
    name : a name in :data:`ARCHITECTURES` or an architecture string.
    epochs, batch_size, lr, seed, optimizer, lr_decay, shift, n_train, val_size : see
        :func:`make_config`;
        ``seed`` seeds both the initial weights and the order of the batches.
    cache_dir : where to cache (default: see the module docstring).
    progress : show :func:`cnn_lib.fit`'s progress bar while training (off by default: the
        book's pages must not depend on whether the cache was cold; not part of the cache key).

    Returns
    -------
    model : :class:`~cnn_lib.model.Sequential`, float32.
    history : :func:`cnn_lib.fit`'s history (per-epoch ``loss``, ``accuracy``, ``seconds``,
        ``lr``, and ``step_loss``; with ``val_size``, ``val_loss`` and ``val_accuracy`` on the
        held-out images), ``cpu_seconds`` (the process's CPU time for the whole training, all
        threads, including the validation after each epoch: on a busy machine a steadier measure of
        the work than ``seconds``, which counts the training steps only), plus
        ``"from_cache"`` (bool) and ``"key"``. When loaded from the cache, ``seconds`` and
        ``cpu_seconds`` are those measured when the network was trained.
    """
    from ..optim import Adam
    from .report import ReportAdam
    from ..train import fit

    config = make_config(name, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                         optimizer=optimizer, lr_decay=lr_decay, shift=shift, n_train=n_train,
                         val_size=val_size)
    key = cache_key(config)
    folder = cache_folder(cache_dir)
    weights, meta = folder / f"{key}.npz", folder / f"{key}.json"
    model = build(config["arch"], seed)
    history = _load_cached(model, weights, meta, config)
    if history is not None:
        return model, dict(history, from_cache=True, key=key)

    model = build(config["arch"], seed)          # fresh weights (a failed load may have written some)
    from ..data import load_mnist
    x, y, _, _ = load_mnist(progress=False)
    x_val = y_val = None
    if val_size is not None:
        from ..data import train_val_split
        x, y, x_val, y_val = train_val_split(x, y, val_size=config["val_size"], seed=0)
    if n_train is not None:
        x, y = x[:n_train], y[:n_train]
    opt = (Adam(model.params(), lr=lr) if optimizer == "adam"
           else ReportAdam(model.params(), lr=lr))
    schedule = None if lr_decay == 1.0 else (lambda e: lr * lr_decay ** e)
    augment = random_shifts(shift) if shift else None
    cpu_start = time.process_time()
    history = fit(model, x, y, epochs=epochs, batch_size=batch_size, optimizer=opt, seed=seed,
                  x_val=x_val, y_val=y_val, progress=progress, lr_schedule=schedule, augment=augment)
    cpu_seconds = time.process_time() - cpu_start
    history = {k: [float(v) for v in vals] for k, vals in history.items()}
    history["cpu_seconds"] = cpu_seconds
    model.save(weights)
    _write_json(meta, {"config": config, "history": history, "key": key,
                       "trained": time.strftime("%Y-%m-%d %H:%M:%S")})
    return model, dict(history, from_cache=False, key=key)


# --------------------------------------------------------------------------- inspection
def layer_outputs(model, x):
    """The output of every layer for a batch ``x``: a list of ``(layer name, array)``, in order
    (prediction mode: nothing is kept for backward)."""
    out = []
    for name, layer in model.layers.items():
        x = layer.forward(x, train=False)
        out.append((name, x))
    return out


def plot_architecture(model, input_shape=_INPUT_SHAPE, ax=None, title=None):
    """Draws a network as a chain of tensors: a stack of squares for each ``(C, H, W)`` map
    (side proportional to ``H``), a bar for each vector, every shape written below it and
    every layer with its parameter count written on the arrow that leads to its output.

    Returns the Axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Rectangle

    rows = model.summary(input_shape)
    # merge each activation into the layer before it: one arrow per "layer + ReLU"
    stages, shape_in = [], tuple(input_shape)
    for name, desc, shape, n_params in rows:
        if desc == "ReLU()" and stages:
            stages[-1]["label"] += " + ReLU"
            continue
        if desc.startswith("Dropout") and stages:
            stages[-1]["label"] += " + " + desc.replace("Dropout(p=", "dropout ").rstrip(")")
            continue
        stages.append({"label": name, "desc": desc, "shape": shape, "params": n_params})
    tensors = [tuple(input_shape)] + [s["shape"] for s in stages]
    if ax is None:
        fig, ax = plt.subplots(figsize=(2.0 * len(tensors), 4.0), facecolor="white", layout="constrained")
    palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"]
    x0, gap, scale = 0.0, 1.0, 1.0 / 28
    centers = []
    for k, shape in enumerate(tensors):
        color = palette[k % len(palette)]
        if len(shape) == 3:
            C, H, W = shape
            side, depth = max(H * scale, 0.12), min(C, 8)
            for d in range(depth):                        # a few offset squares suggest C maps
                off = 0.06 * d
                ax.add_patch(Rectangle((x0 + off, -side / 2 + off), side, side, facecolor=color,
                                       edgecolor="black", linewidth=0.6, alpha=0.85))
            width, top = side + 0.06 * (depth - 1), side / 2 + 0.06 * (depth - 1)
        else:
            (D,) = shape
            height = 0.25 + 0.25 * np.log10(D)
            width, top = 0.12, height / 2
            ax.add_patch(Rectangle((x0, -height / 2), width, height, facecolor=color, edgecolor="black",
                                   linewidth=0.6))
        text = "input\n" if k == 0 else ""
        ax.text(x0 + width / 2, -0.95, text + "×".join(str(v) for v in shape), ha="center", va="top", fontsize=10)
        centers.append((x0, x0 + width, top))
        x0 += width + gap
    label_y = max(top for _, _, top in centers) + 0.08    # labels above every tensor, alternating heights
    for k, stage in enumerate(stages):
        left, right = centers[k][1], centers[k + 1][0]
        ax.add_patch(FancyArrowPatch((left + 0.05, 0), (right - 0.05, 0), arrowstyle="-|>", mutation_scale=12,
                                     color="black", linewidth=1))
        label = stage["desc"].replace("kernel_size=", "k=") if stage["desc"] != "Flatten()" else "Flatten()"
        ax.text((left + right) / 2, label_y + (0 if k % 2 == 0 else 0.45),
                f"{stage['label']}\n{label}\n{stage['params']:,} params",
                ha="center", va="bottom", fontsize=10)
    ax.set_xlim(-0.2, x0 - gap + 0.2)
    ax.set_ylim(-1.45, label_y + 0.95)
    ax.set_aspect("equal")
    ax.axis("off")
    total = sum(s["params"] for s in stages)
    ax.set_title(title if title is not None else f"{total:,} parameters", fontsize=12)
    return ax
