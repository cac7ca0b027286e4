"""The widgets' JavaScript and CSS files (cnn_lib/teaching/widgets/static/): every file the code
names is found with importlib.resources and every file there is used, the wheel installs them,
the pages inline them (self-contained) with every placeholder filled, and common.static_text's
placeholder rules."""

import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from cnn_lib.teaching.widgets import common

ROOT = Path(__file__).resolve().parents[1]
WIDGETS = ROOT / "cnn_lib" / "teaching" / "widgets"
PLACEHOLDER = re.compile(r"__[A-Z][A-Z0-9_]*__")


def _files_in_package():
    return sorted(p.name for p in (resources.files("cnn_lib.teaching.widgets") / "static").iterdir()
                  if p.is_file())


def _names_in_code():
    """Every ``static_text("name"...)`` of the widget modules, as {name: [module, ...]}."""
    names = {}
    for path in sorted(WIDGETS.glob("*.py")):
        for name in re.findall(r"static_text\(\s*\"([^\"]+)\"", path.read_text(encoding="utf-8")):
            names.setdefault(name, []).append(path.name)
    return names


def test_every_file_the_code_names_is_found_and_every_file_is_used():
    in_code, in_package = set(_names_in_code()), set(_files_in_package())
    assert in_code, "no static_text(...) call found: has the loader been renamed?"
    assert not in_code - in_package, f"named in the code but missing from static/: {sorted(in_code - in_package)}"
    assert not in_package - in_code, f"in static/ but used by no widget: {sorted(in_package - in_code)}"
    assert {n.rsplit(".", 1)[1] for n in in_package} == {"js", "css"}


def test_files_can_be_inlined():
    """Inlined in a <script> or <style>, a file must not close the element early."""
    for name in _files_in_package():
        text = common.static_text(name)
        assert text.strip(), name
        closing = "</script" if name.endswith(".js") else "</style"
        assert closing not in text.lower(), name
        assert "://" not in text, f"{name} names a URL: the pages must load nothing"


def test_static_text_is_cached_and_fills_each_placeholder_once():
    assert common.static_text("curves.js") is common.static_text("curves.js")
    filled = common.static_text("curves.js", uid="__DATA__ and more")
    assert 'getElementById("__DATA__ and more")' in filled          # one pass: a value is not searched again
    assert not PLACEHOLDER.search(filled.replace("__DATA__", ""))
    with pytest.raises(ValueError, match="__PEN__"):
        common.static_text("curves.js", pen=3)                        # a placeholder the file does not have
    for bad in ("../common.py", "missing.txt", "Draw.JS", 3):
        with pytest.raises(ValueError, match="static file name"):
            common.static_text(bad)
    with pytest.raises(FileNotFoundError):
        common.static_text("no-such-file.js")


def test_pages_inline_their_files_and_fill_every_placeholder():
    """Each page holds the full text of its files (nothing loaded at view time) and no
    placeholder is left; the placeholders a page fills are exactly those its files hold."""
    from cnn_lib import seed_network
    from cnn_lib.teaching.widgets import conv, draw, generalization, mlp

    curves = {k: np.linspace(1.0, 0.5, 4) for k in generalization.CURVE_KEYS}
    small = {"n": (4, 6), "k": (1, 3), "s": (1, 2), "p": (0, 1), "d": (1, 1)}
    defaults = {"n": 5, "k": 3, "s": 1, "p": 1, "d": 1}
    pages = {
        "conv": (conv.explorer_html(np.random.default_rng(0).random((28, 28)), small, defaults, uid="u-1"),
                 ["conv-explorer.css", "conv-explorer.js"], ["conv-explorer-mount.js"]),
        "descent": (mlp.descent_explorer_html(lrs=(0.1,), starts=((0.0, 0.0),), steps=2),
                    ["descent.css"], ["descent.js"]),
        "draw": (draw.explorer_html(seed_network(0)), ["draw.css"], ["draw-core.js", "draw-ui.js"]),
        "curves": (generalization.curves_slider_html([(0.0, curves)]), ["curves.css"], ["curves.js"]),
    }
    used = set()
    for name, (page, verbatim, templates) in pages.items():
        assert isinstance(page, str) and not isinstance(page, common.Message), name
        assert not PLACEHOLDER.search(page), f"{name}: {PLACEHOLDER.search(page).group(0)} left in the page"
        for file in verbatim:
            assert common.static_text(file) in page, f"{name}: {file} is not inlined"
        for file in templates:                                        # every line without a placeholder
            lines = [ln for ln in common.static_text(file).splitlines() if ln.strip()]
            assert any(PLACEHOLDER.search(ln) for ln in lines), f"{file} has no placeholder: inline it as is"
            missing = [ln for ln in lines if not PLACEHOLDER.search(ln) and ln not in page]
            assert not missing, f"{name}: lines of {file} not in the page: {missing[:3]}"
        used.update(verbatim + templates)
    assert used == set(_files_in_package())


def test_draw_core_holds_the_python_constants():
    from cnn_lib.data import MNIST_MEAN, MNIST_STD
    from cnn_lib.teaching.widgets import draw

    head = re.search(r"var BOX = (.*?), FIELD = (.*?), THRESHOLD = (.*?), MEAN = (.*?), STD = (.*?);",
                     draw.JS_CORE)
    assert [float(v) for v in head.groups()] == [draw.BOX, draw.FIELD, draw.INK_THRESHOLD, MNIST_MEAN, MNIST_STD]


def test_the_wheel_installs_every_static_file(tmp_path):
    """Builds a wheel of a copy of the package (pip, with its build isolation) and looks inside."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "cnn_lib", src / "cnn_lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                           str(src)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        message = f"pip could not build a wheel here: {proc.stderr[-1500:]}"
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    (wheel,) = (tmp_path / "dist").glob("cnn_lib-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    in_wheel = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("cnn_lib/teaching/widgets/static/"))
    assert in_wheel == _files_in_package()
