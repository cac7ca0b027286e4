"""``Sequential``: a stack of layers with one forward pass for training and prediction,
named parameters (``conv1.w``), and weights saved to ``.npz`` (never pickle)."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections import OrderedDict

import numpy as np

from . import functional as F
from .layers import Arctan, AvgPool2D, Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU, Sigmoid

__all__ = ["Sequential", "seed_network", "SEED_NETWORK_SPEC"]

#: The layer kinds of :meth:`Sequential.from_spec`: the class, and whether the input size
#: (channels or features) is inferred and put first (the layers with weights).
_SPEC_KINDS = {"conv": (Conv2D, True), "dense": (Dense, True), "maxpool": (MaxPool2D, False),
               "avgpool": (AvgPool2D, False), "relu": (ReLU, False), "sigmoid": (Sigmoid, False),
               "arctan": (Arctan, False), "flatten": (Flatten, False)}

_PREFIX = {"Conv2D": "conv", "Dense": "dense", "MaxPool2D": "pool", "AvgPool2D": "pool", "ReLU": "relu",
           "Sigmoid": "sigmoid", "Arctan": "arctan", "Flatten": "flatten"}


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
        ``("dense", M)``                           ``Dense(D, M)`` (after ``"flatten"``)
        ``("maxpool", K[, stride])``               ``MaxPool2D(K, stride)``
        ``("avgpool", K[, stride])``               ``AvgPool2D(K, stride)``
        ``"relu"``, ``"sigmoid"``, ``"arctan"``    the activation
        ``"flatten"``                              ``Flatten()``
        =========================================  =========================================

        A tuple may end with a dict of keyword arguments, e.g. ``("conv", 8, 3, {"padding": 1})``.
        All layers draw their weights from one ``np.random.default_rng(seed)``, in order
        (``seed`` may also be a Generator). ``input_shape`` has no batch axis.
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
                layer = (layer_cls(shape[0], *args, **kwargs, rng=rng, dtype=dtype) if has_weights
                         else layer_cls(*args, **kwargs))
            except TypeError as e:
                raise TypeError(f"layer {k} of the spec, {item!r}: {e}") from None
            shape = layer.output_shape(shape)
            layers.append(layer)
        return cls(*layers)

    # ------------------------------------------------------------------ passes
    def forward(self, x, train=True):
        """Logits for a batch. With ``train=True`` every layer keeps what backward needs."""
        for layer in self.layers.values():
            x = layer.forward(x, train)
        return x

    __call__ = forward

    def backward(self, dy, need_dx=False):
        """Back-propagates ``dy = dL/dlogits`` through every layer, filling their ``grads``.
        Returns ``dL/dx`` for the input when ``need_dx`` (else ``None``: the first
        layer then skips that work)."""
        layers = list(self.layers.values())
        for k in range(len(layers) - 1, -1, -1):
            dy = layers[k].backward(dy, need_dx=need_dx or k > 0)
        return dy

    def predict_proba(self, x, batch_size=256):
        """Class probabilities, computed ``batch_size`` images at a time (bounded memory)."""
        return np.concatenate([F.softmax(self.forward(x[i:i + batch_size], train=False))
                               for i in range(0, max(len(x), 1), batch_size)])

    def predict(self, x, batch_size=256):
        """Predicted classes ``(N,)``, computed ``batch_size`` images at a time."""
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
        """Copies arrays into the parameters; names and shapes must match exactly."""
        own = self.params()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"state does not match the model: missing {missing}, unexpected {unexpected}")
        bad = [f"{k}: expected shape {p.shape}, got {np.shape(state[k])}"
               for k, p in own.items() if np.shape(state[k]) != p.shape]
        if bad:  # checked before anything is copied: a failed load leaves the model unchanged
            raise ValueError("state does not match the model: " + "; ".join(bad))
        for k, p in own.items():
            p[...] = state[k]
        return self

    def save(self, path):
        """Writes the parameters to ``path`` (``.npz``), atomically: a temporary file in
        the same folder is renamed only when complete."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **self.state_dict())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual mode
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return path

    def load(self, path):
        """Loads parameters saved by :meth:`save` (no pickle: ``allow_pickle=False``)."""
        try:
            with open(path, "rb") as fh:
                if fh.read(4) != b"PK\x03\x04":
                    raise ValueError("not an .npz archive")
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
