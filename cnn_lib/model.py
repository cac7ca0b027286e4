"""``Sequential``: a stack of layers with one forward pass for training and prediction,
named parameters (``conv1.w``), and weights saved to ``.npz`` (never pickle)."""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from . import fast_conv
from . import functional as F
from .atomic import atomic_write
from .layers import Arctan, AvgPool2D, Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D, ReLU, Sigmoid
from .losses import softmax_cross_entropy
from .shapes import check_count, check_inputs

__all__ = ["Sequential", "seed_network", "SEED_NETWORK_SPEC", "HALVES_FROM"]

#: :meth:`Sequential.train_step` cuts a batch of at least this many images in two halves
#: (see there); smaller batches go through :meth:`~Sequential.forward` and ``backward``.
HALVES_FROM = 32

#: The layers that treat every image of a batch on its own and keep no state but their
#: parameters and their cache: a batch can be cut in parts that go through copies of them.
#: (Not Dropout, whose masks come from one random stream in order.)
_PER_IMAGE = (Conv2D, Dense, ReLU, Sigmoid, Arctan, Flatten, MaxPool2D, AvgPool2D)

#: The layer kinds of :meth:`Sequential.from_spec`: the class, and whether the input size
#: (channels or features) is inferred and put first (the layers with weights).
_SPEC_KINDS = {"conv": (Conv2D, True), "dense": (Dense, True), "maxpool": (MaxPool2D, False),
               "avgpool": (AvgPool2D, False), "relu": (ReLU, False), "sigmoid": (Sigmoid, False),
               "arctan": (Arctan, False), "flatten": (Flatten, False), "dropout": (Dropout, False)}

_PREFIX = {"Conv2D": "conv", "Dense": "dense", "MaxPool2D": "pool", "AvgPool2D": "pool", "ReLU": "relu",
           "Sigmoid": "sigmoid", "Arctan": "arctan", "Flatten": "flatten",
           "Dropout": "dropout"}


