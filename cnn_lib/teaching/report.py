"""The seed report's implementation, in its own style, kept for comparison.

The report this book started from trained its CNN with the code of the public repository
*Numpy-CNN* by Alejandro Escontrela (2018; files ``CNN/forward.py``, ``CNN/backward.py``,
``CNN/utils.py``, ``CNN/network.py``). That repository publishes no license, so its code
cannot be copied here. This module is therefore **not a copy**: it is written anew for this
book, reproducing the report's functions with the same names, arguments, array layouts and
behaviour, so that the book can run them, measure them and compare them with ``cnn_lib``:

* one image at a time, ``(C, H, W)``, in float64, with Python loops over filters and
  output positions (:func:`convolution`, :func:`maxpool` and their backward passes);
* the eight parameters travel as one positional list ``[f1, f2, w3, w4, b1, b2, b3, b4]``,
  dense weights are ``(out, in)`` and biases column vectors ``(n, 1)``;
* the forward pass is written twice, in :func:`conv` (training) and :func:`predict`.

Its known flaws are kept on purpose, because the book measures them:

* :func:`softmax` does not subtract the maximum (``exp`` overflows for large logits) and
  :func:`categoricalCrossEntropy` takes ``log`` of a probability (``-inf`` when it is 0);
* :func:`adamGD` creates Adam's moment estimates as zeros on *every* batch, has no bias
  correction and puts epsilon inside the square root: each update is close to
  ``lr (1 - beta1) / sqrt(1 - beta2) * sign(g)`` and momentum never builds up.
  :class:`ReportAdam` is the same update rule as a ``cnn_lib`` optimizer, so that
  ``cnn_lib.fit`` can train with it;
* :func:`normalize` truncates the mean and the standard deviation to integers and uses
  the statistics of whichever set it is given.

Two practical changes: randomness comes from a ``numpy`` Generator passed in (the report
used the global ``np.random`` state), and the bias is read as a scalar ``bias[f, 0]``
(the report added a ``(1,)`` array to a scalar slot, which NumPy 2 no longer accepts).
:func:`params_to_state_dict` and :func:`state_dict_to_params` convert between the report's
layout and :func:`cnn_lib.seed_network`'s named parameters.
"""

from __future__ import annotations

import numpy as np

from ..optim import Optimizer

__all__ = [
    "convolution", "maxpool", "relu", "softmax", "categoricalCrossEntropy",
    "convolutionBackward", "maxpoolBackward", "nanargmax",
    "initializeFilter", "initializeWeight", "initialize_params", "normalize",
    "conv", "adamGD", "predict", "ReportAdam",
    "PARAM_NAMES", "params_to_state_dict", "state_dict_to_params",
]

#: The order of the report's positional parameter list.
PARAM_NAMES = ("f1", "f2", "w3", "w4", "b1", "b2", "b3", "b4")


# --------------------------------------------------------------------------- forward
def convolution(image, filt, bias, s=1):
    """Slides every filter over one image with stride ``s`` (no padding).

    image (n_c, in_dim, in_dim), filt (n_f, n_c, f, f), bias (n_f, 1) -> (n_f, out_dim, out_dim)
    with ``out_dim = (in_dim - f) // s + 1``.
    """
    n_f, n_c_f, f, _ = filt.shape
    n_c, in_dim, _ = image.shape
    assert n_c == n_c_f, "the filters' depth must match the image's channels"
    out_dim = (in_dim - f) // s + 1
    out = np.zeros((n_f, out_dim, out_dim))
    for curr_f in range(n_f):
        for out_y in range(out_dim):
            for out_x in range(out_dim):
                y, x = out_y * s, out_x * s            # top-left corner of the window
                patch = image[:, y:y + f, x:x + f]      # (n_c, f, f)
                out[curr_f, out_y, out_x] = np.sum(filt[curr_f] * patch) + bias[curr_f, 0]
    return out


