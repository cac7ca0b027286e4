"""cnn_lib against PyTorch (CPU), side by side in one process (prints figures; not a test).

    python benchmarks/bench_vs_torch.py              # 6,400 images per measure, three runs
    python benchmarks/bench_vs_torch.py --images 3200 --runs 5

The seed network is built by ``cnn_lib.seed_network(0)`` and copied weight for weight into a
``torch.nn.Sequential`` (the same initial weights: the two networks' first logits are
compared). Both train with Adam (lr 1e-3) on the same MNIST images, in the same order, with
the same batch sizes, and with the same number of threads. The measures are INTERLEAVED:
a cnn_lib slice of ``--images`` training images, then a PyTorch slice of the same images,
repeated ``--runs`` times, so that both see the same load on a shared machine; each run
prints its ratio (cnn_lib time / PyTorch time: below 1 means cnn_lib is faster).

Measured: training at batch 32 and at batch 128 (seconds per 60,000-image epoch,
extrapolated from the slice), inference of the 10,000 test images (batches of 256, no
gradient), and the peak resident memory of a separate process per library that loads
MNIST, trains one slice at batch 128 and predicts the test set (the whole process's peak, and
on Linux the peak after loading: the data plus what training and inference add).

On a machine shared with other jobs every figure moves from run to run; the interleaving
keeps the ratios comparable, but threads suffer more than one core from a busy neighbour:
``--threads 1`` compares the two libraries on one core each (it also sets
``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``, unless already set).

Without PyTorch installed it prints cnn_lib's figures alone (PyTorch is not a requirement
of the book).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

# --threads N also caps the BLAS and OpenMP threads of both libraries, which must be set before
# NumPy (and PyTorch) are imported: otherwise "one thread" still multiplies matrices on several.
if "--threads" in sys.argv[:-1]:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, sys.argv[sys.argv.index("--threads") + 1])

import numpy as np  # noqa: E402

import cnn_lib  # noqa: E402
from cnn_lib import functional  # noqa: E402

torch = None                             # imported by main() when installed (not by cnn_lib's memory probe)


def import_torch():
    global torch
    try:
        import torch as _torch
    except ImportError:                  # cnn_lib's figures alone
        return None
    torch = _torch
    return torch


# --------------------------------------------------------------------------- the two networks
def torch_copy(model):
    """A torch.nn.Sequential with the same layers and the same weights as ``seed_network``."""
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.Conv2d(8, 8, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
                        nn.Flatten(), nn.Linear(800, 128), nn.ReLU(), nn.Linear(128, 10))
    p = model.params()
    with torch.no_grad():
        for t_layer, name in ((net[0], "conv1"), (net[2], "conv2")):
            t_layer.weight.copy_(torch.from_numpy(p[f"{name}.w"]))          # (F, C, KH, KW) in both
            t_layer.bias.copy_(torch.from_numpy(p[f"{name}.b"]))
        for t_layer, name in ((net[6], "dense1"), (net[8], "dense2")):
            t_layer.weight.copy_(torch.from_numpy(p[f"{name}.w"].T.copy()))  # ours (D, M), torch's (M, D)
            t_layer.bias.copy_(torch.from_numpy(p[f"{name}.b"]))
    return net


def cnn_lib_trainer(x, y, order):
    model = cnn_lib.seed_network(0)
    opt = cnn_lib.Adam(model.params(), lr=1e-3)

    def run(batch_size):
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            model.train_step(x[idx], y[idx])      # forward, loss and backward (as cnn_lib.fit)
            opt.step(model.grads())
    return model, run


def torch_trainer(model, x, y, order):
    net = torch_copy(model)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    order_t = torch.from_numpy(order)

    def run(batch_size):
        for i in range(0, len(order), batch_size):
            idx = order_t[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return net, run


def cnn_lib_predict(model, x):
    return model.predict(x, batch_size=256)


def torch_predict(net, x):
    xt = torch.from_numpy(x)
    with torch.no_grad():
        return torch.cat([net(xt[i:i + 256]).argmax(1) for i in range(0, len(xt), 256)]).numpy()


def timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


# --------------------------------------------------------------------------- peak memory (a child process each)
def peak_rss_child(lib, images, data):
    """Loads MNIST, trains ``images`` images at batch 128 and predicts the test set with ``lib``
    ("cnn_lib" or "torch"); prints the peak RSS in MiB as JSON: of the whole process, and (on
    Linux, where the peak can be reset) of the part after MNIST was loaded, data included."""
    import resource
    x_train, y_train, x_test, _ = cnn_lib.load_mnist(data, progress=False)
    order = np.random.default_rng(0).permutation(len(x_train))[:images]
    try:                                              # reset the peak: what follows is the training's
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        reset = True
    except OSError:
        reset = False
    model, run = cnn_lib_trainer(x_train, y_train, order)
    if lib == "torch":
        import_torch()
        torch.set_num_threads(functional.get_num_threads())
        net, run = torch_trainer(model, x_train, y_train, order)
        run(128)
        torch_predict(net, x_test)
    else:
        run(128)
        cnn_lib_predict(model, x_test)
    result = {"process_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "training_mib": None}
    if reset:
        with open("/proc/self/status") as fh:
            hwm = [line for line in fh if line.startswith("VmHWM:")]
        result["training_mib"] = int(hwm[0].split()[1]) / 1024 if hwm else None
    print(json.dumps(result))


def peak_rss(lib, images, data, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--rss-child", lib, "--images", str(images),
           "--threads", str(threads)]
    if data:
        cmd += ["--data", data]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def mib(r):
    return f"{r['process_mib']:.0f} MiB" + (f" ({r['training_mib']:.0f} MiB after loading)" if r["training_mib"] else "")


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=6400, help="training images per measure (default 6,400)")
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs per measure (default 3)")
    ap.add_argument("--data", default=None, help="MNIST folder (default: CNN_LIB_DATA or the cache)")
    ap.add_argument("--threads", type=int, default=functional.get_num_threads(),
                    help="threads for each library (default: cnn_lib's default, %(default)s)")
    ap.add_argument("--rss-child", choices=["cnn_lib", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    functional.set_num_threads(args.threads)
    if args.rss_child:
        return peak_rss_child(args.rss_child, args.images, args.data)

    threads = functional.get_num_threads()
    import_torch()
    print(f"cnn_lib {cnn_lib.__version__}, numpy {np.__version__}, python {platform.python_version()}, "
          f"{os.cpu_count()} CPU(s), {threads} thread(s) each"
          + (f"; torch {torch.__version__}" if torch else "; PyTorch not installed: cnn_lib alone"))
    x_train, y_train, x_test, y_test = cnn_lib.load_mnist(args.data, progress=False)
    order = np.random.default_rng(0).permutation(len(x_train))[:args.images]   # the same order for both
    scale = 60000 / len(order)

    model, run_ours = cnn_lib_trainer(x_train, y_train, order)
    if torch:
        torch.set_num_threads(threads)
        net, run_torch = torch_trainer(model, x_train, y_train, order)
        with torch.no_grad():
            diff = np.abs(net(torch.from_numpy(x_test[:64])).numpy() - model.forward(x_test[:64], train=False)).max()
        print(f"same initial weights: largest difference of the first logits {diff:.1e}")
        assert diff < 1e-4, diff

    for bs in (32, 128):
        run_ours(bs)                                 # warm-up (threads, caches, allocator)
        if torch:
            run_torch(bs)
        for r in range(args.runs):
            t_ours = timed(run_ours, bs)
            line = f"batch {bs:>3}, run {r + 1}: cnn_lib {t_ours * scale:5.2f} s per epoch"
            if torch:
                t_torch = timed(run_torch, bs)
                line += f", PyTorch {t_torch * scale:5.2f} s, ratio cnn_lib/PyTorch {t_ours / t_torch:.2f}"
            print(line, flush=True)

    cnn_lib_predict(model, x_test[:1000])             # warm-up
    if torch:
        torch_predict(net, x_test[:1000])
    for r in range(args.runs):
        t_ours = timed(cnn_lib_predict, model, x_test)
        line = f"inference of the {len(x_test):,} test images, run {r + 1}: cnn_lib {t_ours:.3f} s"
        if torch:
            t_torch = timed(torch_predict, net, x_test)
            line += f", PyTorch {t_torch:.3f} s, ratio {t_ours / t_torch:.2f}"
        print(line, flush=True)
    accuracy = np.mean(cnn_lib_predict(model, x_test) == y_test)
    print(f"(test accuracy of cnn_lib's network after these slices: {accuracy:.2%})")

    for r in range(args.runs):
        ours = peak_rss("cnn_lib", args.images, args.data, threads)
        line = f"peak RSS (load MNIST, train {args.images:,} images at batch 128, predict), run {r + 1}: cnn_lib {mib(ours)}"
        if torch:
            theirs = peak_rss("torch", args.images, args.data, threads)
            line += f", PyTorch {mib(theirs)}, ratio {ours['process_mib'] / theirs['process_mib']:.2f}"
        print(line, flush=True)

if __name__ == "__main__":
    main()
