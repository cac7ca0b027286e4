"""The entries of the book's ``_toc.yml``, shared by the tests (pytest puts tests/ on sys.path
as the folder of tests/conftest.py, so tests/browser/ can import it too)."""

from pathlib import Path


def toc_entries(toc_path: Path) -> list[str]:
    """Every ``root:`` and ``file:`` entry of a jb-book / jb-article table of contents, in order."""
    import yaml  # PyYAML comes with jupyter-book

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("root", "file") and isinstance(value, str):
                    yield value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    return list(walk(yaml.safe_load(Path(toc_path).read_text(encoding="utf-8"))))
