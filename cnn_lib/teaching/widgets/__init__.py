"""Interactive explorers for the book's chapters (ipywidgets), each with a static or
in-browser fallback so that the online book shows the idea without a kernel.

The callback logic lives in plain functions that the tests call directly; an invalid
setting produces a message, never a traceback. Import the submodule of a part:
``from cnn_lib.teaching.widgets import mlp`` (part I), ``conv`` (part II), ``draw`` and
``generalization`` (part III); ``common`` holds their shared checks and messages, and
:func:`~cnn_lib.teaching.widgets.common.static_text`, which reads the self-contained explorers'
JavaScript and CSS from the package folder ``static/`` (inlined into each page).
ipywidgets and matplotlib are book dependencies, imported only by these modules.
"""
