#!/usr/bin/env python3
"""The "install cnn_lib" cell that opens every chapter, for Colab and Binder.

A notebook opened from the book's launch buttons runs in an environment of its own: on Binder
(mybinder.org builds the repository with ``requirements.txt``, whose ``-e .`` installs
``cnn_lib``) the library is already there; on Colab it is not. So the first code cell of every
chapter is::

    # Colab and other fresh environments: install cnn_lib from the book's repository.
    # Where cnn_lib is already installed (the book's own environment, Binder) this does nothing.
    try:
        import cnn_lib
    except ImportError:
        %pip install --quiet "cnn_lib @ git+https://github.com/OWNER/NAME"

tagged ``remove-cell`` (the online book does not show it) and ``install-cnn-lib`` (how this
script and the tests find it). ``cnn_lib.load_mnist()`` then downloads MNIST into the user
cache, with checksums, on first use. The URL is ``repository.url`` of ``_config.yml``.

Usage, from the repository root::

    python scripts/install_cell.py check               # every chapter has the right cell?
    python scripts/install_cell.py add [NOTEBOOK ...]  # insert it where missing (default: all
                                                       # notebooks in _toc.yml), after the title
    python scripts/install_cell.py set-repo OWNER/NAME # a fork: point _config.yml's
                                                       # repository.url and every cell at it

Only the standard library and nbformat (installed with jupyter-book) are used.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
TOC = ROOT / "_toc.yml"
INSTALL_TAG = "install-cnn-lib"
TAGS = ["remove-cell", INSTALL_TAG]

TEMPLATE = '''\
# Colab and other fresh environments: install cnn_lib from the book's repository.
# Where cnn_lib is already installed (the book's own environment, Binder) this does nothing.
try:
    import cnn_lib
except ImportError:
    %pip install --quiet "cnn_lib @ git+{url}"'''

_URL_LINE = re.compile(r"^(\s*url:\s*)(\S+)(.*)$", re.MULTILINE)


def repository_url(config_text: str | None = None) -> str:
    """``repository.url`` of ``_config.yml`` (read without a YAML library)."""
    text = CONFIG.read_text(encoding="utf-8") if config_text is None else config_text
    block = re.search(r"^repository:\n((?:[ \t]+.*\n?|\s*\n)*)", text, re.MULTILINE)
    match = block and _URL_LINE.search(block.group(1))
    if not match:
        raise SystemExit(f"no repository.url in {CONFIG.name}")
    return match.group(2).strip("'\"")


def install_source(url: str | None = None) -> str:
    """The exact source of the install cell for the repository at ``url``."""
    return TEMPLATE.format(url=(url or repository_url()).rstrip("/"))


def find_install_cell(nb):
    """Index of the cell tagged ``install-cnn-lib``, or None."""
    for index, cell in enumerate(nb.cells):
        if INSTALL_TAG in cell.get("metadata", {}).get("tags", []):
            return index
    return None


def insert_install_cell(nb, url: str | None = None) -> bool:
    """Put the install cell first among the code cells (after the title); True if changed."""
    import nbformat

    source = install_source(url)
    index = find_install_cell(nb)
    if index is not None:
        cell = nb.cells[index]
        changed = cell.source != source or cell.metadata.get("tags") != TAGS
        cell.source = source
        cell.metadata["tags"] = list(TAGS)
        return changed
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    position = 1 if first_code >= 1 and nb.cells[0].cell_type == "markdown" else 0
    nb.cells.insert(position, nbformat.v4.new_code_cell(source, metadata={"tags": list(TAGS)}))
    return True


def check_notebook(nb, url: str | None = None) -> str | None:
    """A message saying what is wrong with the notebook's install cell, or None."""
    index = find_install_cell(nb)
    if index is None:
        return "has no install cell"
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    if index != first_code:
        return f"install cell is cell {index}, not the first code cell ({first_code})"
    cell = nb.cells[index]
    if cell.cell_type != "code" or cell.source != install_source(url):
        return "install cell differs from the template (run: python scripts/install_cell.py add)"
    if "remove-cell" not in cell.metadata.get("tags", []):
        return "install cell is not tagged remove-cell"
    return None


def toc_notebooks() -> list[Path]:
    """The .ipynb files that _toc.yml lists (root and every file entry)."""
    entries = re.findall(r"^\s*(?:-\s*)?(?:root|file):\s*(\S+)", TOC.read_text(encoding="utf-8"),
                         re.MULTILINE)
    paths = []
    for entry in entries:
        path = ROOT / entry
        path = path if path.suffix else path.with_suffix(".ipynb")
        if path.suffix == ".ipynb" and path.is_file():
            paths.append(path)
    return paths


def _rel(path: Path) -> str:
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def _read(path):
    import nbformat

    return nbformat.read(path, as_version=4)


def _write(nb, path):
    import nbformat

    nbformat.validate(nb)
    nbformat.write(nb, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Manage the chapters' install cell.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="report notebooks whose install cell is missing or wrong")
    add = sub.add_parser("add", help="insert or update the install cell")
    add.add_argument("notebooks", nargs="*", type=Path)
    setrepo = sub.add_parser("set-repo", help="point the book at another GitHub repository")
    setrepo.add_argument("repo", help="OWNER/NAME on GitHub, or a full https URL")
    args = parser.parse_args(argv)

    if args.command == "check":
        problems = [(p, check_notebook(_read(p))) for p in toc_notebooks()]
        problems = [(p, msg) for p, msg in problems if msg]
        for path, msg in problems:
            print(f"{_rel(path)}: {msg}")
        print("all notebooks have the install cell" if not problems else
              f"{len(problems)} notebook(s) to fix: python scripts/install_cell.py add")
        return 1 if problems else 0

    if args.command == "set-repo":
        url = args.repo if "://" in args.repo else f"https://github.com/{args.repo.strip('/')}"
        if not re.fullmatch(r"https://[\w.-]+/[\w.-]+/[\w.-]+", url):
            raise SystemExit(f"not a repository URL: {url}")
        text = CONFIG.read_text(encoding="utf-8")
        old = repository_url(text)
        text = text.replace(f"url: {old}", f"url: {url}", 1)
        CONFIG.write_text(text, encoding="utf-8")
        print(f"_config.yml: repository.url {old} -> {url}")
        notebooks = toc_notebooks()
    else:
        url = None
        notebooks = [p.resolve() for p in args.notebooks] or toc_notebooks()

    for path in notebooks:
        nb = _read(path)
        if insert_install_cell(nb, url):
            _write(nb, path)
            print(f"updated {_rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
