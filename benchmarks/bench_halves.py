"""Where the two cores go in a training step (prints figures; not a test).

    python benchmarks/bench_halves.py            # batch 32: halves of 16 images
    python benchmarks/bench_halves.py --batch 128

``Sequential.train_step`` cuts a batch in two halves and takes each through the whole network
on its own thread. This script times one half's forward, loss and backward (the seed network,
real MNIST images) three ways:

1. alone, in this process, on one thread;
2. in two separate processes at the same time (each process one half): what the two cores
   give when nothing is shared but the machine (caches, memory);
3. as ``train_step`` runs it: two threads of one process, one half each.

If (2) is close to (1) and (3) is slower, the difference is what the threads share in one
process: Python's global interpreter lock, which every NumPy call takes back when it returns.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import numpy as np

import cnn_lib
from cnn_lib import fast_conv


def _setup(n, seed=0):
    x_train, y_train, _, _ = cnn_lib.load_mnist(progress=False)
    order = np.random.default_rng(seed).permutation(len(x_train))
    model = cnn_lib.seed_network(0)
    batches = [(x_train[order[i:i + n]], y_train[order[i:i + n]]) for i in range(0, 200 * n, n)]
    return model, batches


def _one_half(model, batches, steps):
    """Seconds per layer-by-layer pass (forward, loss, backward) of one half, on this thread."""
    loss = cnn_lib.softmax_cross_entropy
    with fast_conv.one_blas_thread():
        for x, y in batches[:20]:                                   # warm-up
            model.backward(loss(model.forward(x), y)[1])
        start = time.perf_counter()
        for k in range(steps):
            x, y = batches[k % len(batches)]
            model.backward(loss(model.forward(x), y)[1])
        return (time.perf_counter() - start) / steps


def _process(n, steps, barrier, out):
    fast_conv.set_num_threads(1)
    model, batches = _setup(n, seed=len(out))
    barrier.wait()
    out.append(_one_half(model, batches, steps))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32, help="batch size (each half has half of it)")
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    n, steps = args.batch // 2, args.steps

    fast_conv.set_num_threads(1)
    model, batches = _setup(n)
    alone = _one_half(model, batches, steps)

    with mp.Manager() as manager:
        out, barrier = manager.list(), manager.Barrier(2)
        procs = [mp.get_context("spawn").Process(target=_process, args=(n, steps, barrier, out)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        two_processes = list(out)

    # train_step's way: the calling thread and fast_conv's helper thread, one half each, inside
    # one parallel_map (so that the convolutions inside each half run their chunks serially)
    fast_conv.set_num_threads(2)
    second, second_batches = _setup(n, seed=1)
    times = fast_conv.parallel_map(lambda job: _one_half(*job, steps), [(model, batches), (second, second_batches)])

    ms = lambda t: f"{t * 1e3:.2f} ms"
    print(f"one half ({n} images): forward, loss and backward of the seed network")
    print(f"  alone, one thread:                {ms(alone)}")
    print(f"  two processes at the same time:   {', '.join(ms(t) for t in two_processes)}")
    print(f"  two threads of one process:       {', '.join(ms(t) for t in times)}")
    print(f"  threads / alone: {np.mean(times) / alone:.2f}; processes / alone: {np.mean(two_processes) / alone:.2f}")


if __name__ == "__main__":
    main()
