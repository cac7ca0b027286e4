"""The variants among which part III's final network was chosen, on the validation set.

    python experiments/final_network_variants.py            # all variants, ~20 minutes on 2 cores
    python experiments/final_network_variants.py --list     # the variants, without training
    python experiments/final_network_variants.py --shard 1/2 &  # half of them in each of two
    python experiments/final_network_variants.py --shard 2/2    # processes (then run it once more to print all)

Each variant trains on the 50,000 training images that ``cnn_lib.train_val_split(..., val_size=10_000,
seed=0)`` keeps and is judged by its accuracy on the 10,000 it holds out, after the last epoch
(trained networks are cached by ``cnn_lib.teaching.zoo``, so a second run only prints). The test
set is never read here: the chapter *Possible modifications* evaluates the chosen network on it
once, after training it on all 60,000 training images.

Prints one line per variant, then the choice, by the *one-standard-error rule* (Breiman et al.,
1984; Hastie, Tibshirani and Friedman, *The Elements of Statistical Learning*, section 7.10):
among the variants whose validation accuracy is within one standard error ``sqrt(p (1 - p) / n)``
of the best one's, the one that trains fastest. Differences smaller than that are noise of the
10,000 validation images (and of the seed: the repeat of "dropout 0.5" with another seed, which
is not a candidate, shows how much a single run varies); training time is not noise.
"""

from __future__ import annotations

import argparse
import math

from cnn_lib.teaching import zoo

BASE_ARCH = "conv16k5p2-relu-pool2-conv32k5p2-relu-pool2-flatten-dense256-relu-dense10"
CHOSEN_ARCH = "conv16k5p2-relu-pool2-conv32k5p2-relu-pool2-flatten-dense256-relu-drop50-dense10"
TRAINING = dict(epochs=8, batch_size=32, lr=1e-3, seed=0, lr_decay=0.7, shift=2)

#: name -> (architecture, training settings); the chapter's final network is "dropout 0.5".
VARIANTS = {
    "no dropout": (BASE_ARCH, TRAINING),
    "dropout 0.5": (CHOSEN_ARCH, TRAINING),
    "dropout 0.5, seed 1 (a repeat, for the noise)": (CHOSEN_ARCH, {**TRAINING, "seed": 1}),
    "dropout 0.5, 10 epochs at x0.75": (CHOSEN_ARCH, {**TRAINING, "epochs": 10, "lr_decay": 0.75}),
    "dropout 0.5, 5 epochs at x0.6": (CHOSEN_ARCH, {**TRAINING, "epochs": 5, "lr_decay": 0.6}),
    "dropout 0.5, dense 128": (CHOSEN_ARCH.replace("dense256", "dense128"), TRAINING),
    "dropout 0.5, 32 + 32 filters (5x5, 3x3)":
        ("conv32k5p2-relu-pool2-conv32k3p1-relu-pool2-flatten-dense256-relu-drop50-dense10", TRAINING),
    "dropout 0.5, third convolution (64 filters, 3x3)":
        ("conv16k5p2-relu-pool2-conv32k5p2-relu-pool2-conv64k3p1-relu-flatten-dense256-relu-drop50-dense10",
         TRAINING),
}


def one_standard_error_choice(accuracies, seconds, n=10_000):
    """The one-standard-error rule: ``(best, std_error, close, chosen)``.

    ``best`` has the highest accuracy ``p`` in ``accuracies`` (name -> accuracy measured on ``n``
    images), ``std_error = sqrt(p (1 - p) / n)``, ``close`` lists the names whose accuracy is at
    least ``p - std_error`` (in the order given), and ``chosen`` is the one of those with the
    smallest ``seconds[name]``.
    """
    if not accuracies:
        raise ValueError("no variant to choose from")
    best = max(accuracies, key=accuracies.get)
    p = accuracies[best]
    std_error = math.sqrt(p * (1 - p) / n)
    close = [name for name, acc in accuracies.items() if acc >= p - std_error]
    chosen = min(close, key=lambda name: seconds[name])
    return best, std_error, close, chosen


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print the variants without training")
    ap.add_argument("--shard", default="1/1", help="k/n: train only every n-th variant, from the k-th")
    args = ap.parse_args(argv)
    k, n = (int(v) for v in args.shard.split("/"))
    if not 1 <= k <= n:
        ap.error(f"--shard must be k/n with 1 <= k <= n, got {args.shard}")
    results, seconds = {}, {}
    for name, (arch, settings) in list(VARIANTS.items())[k - 1::n]:
        if args.list:
            print(f"{name:50s} {arch}  {settings}")
            continue
        model, history = zoo.trained_model(arch, val_size=10_000, progress=False, **settings)
        acc = history["val_accuracy"][-1]
        results[name], seconds[name] = acc, sum(history["seconds"])
        print(f"{name:50s} validation accuracy {acc:.2%} ({round((1 - acc) * 10_000)} errors), "
              f"{sum(history['seconds']):.0f} s of training", flush=True)
    candidates = {name: acc for name, acc in results.items() if "repeat" not in name}
    if candidates:
        best, std_error, close, chosen = one_standard_error_choice(candidates, seconds)
        print(f"highest validation accuracy: {best} ({candidates[best]:.2%}); one standard error: {std_error:.2%}")
        print(f"within one standard error of it: {'; '.join(close)}")
        print(f"chosen (the fastest of those): {chosen}")

if __name__ == "__main__":
    main()