class Sequential:
    """Layers applied one after the other.

    ``Sequential(Conv2D(1, 8, 5), ReLU(), ...)`` names the layers ``conv1, relu1, ...``
    by type and rank; pass ``(name, layer)`` pairs to choose the names. Parameters are
    addressed as ``"<layer>.<param>"``, e.g. ``"conv1.w"``.
    """

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], list):
            layers = tuple(layers[0])
        self.layers: OrderedDict[str, Layer] = OrderedDict()
        counts: dict[str, int] = {}
        for item in layers:
            name, layer = item if isinstance(item, tuple) else (None, item)
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential takes Layer objects, got {type(layer).__name__}")
            if name is None:
                prefix = _PREFIX.get(type(layer).__name__, type(layer).__name__.lower())
                counts[prefix] = counts.get(prefix, 0) + 1
                name = f"{prefix}{counts[prefix]}"
            if name in self.layers or "." in name:
                raise ValueError(f"layer name {name!r} is repeated or contains a dot")
            self.layers[name] = layer

    @classmethod
    def from_spec(cls, spec, input_shape=(1, 28, 28), seed=0, dtype=np.float32):
        """A network from a short list of layer descriptions, He-initialised from ``seed``.

        Each item is a name or a tuple ``(name, *arguments)``; the input size of every layer
        (channels for ``conv``, features for ``dense``) follows from ``input_shape`` and the
        layers before it::

            Sequential.from_spec([("conv", 8, 5), "relu", ("conv", 8, 5), "relu", ("maxpool", 2),
                                  "flatten", ("dense", 128), "relu", ("dense", 10)],
                                 input_shape=(1, 28, 28), seed=0)

        =========================================  =========================================
        ``("conv", F, K[, stride[, padding]])``    ``Conv2D(C, F, K, stride, padding)``
        ``("dense", D_out)``                       ``Dense(D_in, D_out)`` (after ``"flatten"``)
        ``("maxpool", K[, stride])``               ``MaxPool2D(K, stride)``
        ``("avgpool", K[, stride])``               ``AvgPool2D(K, stride)``
        ``"relu"``, ``"sigmoid"``, ``"arctan"``    the activation
        ``"flatten"``                              ``Flatten()``
        ``("dropout", p)``                         ``Dropout(p)``
        =========================================  =========================================

        A tuple may end with a dict of keyword arguments, e.g. ``("conv", 8, 3, {"padding": 1})``.
        All layers draw their weights from one ``np.random.default_rng(seed)``, in order
        (``seed`` may also be a Generator). A dropout layer draws its masks from a child of that
        Generator (``Generator.spawn``, which leaves the weights' stream untouched: a spec with and
        without dropout starts from the same weights). ``input_shape`` has no batch axis.
        """
        rng = np.random.default_rng(seed)
        shape, layers = tuple(input_shape), []
        for k, item in enumerate(spec):
            if isinstance(item, str):
                name, args = item, ()
            elif isinstance(item, (tuple, list)) and item and isinstance(item[0], str):
                name, args = item[0], tuple(item[1:])
            else:
                name, args = None, ()
            if name not in _SPEC_KINDS:
                raise ValueError(f"layer {k} of the spec, {item!r}, is not one of {sorted(_SPEC_KINDS)} "
                                 "(a name, or a tuple starting with one)")
            kwargs = args[-1] if args and isinstance(args[-1], dict) else {}
            args = args[:-1] if kwargs else args
            layer_cls, has_weights = _SPEC_KINDS[name]
            if has_weights and len(shape) != (3 if name == "conv" else 1):
                raise ValueError(f"layer {k} of the spec, {item!r}, needs inputs of "
                                 + ("shape (C, H, W)" if name == "conv" else "one axis: put 'flatten' before it")
                                 + f", got {shape}")
            try:
                if has_weights:
                    layer = layer_cls(shape[0], *args, **kwargs, rng=rng, dtype=dtype)
                elif name == "dropout":
                    layer = layer_cls(*args, **{"rng": rng.spawn(1)[0], **kwargs})
                else:
                    layer = layer_cls(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"layer {k} of the spec, {item!r}: {e}") from None
            shape = layer.output_shape(shape)
            layers.append(layer)
        return cls(*layers)

    # ------------------------------------------------------------------ passes
    def forward(self, x, train=True):
        """Logits for a batch. With ``train=True`` every layer keeps what backward needs.
        Zero images give an empty ``(0, ...)`` result of the output's shape. ``x`` must hold
        floating-point numbers (a list is converted; integer pixels are refused: ``TypeError``).

        Shapes: ``x (N, C, H, W)`` (or ``(N, D)`` for a network that starts with a dense layer)
        -> logits ``(N, K)``."""
        x = check_inputs(x)
        if len(x) == 0:
            shape = self.summary(x.shape[1:])[-1][2] if self.layers else x.shape[1:]
            return np.empty((0, *shape), dtype=np.result_type(x.dtype, *self.params().values()))
        layers = list(self.layers.values())
        with self._blas_threads():
            if not train and self.runs_in_halves(len(x)):
                # In evaluation the layers keep nothing (each clears its cache), so the two
                # halves of the batch can go through the same layers at once (see train_step).
                h = len(x) // 2
                halves = fast_conv.parallel_map(lambda xs: _forward(layers, xs, False), [x[:h], x[h:]])
                return np.concatenate(halves)
            return _forward(layers, x, train)

    __call__ = forward

    def runs_in_halves(self, N):
        """Whether :meth:`train_step` and :meth:`forward` in evaluation cut a batch of ``N``
        images in two halves, one per thread: with at least :data:`HALVES_FROM` images, when
        every layer treats each image on its own and there is a convolution (see :meth:`train_step`)."""
        return (N >= HALVES_FROM and self._has_convolution()
                and all(type(layer) in _PER_IMAGE for layer in self.layers.values()))

    def _has_convolution(self):
        return any(isinstance(layer, Conv2D) for layer in self.layers.values())

    def _blas_threads(self):
        """Where the passes run: with convolutions, which spread a batch over cnn_lib's own
        threads, the BLAS library stays on one thread (:func:`cnn_lib.fast_conv.one_blas_thread`:
        its threads, woken by the dense layers, would spin on the cores the convolutions use);
        a network without them leaves its matrix products to the BLAS library's threads."""
        if self._has_convolution():
            return fast_conv.one_blas_thread()
        return contextlib.nullcontext()

    def backward(self, dy, need_dx=False):
        """Back-propagates ``dy = dL/dlogits`` through every layer, filling their ``grads``.
        Returns ``dL/dx`` for the input when ``need_dx`` (else ``None``: the first
        layer then skips that work).

        Shapes: ``dy (N, K)`` -> ``dx`` of the input's shape, or ``None``."""
        with self._blas_threads():
            return _backward(list(self.layers.values()), dy, need_dx)

    def train_step(self, x, y):
        """One training pass on a batch: forward, softmax cross-entropy loss, backward. Fills
        every layer's ``grads`` (as :meth:`backward` does) and returns ``(loss, logits)``.

        It computes what ``logits = forward(x); loss, d = softmax_cross_entropy(logits, y);
        backward(d)`` computes, and for a network with convolutions and a batch of at least
        :data:`HALVES_FROM` (32) images, it computes it faster on two cores, by *data parallelism*:

        1. the batch is cut into two halves, and each half goes through the whole network,
           forward, loss and backward, on its own thread (with its own copy of the layers: the
           same parameters, its own cache and gradients);
        2. each half's loss gradient is divided by the size of the *whole* batch, so that its
           parameter gradients are that half's share of the batch's;
        3. the two halves' gradients are added (first half plus second), and so are their losses.

        The threads then work side by side through the whole step, where the layer-by-layer
        passes share out only the convolutions' chunks and do everything else on one core.
        The halves depend only on the batch size, never on the number of threads
        (:func:`cnn_lib.fast_conv.set_num_threads`), so results are bit for bit the same with 1
        or 2 threads; they differ from those of ``forward``/``backward`` in the last bits
        (sums taken in another order). A network with a layer that does not treat every image
        on its own (Dropout: its masks come from one random stream, in order) or without
        convolutions (its dense layers' products use the BLAS library's threads), and a
        smaller batch, go through :meth:`forward` and :meth:`backward`.

        Shapes: ``x (N, ...)``, ``y (N,)`` integer labels -> ``(loss: float, logits (N, K))``.
        """
        x = check_inputs(x)
        layers = list(self.layers.values())
        N = len(x)
        if not self.runs_in_halves(N):
            logits = self.forward(x, train=True)
            loss, dlogits = softmax_cross_entropy(logits, y)
            self.backward(dlogits)
            return loss, logits
        y = np.asarray(y)
        if y.shape != (N,):                                  # (the halves would not match)
            raise ValueError(f"expected integer labels of shape ({N},) for {N} images, got shape {y.shape}")
        h = N // 2

        def half(part):
            copies = [layer.replica() for layer in layers]
            logits = _forward(copies, x[part], True)
            loss, d = softmax_cross_entropy(logits, y[part])
            d *= d.dtype.type(len(logits) / N)               # this half's share of the batch's mean
            _backward(copies, d, need_dx=False)
            return loss * len(logits), logits, copies

        with self._blas_threads():
            (loss0, logits0, copies0), (loss1, logits1, copies1) = fast_conv.parallel_map(
                half, [slice(0, h), slice(h, N)])
        for layer, c0, c1 in zip(layers, copies0, copies1):
            layer.grads.update({k: np.add(g, c1.grads[k], out=g) for k, g in c0.grads.items()})
            layer.clear_cache()                              # backward needs a forward first
        return (loss0 + loss1) / N, np.concatenate([logits0, logits1])

    def predict_proba(self, x, batch_size=256):
        """Class probabilities, computed ``batch_size`` images at a time (bounded memory):
        ``x (N, ...)`` -> ``(N, K)``, ``(0, K)`` for zero images."""
        check_count(batch_size, "batch_size")
        x = check_inputs(x)
        return np.concatenate([F.softmax(self.forward(x[i:i + batch_size], train=False))
                               for i in range(0, max(len(x), 1), batch_size)])

    def predict(self, x, batch_size=256):
        """Predicted classes ``(N,)``, computed ``batch_size`` images at a time (``(0,)`` for zero images)."""
        check_count(batch_size, "batch_size")
        x = check_inputs(x)
        return np.concatenate([self.forward(x[i:i + batch_size], train=False).argmax(axis=1)
                               for i in range(0, max(len(x), 1), batch_size)])

    # ------------------------------------------------------------------ parameters
    def params(self):
        """Ordered ``name -> array`` of the live parameters (an optimizer updates them in place)."""
        return OrderedDict((f"{ln}.{pn}", p) for ln, layer in self.layers.items() for pn, p in layer.params.items())

    def grads(self):
        """Ordered ``name -> gradient`` as left by the last :meth:`backward`."""
        out = OrderedDict()
        for ln, layer in self.layers.items():
            for pn in layer.params:
                if pn not in layer.grads:
                    raise RuntimeError(f"no gradient for {ln}.{pn}: call backward first")
                out[f"{ln}.{pn}"] = layer.grads[pn]
        return out

    def num_params(self):
        return sum(layer.num_params() for layer in self.layers.values())

    def state_dict(self):
        """Ordered ``name -> copy of the array``, e.g. ``conv1.w``."""
        return OrderedDict((k, v.copy()) for k, v in self.params().items())

    def load_state_dict(self, state):
        """Copies arrays into the parameters; names and shapes must match exactly.

        Every array is checked and converted first (real numbers only: complex, string, bool
        and object arrays are refused; NaN and inf are refused, since such weights are not a
        model), and only then assigned: a failed load leaves the model unchanged."""
        if not isinstance(state, Mapping):
            raise TypeError("load_state_dict takes a dict name -> array, as state_dict() returns "
                            + ("(for another model: model.load_state_dict(other.state_dict()))"
                               if isinstance(state, Sequential) else f"got {type(state).__name__}"))
        own = self.params()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"state does not match the model: missing {missing}, unexpected {unexpected}")
        bad, converted = [], {}
        for k, p in own.items():
            value = np.asarray(state[k])
            if value.shape != p.shape:
                bad.append(f"{k}: expected shape {p.shape}, got {value.shape}")
            elif value.dtype.kind == "c":
                bad.append(f"{k}: complex values ({value.dtype}) cannot be weights")
            elif value.dtype.kind not in "fiu":
                bad.append(f"{k}: expected real numbers, got dtype {value.dtype}")
            elif not np.isfinite(value).all():
                bad.append(f"{k}: contains NaN or inf")
            else:
                converted[k] = value.astype(p.dtype, copy=False)
        if bad:  # checked before anything is copied: a failed load leaves the model unchanged
            raise ValueError("state does not match the model: " + "; ".join(bad))
        for k, p in own.items():
            p[...] = converted[k]
        return self

    def save(self, path):
        """Writes the parameters to ``path`` (``.npz``), atomically (:func:`cnn_lib.atomic.atomic_write`):
        a temporary file in the same folder is renamed only when complete. A model with a
        non-finite parameter (NaN or inf) is refused: such a file is not a model."""
        path = os.fspath(path)
        state = self.state_dict()
        bad = [k for k, v in state.items() if not np.isfinite(v).all()]
        if bad:
            raise ValueError(f"not saving {path}: parameters {bad} contain NaN or inf")
        with atomic_write(path, extra_patterns=(".tmp-*.npz",)) as fh:
            np.savez(fh, **state)
        return path

    def load(self, path):
        """Loads parameters saved by :meth:`save` (no pickle: ``allow_pickle=False``).

        The names, shapes and dtypes that the file's ``.npy`` headers declare are checked
        against the model before any array is read (a crafted header cannot make it allocate
        more than the model's size); then :meth:`load_state_dict` checks the values."""
        try:
            with open(path, "rb") as fh:
                if fh.read(4) != b"PK\x03\x04":
                    raise ValueError("not an .npz archive")
            _check_npz_headers(path, self.params())
            with np.load(path, allow_pickle=False) as data:
                state = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise FileNotFoundError(f"no weights file at {path}") from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path} is not a weights file saved by cnn_lib (.npz): {e}") from None
        return self.load_state_dict(state)

    # ------------------------------------------------------------------ display
    def summary(self, input_shape=(1, 28, 28)):
        """Rows ``(name, layer, output shape, parameter count)`` for an input shape (no batch axis)."""
        rows, shape = [], tuple(input_shape)
        for name, layer in self.layers.items():
            shape = layer.output_shape(shape)
            rows.append((name, repr(layer), shape, layer.num_params()))
        return rows

    def __repr__(self):
        body = "\n".join(f"  ({n}): {layer!r}" for n, layer in self.layers.items())
        return f"Sequential(\n{body}\n)"


