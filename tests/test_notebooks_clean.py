"""The book's notebooks are committed clean and all of them are in the table of contents.

Clean means: no outputs, no execution counts, no saved widget state. Outputs are produced
when the book is built (``execute_notebooks: force``), so stored ones would only be stale,
bloat the history and hide whether the current code still produces them.
"""

import json
from pathlib import Path

import pytest
from book_toc import toc_entries

pytest.importorskip("yaml")  # PyYAML comes with jupyter-book

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
TOC = ROOT / "_toc.yml"
SOURCE_SUFFIXES = (".ipynb", ".md")


def _notebooks():
    return sorted(
        path
        for path in BOOK.rglob("*.ipynb")
        if not any(part.startswith(".") or part == "_build" for part in path.relative_to(ROOT).parts)
    )


def _toc_entries():
    return toc_entries(TOC)


def _source_of(entry):
    """The file a toc entry refers to (entries may omit the suffix), or None."""
    path = ROOT / entry
    if path.suffix in SOURCE_SUFFIXES:
        return path if path.is_file() else None
    for suffix in SOURCE_SUFFIXES:
        if path.with_suffix(suffix).is_file():
            return path.with_suffix(suffix)
    return None


def _rel(path):
    return path.relative_to(ROOT).as_posix()


def test_there_are_notebooks():
    assert _notebooks(), f"no notebooks found under {BOOK}"


@pytest.mark.parametrize("path", _notebooks(), ids=_rel)
def test_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [
        index
        for index, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{_rel(path)}: code cells {dirty} have outputs or execution counts; clear them with "
        f"`jupyter nbconvert --clear-output --inplace {_rel(path)}`"
    )
    assert "widgets" not in nb.get("metadata", {}), (
        f"{_rel(path)}: saved widget state in metadata.widgets; remove it"
    )


def test_every_toc_entry_exists():
    missing = [entry for entry in _toc_entries() if _source_of(entry) is None]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_notebook_is_in_the_toc():
    listed = {_source_of(entry) for entry in _toc_entries()}
    unlisted = [_rel(path) for path in _notebooks() if path not in listed]
    assert not unlisted, (
        f"notebooks missing from _toc.yml (only_build_toc_files skips them): {unlisted}"
    )


def test_toc_has_no_duplicates():
    entries = [_source_of(entry) or entry for entry in _toc_entries()]
    duplicates = sorted({str(e) for e in entries if entries.count(e) > 1})
    assert not duplicates, f"_toc.yml lists these more than once: {duplicates}"