def maxpool(image, f=2, s=2):
    """Keeps the largest value of every ``f x f`` window, moved by ``s``.

    image (n_c, h_prev, w_prev) -> (n_c, (h_prev - f) // s + 1, (w_prev - f) // s + 1)
    """
    n_c, h_prev, w_prev = image.shape
    h, w = (h_prev - f) // s + 1, (w_prev - f) // s + 1
    out = np.zeros((n_c, h, w))
    for c in range(n_c):
        for out_y in range(h):
            for out_x in range(w):
                y, x = out_y * s, out_x * s
                out[c, out_y, out_x] = np.max(image[c, y:y + f, x:x + f])
    return out


def relu(X):
    """Rectified linear unit, applied *in place* as the report does (``X[X <= 0] = 0``)."""
    X[X <= 0] = 0
    return X


def softmax(X):
    """``exp(X) / sum(exp(X))`` without subtracting the maximum: overflows for large logits."""
    out = np.exp(X)
    return out / np.sum(out)


def categoricalCrossEntropy(probs, label):
    """``-sum(label * log(probs))`` for a one-hot ``label`` (n, 1): ``-inf`` if a probability is 0."""
    return -np.sum(label * np.log(probs))


# --------------------------------------------------------------------------- backward
def convolutionBackward(dconv_prev, conv_in, filt, s=1):
    """Gradients of :func:`convolution`: every output ``(f, out_y, out_x)`` sends its
    gradient to the filter (times its window) and to the window (times the filter).

    dconv_prev (n_f, out_dim, out_dim), conv_in (n_c, in_dim, in_dim), filt (n_f, n_c, f, f)
    -> dout (n_c, in_dim, in_dim), dfilt (n_f, n_c, f, f), dbias (n_f, 1)
    """
    n_f, n_c, f, _ = filt.shape
    out_dim = dconv_prev.shape[1]
    dout = np.zeros(conv_in.shape)
    dfilt = np.zeros(filt.shape)
    dbias = np.zeros((n_f, 1))
    for curr_f in range(n_f):
        for out_y in range(out_dim):
            for out_x in range(out_dim):
                y, x = out_y * s, out_x * s
                g = dconv_prev[curr_f, out_y, out_x]
                dfilt[curr_f] += g * conv_in[:, y:y + f, x:x + f]
                dout[:, y:y + f, x:x + f] += g * filt[curr_f]
        dbias[curr_f] = np.sum(dconv_prev[curr_f])
    return dout, dfilt, dbias


def nanargmax(arr):
    """Row and column of the largest (non-NaN) value of a 2-D window (the first one on a tie)."""
    return np.unravel_index(np.nanargmax(arr), arr.shape)


def maxpoolBackward(dpool, orig, f=2, s=2):
    """Gradient of :func:`maxpool`: each window's gradient goes to the position of its maximum.

    dpool (n_c, h, w), orig (n_c, h_prev, w_prev) -> dout (n_c, h_prev, w_prev)
    """
    n_c = orig.shape[0]
    h, w = dpool.shape[1:]
    dout = np.zeros(orig.shape)
    for c in range(n_c):
        for out_y in range(h):
            for out_x in range(w):
                y, x = out_y * s, out_x * s
                a, b = nanargmax(orig[c, y:y + f, x:x + f])
                dout[c, y + a, x + b] = dpool[c, out_y, out_x]
    return dout


# --------------------------------------------------------------------------- setup
def initializeFilter(size, scale=1.0, rng=None):
    """Normal filters with standard deviation ``scale / sqrt(prod(size))``."""
    stddev = scale / np.sqrt(np.prod(size))
    return np.random.default_rng(rng).normal(0.0, stddev, size=size)


def initializeWeight(size, rng=None):
    """Dense weights drawn from ``N(0, 0.01^2)``."""
    return np.random.default_rng(rng).standard_normal(size=size) * 0.01


