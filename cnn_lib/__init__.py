"""cnn_lib: neural networks and convolutional networks from scratch, in NumPy.

The public API; see the book for the ideas behind each piece.
"""

from . import fast_conv, functional, gradcheck, init, layers, losses, optim, shapes
from .data import DataError, load_mnist, read_idx, train_val_split
from .init import initialize
from .gradcheck import check_function, check_layer, check_model, numerical_gradient, rel_error
from .layers import Arctan, AvgPool2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sigmoid
from .losses import softmax_cross_entropy
from .model import SEED_NETWORK_SPEC, Sequential, seed_network
from .optim import SGD, Adam
from .timing import best_time
from .train import evaluate, fit, minibatches, predict

__version__ = "0.1.0"

__all__ = [
    "fast_conv", "functional", "gradcheck", "init", "layers", "losses", "optim", "shapes", "initialize",
    "DataError", "load_mnist", "read_idx", "train_val_split",
    "check_function", "check_layer", "check_model", "numerical_gradient", "rel_error",
    "Arctan", "AvgPool2D", "Conv2D", "Dense", "Dropout", "Flatten", "MaxPool2D", "ReLU", "Sigmoid",
    "softmax_cross_entropy", "Sequential", "SEED_NETWORK_SPEC", "seed_network", "SGD", "Adam",
    "evaluate", "fit", "minibatches", "predict", "best_time",
]
