"""What every widget module shares: a message instead of a traceback, the number checks that
produce those messages, one way to display a widget's result, and the loader of the widgets'
JavaScript and CSS files.

A widget's plain function checks its settings with :func:`whole_number`, :func:`finite_number`
and :func:`finite_array` and returns the :class:`Message` they give for a bad one (NaN, inf, a
wrong type, a size beyond the function's documented bound). :func:`show_result` displays a
Figure, an animation, an HTML string or a Message in a widget's output. The self-contained
HTML explorers inline their JavaScript and CSS, which live as plain files in the package folder
``cnn_lib/teaching/widgets/static/``, read by :func:`static_text`.
"""

from __future__ import annotations

import functools
import html
import math
import numbers
import re
from importlib import resources

import numpy as np

__all__ = ["Message", "whole_number", "finite_number", "finite_array", "show_result", "static_text"]


class Message(str):
    """What a widget function returns instead of a result when a setting is invalid: a plain
    ``str`` that says what is wrong and how to fix it (:func:`show_result` shows it in a box)."""


def _range_text(name, lo, hi, v, kind):
    if lo is not None and hi is not None:
        return f"{name} must be at {'least ' + str(lo) if v < lo else 'most ' + str(hi)} ({kind} between {lo} and {hi}), got {v}."
    if lo is not None:
        return f"{name} must be at least {lo}, got {v}."
    return f"{name} must be at most {hi}, got {v}."


def whole_number(value, name, lo=None, hi=None):
    """``(int, None)``, or ``(None, Message)`` if ``value`` is not a whole number in ``lo..hi``
    (bounds inclusive; ``None``: no bound). ``True``/``False``, ``2.5``, ``"3"`` and NaN are refused;
    ``3.0`` is accepted as 3."""
    try:
        ok = (not isinstance(value, (bool, np.bool_, str, bytes))
              and isinstance(value, numbers.Real) and float(value) == int(value))
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        return None, Message(f"{name} must be a whole number, got {value!r}.")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        return None, Message(_range_text(name, lo, hi, v, "a whole number"))
    return v, None


def finite_number(value, name, lo=None, hi=None):
    """``(float, None)``, or ``(None, Message)`` if ``value`` is not a finite real number in
    ``[lo, hi]``."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or not isinstance(value, numbers.Real):
        try:                                   # 0-d arrays and the like
            if isinstance(value, (str, bytes, bool)) or np.ndim(value) != 0:
                raise TypeError
            value = float(value)
        except (TypeError, ValueError):
            return None, Message(f"{name} must be a number, got {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        return None, Message(f"{name} must be a finite number, got {value}.")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return None, Message(_range_text(name, lo, hi, value, "a number"))
    return value, None


def finite_array(value, name, ndim=None, max_side=None):
    """``(float64 array, None)``, or ``(None, Message)`` if ``value`` is not an array of finite
    real numbers with ``ndim`` axes, each at most ``max_side`` long."""
    try:
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":
            raise TypeError
        a = a.astype(np.float64)
    except (TypeError, ValueError):
        return None, Message(f"{name} must be an array of numbers.")
    if ndim is not None and a.ndim != ndim:
        return None, Message(f"{name} must be a {ndim}-D array, got shape {a.shape}.")
    if max_side is not None and any(s > max_side for s in a.shape):
        return None, Message(f"{name} is too large to draw: at most {max_side} per side, got shape {a.shape}.")
    if a.size == 0:
        return None, Message(f"{name} is empty (shape {a.shape}).")
    if not np.isfinite(a).all():
        return None, Message(f"{name} contains NaN or infinite values; give finite numbers.")
    return a, None


def show_result(result, html_strings=False):
    """Displays a widget function's result in the current output: a :class:`Message` in a
    box; any other string as a message too, or as HTML with ``html_strings=True``; a Figure
    (then closed) or any other displayable object."""
    from IPython.display import HTML, display

    if isinstance(result, Message) or (isinstance(result, str) and not html_strings):
        display(HTML('<div role="alert" style="border-left: 4px solid #D55E00; padding: 4px 10px; '
                     f'background: #fff4e5; color: #000">&#9888; {html.escape(result)}</div>'))
    elif isinstance(result, str):
        display(HTML(result))
    else:
        import matplotlib.pyplot as plt

        display(result)
        if isinstance(result, plt.Figure):
            plt.close(result)


@functools.lru_cache(maxsize=None)
def _read_static(name):
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*\.(js|css)", name):
        raise ValueError(f"not a widget static file name: {name!r}")
    return (resources.files("cnn_lib.teaching.widgets") / "static" / name).read_text(encoding="utf-8")


def static_text(name, **values):
    """The text of the widgets' file ``static/<name>`` (a ``.js`` or ``.css`` file installed
    with the package, found with :mod:`importlib.resources`; read once, then cached).

    Each keyword ``key=value`` replaces the placeholder ``__KEY__`` (the key in capitals) by
    ``str(value)``, in one pass: a value is never searched for placeholders itself. The files
    use placeholders only where an explorer needs a value of its own (an element id, the JSON
    of its data, a constant of the Python code), written where a JavaScript value may stand
    (``var uid = "__UID__";``, ``var data = __DATA__;``), so that every file stays valid
    JavaScript. A placeholder must occur exactly once in the file (``ValueError`` otherwise).
    """
    text = _read_static(name)
    if not values:
        return text
    marks = {f"__{key.upper()}__": str(value) for key, value in values.items()}
    wrong = [mark for mark in marks if text.count(mark) != 1]
    if wrong:
        raise ValueError(f"static/{name} must hold each of {', '.join(wrong)} exactly once")
    return re.sub("|".join(map(re.escape, marks)), lambda m: marks[m.group(0)], text)
