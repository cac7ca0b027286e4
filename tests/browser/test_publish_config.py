"""The publishing set-up, checked without a browser or a build: the offline assets the pages
load, the chapters' Colab/Binder install cell, and the configuration a fork has to change."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # PyYAML comes with jupyter-book
nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "book" / "_static_offline"


def _load_script(name):
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


install_cell = _load_script("install_cell")


def _config():
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def _sphinx_config():
    return _config()["sphinx"]["config"]


# ---------------------------------------------------------------------------------------------
# Offline assets
# ---------------------------------------------------------------------------------------------

def test_vendored_assets_match_their_checksums():
    """book/_static_offline/ holds exactly what scripts/fetch_offline_assets.py wrote."""
    sums = (ASSETS / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    assert sums, "SHA256SUMS is empty"
    bad = []
    for line in sums:
        digest, name = line.split(maxsplit=1)
        path = ASSETS / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            bad.append(name)
    assert not bad, (f"vendored files missing or changed (run python scripts/"
                     f"fetch_offline_assets.py): {bad}")
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total < 6e6, f"book/_static_offline/ has grown to {total / 1e6:.1f} MB"


def test_pages_load_math_and_widgets_from_the_build():
    """mathjax_path and nb_ipywidgets_js point into html_static_path, not to a CDN."""
    config = _sphinx_config()
    static = [ROOT / folder for folder in config["html_static_path"]]
    assert static and all(folder.is_dir() for folder in static), static
    assert not any(folder.name == "_static" for folder in static), (
        "a folder named _static makes Jupyter Book load every .js/.css in it on every page")
    scripts = [config["mathjax_path"], *config["nb_ipywidgets_js"]]
    for script in scripts:
        assert "://" not in script and not script.startswith("//"), f"{script} is remote"
        assert any((folder / script).is_file() for folder in static), (
            f"{script} is not in {config['html_static_path']}")
    assert "sphinx_offline" in _config()["sphinx"]["local_extensions"]
    assert any((folder / "mathjax2-compat.js").is_file() for folder in static)


# ---------------------------------------------------------------------------------------------
# Colab and Binder
# ---------------------------------------------------------------------------------------------

def test_repository_url_is_a_github_repository():
    url = _config()["repository"]["url"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    assert install_cell.repository_url() == url


def test_launch_buttons_point_to_binder_and_colab():
    launch = _config()["launch_buttons"]
    assert launch["binderhub_url"] == "https://mybinder.org"
    assert launch["colab_url"] == "https://colab.research.google.com"


def test_binder_finds_python_and_the_requirements():
    """repo2docker installs requirements.txt from the repository root (its `-e .` then installs
    cnn_lib) with the Python of runtime.txt; the pinned packages need Python 3.11+."""
    runtime = (ROOT / "runtime.txt").read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"python-3\.(1[1-9])", runtime), runtime
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8").split()
    assert "-e" in requirements and "." in requirements
    assert not (ROOT / "binder").exists() and not (ROOT / ".binder").exists(), (
        "a binder/ folder would make repo2docker ignore the root's requirements.txt")


@pytest.mark.parametrize("path", install_cell.toc_notebooks(),
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_chapter_starts_with_the_install_cell(path):
    problem = install_cell.check_notebook(nbformat.read(path, as_version=4))
    assert problem is None, (
        f"{path.relative_to(ROOT)}: {problem}. Fix all chapters with: "
        f"python scripts/install_cell.py add")


def _run_install_cell(cnn_lib_importable):
    """Run the install cell as IPython would; return the magics it called."""
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(install_cell.install_source())
    calls = []

    class FakeShell:
        def run_line_magic(self, name, line, *args):
            calls.append((name, line))

    saved = sys.modules.get("cnn_lib")
    if not cnn_lib_importable:
        sys.modules["cnn_lib"] = None  # makes `import cnn_lib` raise ImportError
    try:
        exec(compile(code, "<install cell>", "exec"), {"get_ipython": FakeShell})
    finally:
        if saved is not None:
            sys.modules["cnn_lib"] = saved
        else:
            sys.modules.pop("cnn_lib", None)
    return calls


def test_install_cell_does_nothing_where_cnn_lib_is_installed():
    assert _run_install_cell(cnn_lib_importable=True) == []


def test_install_cell_installs_cnn_lib_from_the_repository_elsewhere():
    calls = _run_install_cell(cnn_lib_importable=False)
    url = _config()["repository"]["url"]
    assert calls == [("pip", f'install --quiet "cnn_lib @ git+{url}"')], calls


# ---------------------------------------------------------------------------------------------
# scripts/sphinx_offline.py
# ---------------------------------------------------------------------------------------------

def _doctree(*html_outputs):
    from docutils import nodes
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document

    document = new_document("<test>", get_default_settings(Parser))
    for text in html_outputs:
        document += nodes.raw(text, text, format="html")
    return document


class _Recorder:
    def __init__(self):
        self.warnings = []

    def warning(self, message, *args, **kwargs):
        self.warnings.append(message % args)


def test_offline_extension_removes_the_animation_cdn_link(monkeypatch):
    offline = _load_script("sphinx_offline")
    recorder = _Recorder()
    monkeypatch.setattr(offline, "logger", recorder)
    html = ('<link rel="stylesheet"\nhref="https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/'
            'css/font-awesome.min.css">\n<script>var x = 1;</script>\n<div class="animation">')
    document = _doctree(html)
    offline.strip_and_check(None, document, "book/page")
    text = document.children[0].astext()
    assert "font-awesome" not in text and '<div class="animation">' in text
    assert recorder.warnings == []


def test_offline_extension_reports_other_remote_resources(monkeypatch):
    offline = _load_script("sphinx_offline")
    recorder = _Recorder()
    monkeypatch.setattr(offline, "logger", recorder)
    document = _doctree('<script src="https://cdn.example.org/lib.js"></script>',
                        '<a href="https://example.org">a link is fine</a>',
                        '<img src="//cdn.example.org/x.png">')
    offline.strip_and_check(None, document, "book/page")
    assert len(recorder.warnings) == 2, recorder.warnings
    assert "<script> from https://cdn.example.org/lib.js" in recorder.warnings[0]
    assert "<img> from //cdn.example.org/x.png" in recorder.warnings[1]


def test_offline_extension_drops_duplicate_inline_scripts():
    from sphinx.builders.html._assets import _JavaScript

    offline = _load_script("sphinx_offline")
    body = 'const THEBE_JS_URL = "x"'
    context = {"script_files": [_JavaScript("a.js"), _JavaScript(None, body=body),
                                _JavaScript("", body=body), _JavaScript("a.js")]}
    offline.dedupe_scripts(None, "page", "page.html", context, None)
    assert [(js.filename, js.attributes.get("body")) for js in context["script_files"]] == [
        ("a.js", None), (None, body)]


def test_offline_extension_replaces_widgets_the_offline_manager_cannot_load():
    offline = _load_script("sphinx_offline")
    state = {"version_major": 2, "version_minor": 0, "state": {
        "lay": {"model_name": "LayoutModel", "model_module": "@jupyter-widgets/base",
                "model_module_version": "2.0.0", "state": {}},
        "canvas": {"model_name": "CanvasModel", "model_module": "ipycanvas",
                   "model_module_version": "^0.14.3", "state": {"layout": "IPY_MODEL_lay"}},
        "box": {"model_name": "VBoxModel", "model_module": "@jupyter-widgets/controls",
                "model_module_version": "2.0.0",
                "state": {"children": ["IPY_MODEL_canvas"], "layout": "IPY_MODEL_lay"}},
    }}
    assert offline.replace_foreign_widgets(state) == ["ipycanvas"]
    models = state["state"]
    note = models["canvas"]
    assert (note["model_name"], note["model_module"]) == ("HTMLModel", "@jupyter-widgets/controls")
    assert "needs a running Python kernel" in note["state"]["value"]
    assert note["state"]["layout"] == "IPY_MODEL_lay"
    style = note["state"]["style"].removeprefix("IPY_MODEL_")
    assert models[style]["model_name"] == "HTMLStyleModel"
    assert models["box"]["state"]["children"] == ["IPY_MODEL_canvas"]  # still resolves
    assert all(m["model_module"] in offline.BUILTIN_WIDGET_MODULES for m in models.values())
