"""Where the second core goes in a training step (prints figures; not a test).

    python benchmarks/bench_halves.py            # batch 32: halves of 16 images
    python benchmarks/bench_halves.py --batch 128

``Sequential.train_step`` cuts a batch in two halves and takes each through the whole network
on its own thread; both halves start together at every step. This script times one half's
forward, loss and backward (the seed network, real MNIST images; the median over ``--steps``
passes, each timed on its own):

1. alone, on one thread: what one core does;
2. two halves in two separate processes, free-running: nothing is shared but the machine, and
   the two loops drift apart, so that one computes while the other copies memory;
3. the same two processes, started together at every pass (a barrier before each): the halves
   now do the same thing at the same time, as in a training step, and compete for the memory
   system;
4. two threads of one process, started together at every pass: what ``train_step`` does. On top
   of (3), the threads share Python's global interpreter lock, which every NumPy call gives back
   while it computes and must take again when it returns.

The differences (3) - (1) and (4) - (3) show how much of the loss is the machine's and how much
is the lock's.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time

import numpy as np

import cnn_lib
from cnn_lib import fast_conv


def _setup(n, seed):
    x_train, y_train, _, _ = cnn_lib.load_mnist(progress=False)
    order = np.random.default_rng(seed).permutation(len(x_train))
    batches = [(x_train[order[i:i + n]], y_train[order[i:i + n]]) for i in range(0, 200 * n, n)]
    return cnn_lib.seed_network(0), batches


def _passes(model, batches, steps, barrier=None):
    """Median seconds of one layer-by-layer pass (forward, loss, backward) of a half, on this thread;
    with a barrier, every pass waits for the other half first (not timed)."""
    loss, times = cnn_lib.softmax_cross_entropy, []
    with fast_conv.one_blas_thread():
        for k in range(steps + 20):                                  # the first 20: warm-up
            if barrier is not None:
                barrier.wait()
            start = time.perf_counter()
            x, y = batches[k % len(batches)]
            model.backward(loss(model.forward(x), y)[1])
            times.append(time.perf_counter() - start)
    return float(np.median(times[20:]))


def _process(n, steps, seed, barrier, out):
    fast_conv.set_num_threads(1)
    model, batches = _setup(n, seed)
    out.append(_passes(model, batches, steps, barrier))


def _two_processes(n, steps, lockstep):
    with mp.Manager() as manager:
        out, barrier = manager.list(), manager.Barrier(2) if lockstep else None
        procs = [mp.get_context("spawn").Process(target=_process, args=(n, steps, seed, barrier, out))
                 for seed in (0, 1)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        return list(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32, help="batch size (each half has half of it)")
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    n, steps = args.batch // 2, args.steps

    fast_conv.set_num_threads(1)
    model, batches = _setup(n, 0)
    alone = _passes(model, batches, steps)
    free = _two_processes(n, steps, lockstep=False)
    together = _two_processes(n, steps, lockstep=True)
    # train_step's way: the calling thread and fast_conv's helper thread, one half each, inside one
    # parallel_map (so that the convolutions inside each half run their chunks one after the other)
    fast_conv.set_num_threads(2)
    second, second_batches = _setup(n, 1)
    barrier = threading.Barrier(2)
    threads = fast_conv.parallel_map(lambda job: _passes(*job, steps, barrier),
                                     [(model, batches), (second, second_batches)])

    def show(label, times):
        print(f"  {label:48s} {', '.join(f'{t * 1e3:.2f}' for t in times)} ms"
              f"  ({np.mean(times) / alone:.2f}x alone)")
    print(f"one half ({n} images): forward, loss and backward of the seed network, median of {steps} passes")
    show("1. alone, one thread:", [alone])
    show("2. two processes, free-running:", free)
    show("3. two processes, started together at each pass:", together)
    show("4. two threads, started together (train_step):", threads)


if __name__ == "__main__":
    main()