def initialize_params(rng=None, num_filt1=8, num_filt2=8, f=5, img_depth=1, dense=128, num_classes=10):
    """The report's network, ``[f1, f2, w3, w4, b1, b2, b3, b4]``, initialised as its ``train`` does.

    f1 (8, 1, 5, 5), f2 (8, 8, 5, 5), w3 (128, 800), w4 (10, 128), biases (n, 1) zeros.
    """
    rng = np.random.default_rng(rng)
    pooled = num_filt2 * ((28 - 2 * (f - 1)) // 2) ** 2                   # 8 * 10 * 10 = 800
    f1 = initializeFilter((num_filt1, img_depth, f, f), rng=rng)
    f2 = initializeFilter((num_filt2, num_filt1, f, f), rng=rng)
    w3 = initializeWeight((dense, pooled), rng=rng)
    w4 = initializeWeight((num_classes, dense), rng=rng)
    b1, b2 = np.zeros((num_filt1, 1)), np.zeros((num_filt2, 1))
    b3, b4 = np.zeros((dense, 1)), np.zeros((num_classes, 1))
    return [f1, f2, w3, w4, b1, b2, b3, b4]


def normalize(X):
    """The report's normalization of raw 0..255 pixels: subtract ``int(mean)``, divide by
    ``int(std)``, both truncated to integers and computed on ``X`` itself (the training
    set and the test set are each normalized with their own statistics)."""
    X = np.asarray(X, dtype=np.float64)
    X = X - int(np.mean(X))
    return X / int(np.std(X))


# --------------------------------------------------------------------------- the network
def conv(image, label, params, conv_s=1, pool_f=2, pool_s=2):
    """Forward and backward pass of the report's network on ONE image.

    image (1, 28, 28), label one-hot (10, 1), params ``[f1, f2, w3, w4, b1, b2, b3, b4]``.
    Returns ``(grads, loss)`` with ``grads = [df1, df2, dw3, dw4, db1, db2, db3, db4]`` and
    the loss of this image (not averaged).
    """
    f1, f2, w3, w4, b1, b2, b3, b4 = params
    # forward
    conv1 = relu(convolution(image, f1, b1, conv_s))          # (8, 24, 24)
    conv2 = relu(convolution(conv1, f2, b2, conv_s))          # (8, 20, 20)
    pooled = maxpool(conv2, pool_f, pool_s)                   # (8, 10, 10)
    fc = pooled.reshape(-1, 1)                                # (800, 1)
    z = relu(w3.dot(fc) + b3)                                 # (128, 1)
    out = w4.dot(z) + b4                                      # (10, 1)
    probs = softmax(out)
    loss = categoricalCrossEntropy(probs, label)
    # backward
    dout = probs - label                                      # dL/dout, (10, 1)
    dw4 = dout.dot(z.T)
    db4 = np.sum(dout, axis=1).reshape(b4.shape)
    dz = w4.T.dot(dout)
    dz[z <= 0] = 0
    dw3 = dz.dot(fc.T)
    db3 = np.sum(dz, axis=1).reshape(b3.shape)
    dpool = w3.T.dot(dz).reshape(pooled.shape)                # (8, 10, 10)
    dconv2 = maxpoolBackward(dpool, conv2, pool_f, pool_s)
    dconv2[conv2 <= 0] = 0
    dconv1, df2, db2 = convolutionBackward(dconv2, conv1, f2, conv_s)
    dconv1[conv1 <= 0] = 0
    _, df1, db1 = convolutionBackward(dconv1, image, f1, conv_s)
    return [df1, df2, dw3, dw4, db1, db2, db3, db4], loss


def adamGD(X, Y, num_classes, lr, beta1, beta2, params, cost):
    """One training step on a batch, one image at a time, with the report's "Adam".

    X (batch, 1, 28, 28), Y (batch,) integer labels. The gradients of the images are
    summed and divided by the batch size, ``g`` (the mean gradient over the batch), then every
    parameter is updated with moments created as zeros *here*::

        v = beta1 * 0 + (1 - beta1) * g;   s = beta2 * 0 + (1 - beta2) * g**2
        p -= lr * v / sqrt(s + 1e-7)

    no memory between batches and no bias correction. Appends the batch's mean loss to ``cost``;
    returns ``(params, cost)``.
    """
    batch_size = len(X)
    grads = [np.zeros(p.shape) for p in params]
    cost_ = 0.0
    for i in range(batch_size):
        y = np.eye(num_classes)[int(Y[i])].reshape(num_classes, 1)   # one-hot (10, 1)
        grads_i, loss = conv(X[i], y, params, 1, 2, 2)
        for g, g_i in zip(grads, grads_i):
            g += g_i
        cost_ += loss
    for p, g in zip(params, grads):
        v = np.zeros(p.shape)                    # re-created on every batch
        s = np.zeros(p.shape)
        v = beta1 * v + (1 - beta1) * g / batch_size
        s = beta2 * s + (1 - beta2) * (g / batch_size) ** 2
        p -= lr * v / np.sqrt(s + 1e-7)
    cost.append(cost_ / batch_size)
    return params, cost


def predict(image, f1, f2, w3, w4, b1, b2, b3, b4, conv_s=1, pool_f=2, pool_s=2):
    """The forward pass again (a second copy, as in the report): ``(class, probability)``."""
    conv1 = relu(convolution(image, f1, b1, conv_s))
    conv2 = relu(convolution(conv1, f2, b2, conv_s))
    pooled = maxpool(conv2, pool_f, pool_s)
    fc = pooled.reshape(-1, 1)
    z = relu(w3.dot(fc) + b3)
    probs = softmax(w4.dot(z) + b4)
    return int(np.argmax(probs)), float(np.max(probs))


# --------------------------------------------------------------------------- for cnn_lib
class ReportAdam(Optimizer):
    """The update of :func:`adamGD` as a ``cnn_lib`` optimizer (``opt.step(model.grads())``).

    ``p <- p - lr (1 - beta1) g / sqrt((1 - beta2) g^2 + eps)``: Adam's formula with both
    moments reset to zero before every step, without bias correction, epsilon inside the
    square root. Defaults are the report's: ``lr=0.01, betas=(0.95, 0.99), eps=1e-7``.
    """

    def __init__(self, params, lr=0.01, betas=(0.95, 0.99), eps=1e-7):
        super().__init__(params, lr)
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)

    def step(self, grads):
        b1, b2 = self.betas
        for _, p, g in self._pairs(grads):
            v = (1 - b1) * g                                      # beta1 * 0 + (1 - beta1) g
            s = (1 - b2) * g * g                                  # beta2 * 0 + (1 - beta2) g^2
            p -= (self.lr * v / np.sqrt(s + self.eps)).astype(p.dtype, copy=False)


def params_to_state_dict(params):
    """The report's ``[f1, f2, w3, w4, b1, b2, b3, b4]`` as :func:`cnn_lib.seed_network`'s
    named parameters: dense weights transposed to ``(in, out)``, biases flattened to ``(n,)``.
    Both flatten the pooled ``(8, 10, 10)`` maps in C order, so no other change is needed."""
    f1, f2, w3, w4, b1, b2, b3, b4 = params
    return {"conv1.w": f1, "conv1.b": b1.reshape(-1), "conv2.w": f2, "conv2.b": b2.reshape(-1),
            "dense1.w": w3.T, "dense1.b": b3.reshape(-1), "dense2.w": w4.T, "dense2.b": b4.reshape(-1)}


def state_dict_to_params(state, dtype=np.float64):
    """The inverse of :func:`params_to_state_dict` (copies, as ``dtype``)."""
    def get(k):
        return np.array(state[k], dtype=dtype)
    return [get("conv1.w"), get("conv2.w"), get("dense1.w").T.copy(), get("dense2.w").T.copy(),
            get("conv1.b").reshape(-1, 1), get("conv2.b").reshape(-1, 1),
            get("dense1.b").reshape(-1, 1), get("dense2.b").reshape(-1, 1)]
