"""Speed and memory of the seed network on real MNIST (prints figures; not a test).

    python benchmarks/bench_train.py            # full epochs at batch 32 and 128
    python benchmarks/bench_train.py --images 10000   # a quicker, partial epoch

Prints: seconds per 60,000-image epoch at batch 32 and at batch 128 (images per second),
test accuracy after each, the time to predict the 10,000 test images, the peak resident
memory of the process, and the per-image time of the plain-loop ``*_naive`` path
(forward + backward) on a handful of images, with the ratio to the fast path.
Targets on a 2-core machine (issue 2): <= 8 s per epoch at batch 32; batch 128 no slower;
<= 0.5 s to predict the 10,000 test images; peak RSS <= 1 GB.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np

import cnn_lib
from cnn_lib import functional as F


def naive_step(model, x, y):
    """Forward and backward of the seed network through the ``*_naive`` loop functions
    (batch of images ``x``), as the report's code does it: one loop per equation."""
    p = model.params()
    a1 = F.conv2d_naive(x, p["conv1.w"], p["conv1.b"])
    h1 = F.relu_naive(a1)
    a2 = F.conv2d_naive(h1, p["conv2.w"], p["conv2.b"])
    h2 = F.relu_naive(a2)
    m = F.maxpool2d_naive(h2, 2, 2)
    f = m.reshape(len(x), -1)
    a3 = F.dense_naive(f, p["dense1.w"], p["dense1.b"])
    h3 = F.relu_naive(a3)
    z = F.dense_naive(h3, p["dense2.w"], p["dense2.b"])
    dz = F.cross_entropy_backward_naive(z, y)
    dh3, _, _ = F.dense_backward_naive(dz, h3, p["dense2.w"])
    da3 = F.relu_backward_naive(dh3, a3)
    df, _, _ = F.dense_backward_naive(da3, f, p["dense1.w"])
    dh2 = F.maxpool2d_backward_naive(df.reshape(m.shape), h2, 2, 2)
    da2 = F.relu_backward_naive(dh2, a2)
    dh1, _, _ = F.conv2d_backward_naive(da2, h1, p["conv2.w"])
    da1 = F.relu_backward_naive(dh1, a1)
    F.conv2d_backward_naive(da1, x, p["conv1.w"], need_dx=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=60000, help="training images per timed epoch (default all)")
    ap.add_argument("--naive-images", type=int, default=4)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()

    print(f"cnn_lib {cnn_lib.__version__}, numpy {np.__version__}, python {platform.python_version()}, "
          f"{F.get_num_threads()} thread(s)")
    x_train, y_train, x_test, y_test = cnn_lib.load_mnist(args.data, progress=False)
    n = min(args.images, len(x_train))
    x, y = x_train[:n], y_train[:n]

    per_epoch = {}
    for bs in (32, 128):
        model = cnn_lib.seed_network(0)
        start = time.perf_counter()
        cnn_lib.fit(model, x, y, epochs=1, batch_size=bs, seed=0, progress=False)
        seconds = time.perf_counter() - start
        per_epoch[bs] = seconds * 60000 / n
        _, acc = cnn_lib.evaluate(model, x_test, y_test)
        print(f"batch {bs:>3}: {per_epoch[bs]:6.2f} s per 60,000-image epoch "
              f"({n / seconds:,.0f} images/s; {n} images timed), test accuracy {acc:.2%}")
    print(f"batch 128 / batch 32 epoch time: {per_epoch[128] / per_epoch[32]:.2f}")

    model.predict(x_test[:1000])  # warm-up
    start = time.perf_counter()
    model.predict(x_test)
    infer = time.perf_counter() - start
    print(f"predict 10,000 test images: {infer:.3f} s ({infer / len(x_test) * 1e6:.1f} us per image)")

    k = args.naive_images
    fast_per_image = per_epoch[32] / 60000
    start = time.perf_counter()
    naive_step(model, x_test[:k].astype(np.float64), y_test[:k])
    naive_per_image = (time.perf_counter() - start) / k
    print(f"naive loops, forward+backward: {naive_per_image * 1e3:.1f} ms per image ({k} images) "
          f"-> {naive_per_image * 60000 / 60:.0f} min per epoch; fast path {fast_per_image * 1e6:.1f} us per image "
          f"(batch 32): {naive_per_image / fast_per_image:,.0f}x faster")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
