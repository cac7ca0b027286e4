"""The book's teaching helpers: code that the chapters use but a network does not need.

* ``mlp``: small MLP experiments of part I (hinge fits, loss landscapes, gradient descent);
* ``optim_demos``: the optimization chapter's valley, optimizer paths and gradient noise;
* ``conv_teaching``: the loop-by-loop convolutions and pictures of part II;
* ``report``: the source report's loop code, rewritten to run on NumPy 2 (part III);
* ``generalization``: learning curves on training and validation data;
* ``init_demos``: deep ReLU MLPs and the spread of their signals (initialization);
* ``zoo``: the networks part III trains, trained once and cached outside git;
* ``plots``: matplotlib helpers (each takes an ``ax`` and returns it);
* ``widgets``: the interactive explorers, each with a static or in-browser fallback.

The engine (``cnn_lib`` itself) never imports this package; it depends on the engine.
"""