def _forward(layers, x, train):
    """``x`` through ``layers``, first to last."""
    for layer in layers:
        x = layer.forward(x, train)
    return x


def _backward(layers, dy, need_dx):
    """``dy`` back through ``layers``, last to first; the first layer computes ``dx`` only if
    ``need_dx``."""
    for k in range(len(layers) - 1, -1, -1):
        dy = layers[k].backward(dy, need_dx=need_dx or k > 0)
    return dy


def _check_npz_headers(path, own):
    """Raises ``ValueError`` unless the ``.npy`` members of the archive ``path`` declare exactly
    the names and shapes of ``own`` with a real-number dtype; reads only the headers."""
    from numpy.lib import format as npformat

    declared = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with zf.open(info) as fh:
                version = npformat.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = npformat.read_array_header_1_0(fh)
                else:
                    shape, _, dtype = npformat.read_array_header_2_0(fh)
            declared[name] = (shape, dtype)
    missing, unexpected = sorted(set(own) - set(declared)), sorted(set(declared) - set(own))
    if missing or unexpected:
        raise ValueError(f"state does not match the model: missing {missing}, unexpected {unexpected}")
    bad = []
    for k, p in own.items():
        shape, dtype = declared[k]
        if tuple(shape) != p.shape:
            bad.append(f"{k}: expected shape {p.shape}, the file declares {tuple(shape)}")
        elif dtype.kind not in "fiu":
            bad.append(f"{k}: expected real numbers, the file declares dtype {dtype}")
    if bad:
        raise ValueError("state does not match the model: " + "; ".join(bad))


#: The seed report's network (its Figure 5), for :meth:`Sequential.from_spec`.
SEED_NETWORK_SPEC = [("conv", 8, 5), "relu", ("conv", 8, 5), "relu", ("maxpool", 2, 2), "flatten",
                     ("dense", 128), "relu", ("dense", 10)]


def seed_network(seed=0, dtype=np.float32):
    """The seed report's network for MNIST (its Figure 5), He-initialised from ``seed``:
    ``Sequential.from_spec(SEED_NETWORK_SPEC, (1, 28, 28), seed, dtype)``.

    conv 8@5x5 + ReLU -> conv 8@5x5 + ReLU -> max-pool 2x2 stride 2 -> flatten (800)
    -> dense 128 + ReLU -> dense 10 (logits; softmax is applied by the loss).

    Shapes: x (N, 1, 28, 28) -> (N, 8, 24, 24) -> (N, 8, 20, 20) -> (N, 8, 10, 10)
    -> (N, 800) -> (N, 128) -> logits (N, 10).
    """
    return Sequential.from_spec(SEED_NETWORK_SPEC, input_shape=(1, 28, 28), seed=seed, dtype=dtype)
