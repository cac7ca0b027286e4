"""Command line: train the seed network on MNIST, or evaluate saved weights.

    python -m cnn_lib train --epochs 2 --out weights.npz
    python -m cnn_lib evaluate weights.npz
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line instead of usage + traceback
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
        return value
    return parse


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _check_out(out):
    """Raises ValueError unless ``out`` can receive the weights: a ``.npz`` name, not a folder,
    in an existing folder we can write to. Checked before any data is loaded or trained on."""
    if not out.endswith(".npz"):
        raise ValueError(f"--out must name a .npz file, got {out!r}")
    if os.path.isdir(out):
        raise ValueError(f"--out {out} is a folder; give a file name such as {os.path.join(out, 'weights.npz')}")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ValueError(f"--out {out}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: cannot write into the folder {folder} (permission denied)")


def _parser():
    p = _Parser(prog="python -m cnn_lib", description="Train or evaluate the seed report's CNN on MNIST.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    data_help = "folder with the four MNIST IDX files (default: $CNN_LIB_DATA, else download to the cache)"

    t = sub.add_parser("train", help="train the seed network, save its weights, print the test accuracy")
    t.add_argument("--epochs", type=_positive(int), default=2)
    t.add_argument("--batch-size", type=_positive(int), default=32)
    t.add_argument("--lr", type=_positive(float), default=1e-3, help="Adam learning rate of the first epoch (default 1e-3)")
    t.add_argument("--lr-decay", type=_positive(float), default=0.3,
                   help="the learning rate is multiplied by this after each epoch (default 0.3; 1 keeps it constant)")
    t.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the initial weights and of the batch order")
    t.add_argument("--data", default=None, help=data_help)
    t.add_argument("--out", default="weights.npz", help="where to save the weights (.npz; default weights.npz)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", help="test accuracy of saved weights")
    e.add_argument("weights", help="a .npz file written by 'train'")
    e.add_argument("--data", default=None, help=data_help)
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    import numpy as np

    from .data import DataError, load_mnist
    from .model import seed_network
    from .train import evaluate, fit

    try:
        if args.command == "evaluate":
            model = seed_network().load(args.weights)  # check the file before loading data
            _, _, x_test, y_test = load_mnist(args.data)
            start = time.perf_counter()
            loss, acc = evaluate(model, x_test, y_test)
            print(f"test accuracy {acc:.2%} (loss {loss:.4f}) on {len(y_test)} images "
                  f"in {time.perf_counter() - start:.2f} s")
            return 0
        _check_out(args.out)
        for epoch in range(args.epochs):  # the schedule's rates, before any data is loaded
            try:
                rate = args.lr * args.lr_decay ** epoch
            except OverflowError:
                rate = math.inf
            if not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"--lr {args.lr:g} with --lr-decay {args.lr_decay:g} gives the learning rate "
                                 f"{rate:g} at epoch {epoch + 1}: not a positive finite number")
        x_train, y_train, x_test, y_test = load_mnist(args.data, progress=not args.no_progress)
        model = seed_network(args.seed)
        start = time.perf_counter()
        history = fit(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed, progress=not args.no_progress,
                      lr_schedule=lambda epoch: args.lr * args.lr_decay ** epoch)
        seconds = time.perf_counter() - start
        model.save(args.out)
        loss, acc = evaluate(model, x_test, y_test)
        per_epoch = ", ".join(f"{s:.1f}" for s in history["seconds"])
        print(f"trained {args.epochs} epoch(s) on {len(y_train)} images in {seconds:.1f} s ({per_epoch} s per epoch)")
        print(f"test accuracy {acc:.2%} (loss {loss:.4f}) on {len(y_test)} images; weights saved to {args.out}")
        return 0
    except (DataError, ValueError, OSError, ArithmeticError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
