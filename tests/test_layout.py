"""The library's layout rules (issue 11), read from the source with ``ast``:

* no code outside a module uses that module's private names (``F._pair``, ``from .functional
  import _check_labels``): what is shared is public, as in :mod:`cnn_lib.shapes`;
* the engine (every module of ``cnn_lib`` outside ``cnn_lib.teaching``) never imports the
  book's teaching helpers.

The scan covers the package, the tests, the benchmarks, the experiments and every code cell
of the book; the last tests show that it does find what it forbids.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cnn_lib"


def _module_name(path):
    """``cnn_lib.fast_conv`` for ``cnn_lib/fast_conv.py``, ``cnn_lib.teaching`` for its ``__init__``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module, level, here, is_package):
    """The absolute name of ``from <level dots><module> import ...`` written in module ``here``."""
    if level == 0:
        return module or ""
    base = here.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source, here="", is_package=False):
    """``[(line, text)]``: the places where ``source`` (the code of module ``here``, or of a test,
    a script or a notebook cell when ``here`` is empty) uses a private name of a cnn_lib module
    other than its own: ``from cnn_lib.x import _y``, or ``M._y`` where ``M`` names a cnn_lib
    module (``import cnn_lib.functional as F``, ``from cnn_lib import fast_conv``, ``from . import x``)."""
    tree = ast.parse(source)
    modules, found = {}, []                       # local name -> the cnn_lib module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "cnn_lib":
                    modules[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else "cnn_lib"
        elif isinstance(node, ast.ImportFrom):
            source_module = _absolute(node.module, node.level, here, is_package)
            if source_module.split(".")[0] != "cnn_lib":
                continue
            for alias in node.names:
                if _private(alias.name) and source_module != here:
                    found.append((node.lineno, f"from {source_module} import {alias.name}"))
                elif not _private(alias.name):      # maybe a submodule: from cnn_lib import functional as F
                    modules[alias.asname or alias.name] = f"{source_module}.{alias.name}"
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                and node.value.id in modules and modules[node.value.id] != here):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return sorted(found)


def _python_files():
    for folder in ("cnn_lib", "tests", "benchmarks", "experiments"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def _notebook_cells():
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        for k, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            if cell["cell_type"] == "code":
                code = "".join(cell["source"])
                # IPython magics and shell escapes are not Python
                code = "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
                                  else line for line in code.splitlines())
                yield f"{path.name}, cell {k}", code


@pytest.mark.parametrize("path", list(_python_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_names_of_other_modules_in_python_files(path):
    inside = PACKAGE in path.parents
    here = _module_name(path) if inside else ""
    uses = private_uses(path.read_text(encoding="utf-8"), here, inside and path.name == "__init__.py")
    assert uses == [], f"{path.relative_to(ROOT)} uses private names of other modules: {uses}"


def test_no_private_names_in_the_book():
    uses = [(where, use) for where, code in _notebook_cells() for use in private_uses(code)]
    assert uses == [], f"chapters use private names of cnn_lib: {uses}"


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py") if PACKAGE / "teaching" not in p.parents),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_engine_never_imports_the_teaching_helpers(path):
    here = _module_name(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, here, path.name == "__init__.py")
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        assert not any(n == "cnn_lib.teaching" or n.startswith("cnn_lib.teaching.") for n in names), \
            f"{path.relative_to(ROOT)} line {node.lineno} imports the teaching helpers"


# ------------------------------------------------------------------ the scan finds what it forbids
def test_the_scan_finds_private_imports_and_attributes():
    code = ("from cnn_lib import functional as F\nimport cnn_lib.fast_conv as fc\nimport cnn_lib\n"
            "from cnn_lib.functional import _check, relu\n"
            "F._pair(2)\nfc._unroll(x)\ncnn_lib._private\nF.relu(x)\nx._y\nF.__name__\n")
    assert private_uses(code) == [(4, "from cnn_lib.functional import _check"), (5, "F._pair"),
                                  (6, "fc._unroll"), (7, "cnn_lib._private")]


def test_the_scan_reads_relative_imports_and_allows_a_module_its_own_names():
    code = "from .functional import _check_labels\nfrom . import fast_conv\nfast_conv._pad(x)\n_own()\n"
    assert private_uses(code, "cnn_lib.losses") == [(1, "from cnn_lib.functional import _check_labels"),
                                                    (3, "fast_conv._pad")]
    assert private_uses("from . import _helper\n", "cnn_lib.teaching", is_package=True) == []
    assert private_uses("from .. import fast_conv\nfast_conv._pad(x)\n", "cnn_lib.teaching.zoo") == [
        (2, "fast_conv._pad")]
