"""Guards over the book's notebook sources and its built pages, so that errors a reader has
seen cannot come back:

- a malformed glue role (``{glue:text}`key``​`` closed by a double backtick, a role with no
  key) shows raw ``{glue:text}…`` on the page and turns the rest of the sentence into code;
- an unmatched backtick (outside code fences and math) renders as a stray backtick, or turns
  the rest of a paragraph into code;
- a saved output or progress bar (tqdm's "training: 100%" widget) makes a page depend on the
  state of the model cache when it was built;
- a result typed into the prose (e.g. "about 80 minutes", "99.2%") is not the number the book
  computes: every measured or computed figure is glued from a cell (``{glue:text}``).

Each check is a plain function of a text, tested below on small synthetic notebooks and pages
(so that each guard is shown to fail on what it must catch), then applied to every notebook
of ``book/`` and, when a build exists, to every page of ``_build/html`` (``$CNN_BOOK_HTML``).
Without a build the HTML checks are skipped with the reason, except in CI (``CI=true``), where
that is a failure, as for the browser tests (tests/browser/conftest.py).
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
HTML_DIR = Path(os.environ.get("CNN_BOOK_HTML", ROOT / "_build" / "html")).resolve()
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _notebooks():
    return sorted(
        path
        for path in BOOK.rglob("*.ipynb")
        if not any(part.startswith(".") or part == "_build" for part in path.relative_to(ROOT).parts)
    )


def _rel(path):
    return path.relative_to(ROOT).as_posix()


def _markdown_cells(nb):
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            yield index, "".join(cell["source"])


def _code_cells(nb):
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            yield index, cell


# =============================================================================================
# The checks: plain functions of a text, returning a list of problems (empty: fine)
# =============================================================================================

_FENCE = re.compile(r"^[ \t]*(?:(?:\d+[.)]|[-*+])[ \t]+)?(`{3,}|~{3,})")   # also a fence opening a list item
_DISPLAY_MATH = re.compile(r"\$\$.*?\$\$", re.S)


def strip_fences(text):
    """``text`` with fenced code blocks (``` or ~~~) replaced by blank lines. MyST directives
    written with colons (``:::``) hold Markdown, so they are kept."""
    out, fence = [], None
    for line in text.split("\n"):
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            out.append(line[:m.start(1)])            # keep a list marker, drop the fence
        elif fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and set(line.strip()) == {fence[0]}:
                fence = None
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def _blank(match):
    return re.sub(r"[^\n]", " ", match.group(0))


def code_spans_and_math(paragraph):
    """Scan one paragraph as Markdown does: a run of n backticks opens a code span that the
    next run of exactly n backticks closes; ``$…$`` is inline math (dollarmath). Returns
    ``(prose, spans, unmatched)``: the prose with code spans blanked out and math replaced by
    ``$`` signs, the code
    spans' contents, and the positions of backtick runs that nothing closes."""
    prose, spans, unmatched = list(paragraph), [], []
    i, n = 0, len(paragraph)
    while i < n:
        ch = paragraph[i]
        if ch == "\\" and i + 1 < n:
            i += 2
            continue
        if ch == "`":
            j = i
            while j < n and paragraph[j] == "`":
                j += 1
            run = j - i
            k, close = j, None
            while k < n:
                if paragraph[k] == "`":
                    e = k
                    while e < n and paragraph[e] == "`":
                        e += 1
                    if e - k == run:
                        close = (k, e)
                        break
                    k = e
                else:
                    k += 1
            if close is None:
                unmatched.append((i, "`" * run))
                i = j
                continue
            spans.append((i, paragraph[j:close[0]]))
            for p in range(i, close[1]):
                prose[p] = " " if paragraph[p] != "\n" else "\n"
            i = close[1]
            continue
        if ch == "$":
            end = paragraph.find("$", i + 1)
            if end != -1:
                for p in range(i, end + 1):                 # math stays visible as "$"s
                    prose[p] = "$" if paragraph[p] != "\n" else "\n"
                i = end + 1
                continue
        i += 1
    return "".join(prose), spans, unmatched


def _paragraphs(markdown):
    """The paragraphs of a Markdown cell outside code fences and display math."""
    text = _DISPLAY_MATH.sub(_blank, strip_fences(markdown))
    return [p for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


_GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}")
_GLUE_ROLES = {"{glue}", "{glue:any}", "{glue:text}", "{glue:md}"}
#: a role, its key (no backtick inside), and its closing backtick(s)
_GLUE_USE = re.compile(r"\{glue(?::[a-z]+)?\}(`+)([^`\n]*)(`*)")


def malformed_glue_roles(markdown):
    """Glue roles in a Markdown cell that do not read ``{glue:text}`key`​`` or
    ``{glue:text}`key:format`​`` (one backtick on each side, a key, a known role)."""
    problems = []
    text = _DISPLAY_MATH.sub(_blank, strip_fences(markdown))
    for m in _GLUE_ROLE.finditer(text):
        role = m.group(0)
        use = _GLUE_USE.match(text, m.start())
        snippet = text[m.start():m.start() + 60].split("\n")[0]
        if role not in _GLUE_ROLES:
            problems.append(f"unknown glue role {role}: {snippet!r}")
        elif use is None:
            problems.append(f"glue role without a `key`: {snippet!r}")
        elif use.group(1) != "`" or use.group(3) != "`":
            problems.append(f"glue role not closed by exactly one backtick: {snippet!r}")
        elif not re.fullmatch(r"[A-Za-z_][\w.-]*(:[^`]*)?", use.group(2)):
            problems.append(f"glue role with a malformed key: {snippet!r}")
    return problems


def unbalanced_backticks(markdown):
    """Backtick runs that no run of the same length closes, in the same paragraph (code fences
    and math excluded): they render as literal backticks or swallow the rest of the text."""
    problems = []
    for paragraph in _paragraphs(markdown):
        _, _, unmatched = code_spans_and_math(paragraph)
        for pos, run in unmatched:
            line = paragraph[:pos].count("\n")
            text = paragraph.split("\n")[line].strip()
            problems.append(f"unmatched {run!r} in: {text[:100]!r}")
    return problems


#: what a progress bar leaves in a notebook's outputs or a built page
_PROGRESS_TEXT = [
    re.compile(r"\btraining:\s*\d{1,3}%"),                     # tqdm's description, cnn_lib.fit's
    re.compile(r"\d+%\|[^|\n]{0,80}\|\s*\d+/\d+"),              # tqdm's text bar "42%|####  | 21/50"
    re.compile(r"\d(?:\.\d+)?\s?(?:it|batch|B)/s\b"),           # tqdm's rate
    re.compile(r"\d(?:\.\d+)?\s?s/(?:it|batch)\b"),
]
#: the widget models tqdm.notebook creates (an HBox of HTML + FloatProgress + HTML)
_PROGRESS_WIDGETS = re.compile(r"(?:Float|Int)ProgressModel")


def progress_bar_traces(text):
    """Traces of a progress bar (text or widget state) in an output or a page."""
    found = [m.group(0) for pattern in _PROGRESS_TEXT for m in pattern.finditer(text)]
    found += [f"widget state {m.group(0)}" for m in _PROGRESS_WIDGETS.finditer(text)]
    return found


def saved_outputs(nb):
    """Code cells with stored outputs (and which of them show a progress bar), and saved widget
    state in the metadata."""
    problems = []
    for index, cell in _code_cells(nb):
        outputs = cell.get("outputs") or []
        if outputs:
            blob = json.dumps(outputs, ensure_ascii=False)
            bars = progress_bar_traces(blob)
            problems.append(f"cell {index}: {len(outputs)} saved output(s)"
                            + (f", with a progress bar ({bars[0]!r})" if bars else ""))
    if "widgets" in nb.get("metadata", {}):
        problems.append("saved widget state in metadata.widgets")
    return problems


#: functions that show a progress bar unless told not to, and that the book must call silently
_PROGRESS_FUNCTIONS = ("fit", "load_mnist")


def noisy_calls(code):
    """Calls in a code cell of ``fit`` / ``load_mnist`` that do not pass ``progress=False``
    (they would print a progress bar into the built page). Cells that do not parse as Python
    (IPython magics) are read without their magic lines."""
    source = "\n".join(line for line in code.split("\n") if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in _PROGRESS_FUNCTIONS:
            continue
        progress = [kw.value for kw in node.keywords if kw.arg == "progress"]
        if not (progress and isinstance(progress[0], ast.Constant) and progress[0].value is False):
            problems.append(f"line {node.lineno}: {ast.unparse(node)[:90]} (pass progress=False)")
    return problems


# ----------------------------------------------------------------------------- typed numbers
#: a number with its unit: "80 minutes", "99.2%", "16×", "1.5 s", "2,000 ms"
_TYPED = re.compile(
    r"(?<![\w.,/^_{-])(?P<num>\d[\d,]*(?:\.\d+)?)\s?"
    r"(?P<unit>%|×|x\b|times\b|-fold\b|ms\b|µs\b|us\b|s\b|seconds?\b|min\b|minutes?\b|h\b|hours?\b"
    r"|MB\b|GB\b|GFLOP/s\b)"
    r"(?!\s?(?:\d|\$|\\|[a-zA-Z]\b|\())"        # "28 × 28", "8 × $H$", "2 × 50,000", "3 × (…)": sizes, not results
)


def _significant_digits(number):
    digits = number.replace(",", "").replace(".", "").lstrip("0")
    return len(digits)


def typed_numbers(markdown):
    """Numbers with at least two significant digits followed by a unit of time, a percentage or
    a ratio (``%``, ``s``, ``ms``, ``min``, ``×``, ``times``, …) in a Markdown cell's prose —
    outside code fences, code spans, math and glue roles. Each is ``"NUMBER UNIT"`` in the
    sentence it sits in."""
    found = []
    for paragraph in _paragraphs(markdown):
        prose, _, _ = code_spans_and_math(paragraph)        # glue roles are code spans: blanked
        prose = re.sub(r"\{glue(?::[a-z]+)?\}", " ", prose)
        prose = re.sub(r"\{(?:eq|ref|doc|numref|cite:[a-z]+|cite)\}", " ", prose)
        prose = re.sub(r"\]\([^)]*\)", "]", prose)          # link targets
        for m in _TYPED.finditer(prose):
            if _significant_digits(m.group("num")) < 2:
                continue
            start = max(prose.rfind("\n", 0, m.start()) + 1, m.start() - 50)
            context = " ".join(prose[start:m.end() + 30].split())
            found.append((f"{m.group('num')} {m.group('unit')}".replace(" -fold", "-fold"), context))
    return found


#: Typed numbers with a unit that are not results the book computes: (notebook stem, the
#: number and unit as typed_numbers reports it) -> why it is legitimate. Keep it short, and
#: give the reason: a figure a cell computes must be glued, not listed here.
ALLOWED_TYPED = {
    ("part2_channels_stride_padding", "25-fold"): "K_H K_W = 25 copies for a 5 x 5 kernel: a definition, not a measurement",
    ("part2_conv_neuron", "25 times"): "the bias added K_H K_W = 25 times for a 5 x 5 kernel: arithmetic on a definition",
    ("part2_receptive_field", "25 times"): "the bias added K_H K_W = 25 times for a 5 x 5 kernel: arithmetic on a definition",
    ("part3_generalization", "87 %"): "an example accuracy put into the standard-error formula, not a result",
    ("part3_generalization", "99 %"): "an example accuracy put into the standard-error formula, not a result",
    ("part3_generalization", "100 %"): "perfect training accuracy, asserted (== 1.0) by the hidden cells that measure it",
    ("part1_optimization", "16 times"): "the ratio of the batch sizes compared (256 / 16): a setting of the experiment",
    ("part3_modifications", "99.4 %"): "the target set by the project (issue 10), stated once; the reached value is glued",
    ("part3_initialization", "15 %"): "the tolerance of a hidden check, stated with the check",
}

#: Typed results found in chapters that others are rewriting (issue 10): reported as expected
#: failures until their owner glues them (or moves a genuine constant to ALLOWED_TYPED), after
#: which the entry is stale and test_the_allowlist_has_no_stale_entries asks for its removal.
PENDING_TYPED = {
}


# =============================================================================================
# The checks themselves can fail: synthetic notebooks and pages
# =============================================================================================

def _nb(*cells):
    """A minimal notebook from ("markdown" | "code", source[, outputs]) tuples."""
    nb = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    for kind, source, *rest in cells:
        cell = {"cell_type": kind, "metadata": {}, "source": source}
        if kind == "code":
            cell.update(execution_count=None, outputs=rest[0] if rest else [])
        nb["cells"].append(cell)
    return nb


class TestTheGuardsCatch:
    def test_a_glue_role_closed_by_two_backticks(self):
        bad = "All agree to within {glue:text}`max_err:.0e``: the same function."
        assert malformed_glue_roles(bad)
        assert unbalanced_backticks(bad)

    def test_other_malformed_glue_roles(self):
        assert malformed_glue_roles("a {glue:text} key with no backticks")
        assert malformed_glue_roles("a {glue:txt}`key` misspelt role")
        assert malformed_glue_roles("a {glue:text}``key`` doubled on both sides")
        assert malformed_glue_roles("a {glue:text}`` empty key")

    def test_well_formed_glue_roles_pass(self):
        good = ("takes {glue:text}`step_ms:.2f` ms, {glue:text}`n:,d` images, {glue}`fig`, "
                "and {glue:text}`acc:.1%`.\n\n$$ a = {b} $$\n")
        assert malformed_glue_roles(good) == []
        assert unbalanced_backticks(good) == []

    def test_a_stray_backtick(self):
        assert unbalanced_backticks("the function `conv2d and its `stride`")
        assert unbalanced_backticks("one ``double`` and one `single")

    def test_balanced_backticks_math_and_fences_pass(self):
        md = ("Use ``x`y`` and `a`; math $`$ is math; \\` is escaped.\n\n"
              "```python\nprint('`')\n```\n\n$$\n` inside display math\n$$\n\n"
              ":::{dropdown} Solutions\n1. `ok`\n2. ```python\n   print('`')\n   ```\n:::\n")
        assert unbalanced_backticks(md) == []
        assert unbalanced_backticks("2. ``python\n   x\n") != []     # two backticks open no fence

    def test_a_code_span_does_not_cross_paragraphs(self):
        assert unbalanced_backticks("first `paragraph\n\nsecond` paragraph")

    def test_saved_outputs_and_progress_bars(self):
        bar = {"output_type": "stream", "name": "stderr",
               "text": ["training: 100%|██████████| 5625/5625 [01:40<00:00, 56.1batch/s]\n"]}
        widget = {"output_type": "display_data", "metadata": {},
                  "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "abc"},
                           "text/plain": ["training: 100%", "5625/5625"]}}
        problems = saved_outputs(_nb(("code", "fit(model, x, y)", [bar])))
        assert problems and "progress bar" in problems[0]
        assert "progress bar" in saved_outputs(_nb(("code", "x", [widget])))[0]
        nb = _nb(("code", "1 + 1"))
        assert saved_outputs(nb) == []
        nb["metadata"]["widgets"] = {}
        assert saved_outputs(nb)

    def test_noisy_calls(self):
        assert noisy_calls("history = cnn_lib.fit(model, x, y, epochs=1)")
        assert noisy_calls("x = load_mnist()\n")
        assert noisy_calls("fit(model, x, y, progress=True)")
        assert noisy_calls("fit(model, x, y, **settings)")
        assert noisy_calls("%matplotlib inline\nh = fit(m, x, y,\n        epochs=2)") != []
        assert noisy_calls("h = fit(model, x, y,\n        progress=False)") == []
        assert noisy_calls("x = cnn_lib.load_mnist(normalize=False, progress=False)") == []
        assert noisy_calls("model.predict(x)  # fit( in a comment") == []

    def test_progress_bars_in_a_page(self):
        state = ('<script type="application/vnd.jupyter.widget-state+json">{"state": {"a": '
                 '{"model_name": "HBoxModel"}, "b": {"model_name": "FloatProgressModel"}, '
                 '"c": {"model_name": "HTMLModel", "state": {"value": "training: 100%"}}}}</script>')
        assert len(progress_bar_traces(state)) == 2
        assert progress_bar_traces("<pre>12%|█▏        | 700/5625 [00:12<01:27, 56.30it/s]</pre>")
        assert progress_bar_traces("<p>training takes 1.2 s per epoch, 98.9% accuracy</p>") == []
        assert html_problems('<p>{glue:text}`x``</p>')
        assert html_problems(state)
        assert html_problems("<p>all fine: 3 epochs, 98.9%</p>") == []

    def test_typed_numbers(self):
        found = [n for n, _ in typed_numbers(
            "The report needed about 80 minutes per epoch; we reach 99.2% and are 150× faster, "
            "about 16 times less, in 1.5 s and 12.5 ms.")]
        assert found == ["80 minutes", "99.2 %", "150 ×", "16 times", "1.5 s", "12.5 ms"]

    def test_typed_numbers_leaves_sizes_glue_math_and_code(self):
        md = ("A 28 × 28 image, 8 × 20 × 20 = 3200 calls, 5 × 5 filters, 2 × 50,000 images, "
              "{glue:text}`acc:.2%` accuracy in {glue:text}`t:.1f` s, $99.4\\%$ in math, "
              "`12.5 ms` in code, 3 epochs, 1%, 2 s, equation (12), the year 2015, "
              "a 10 × $K$ grid, [link](page.html#12s).\n\n```\n99.9% in a fence\n```\n")
        assert typed_numbers(md) == []


# =============================================================================================
# The guards, over the book
# =============================================================================================

@pytest.mark.parametrize("path", _notebooks(), ids=_rel)
def test_glue_roles_are_well_formed(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems = [f"cell {i}: {p}" for i, md in _markdown_cells(nb) for p in malformed_glue_roles(md)]
    assert not problems, f"{_rel(path)}: malformed glue roles (the page would show them raw):\n" + "\n".join(problems)


@pytest.mark.parametrize("path", _notebooks(), ids=_rel)
def test_backticks_are_balanced(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems = [f"cell {i}: {p}" for i, md in _markdown_cells(nb) for p in unbalanced_backticks(md)]
    assert not problems, f"{_rel(path)}: unmatched backticks in Markdown:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", _notebooks(), ids=_rel)
def test_no_saved_outputs_or_progress_bars(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems = saved_outputs(nb)
    problems += [f"cell {i}: {p}" for i, cell in _code_cells(nb) for p in noisy_calls("".join(cell["source"]))]
    assert not problems, f"{_rel(path)}:\n" + "\n".join(problems)


def test_trained_model_is_silent_by_default():
    """The chapters' trained networks come from zoo.trained_model: training on a cold cache
    must not leave a progress bar in the page."""
    import inspect

    from cnn_lib.teaching import zoo

    assert inspect.signature(zoo.trained_model).parameters["progress"].default is False


@pytest.mark.parametrize("path", _notebooks(), ids=_rel)
def test_computed_numbers_are_glued(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    stem = path.stem
    found = [(number, f"cell {i}: {number!r} in “…{context}…”")
             for i, md in _markdown_cells(nb) for number, context in typed_numbers(md)
             if (stem, number) not in ALLOWED_TYPED]
    problems = [text for number, text in found if (stem, number) not in PENDING_TYPED]
    pending = [text for number, text in found if (stem, number) in PENDING_TYPED]
    if pending and not problems:
        pytest.xfail(f"{_rel(path)}: typed results left to their chapter's owner (PENDING_TYPED): {pending}")
    assert not problems, (
        f"{_rel(path)}: numbers typed into the prose; glue them from the cell that computes them "
        "({glue:text}`key:fmt`), or, for a constant that is not a result, add it to ALLOWED_TYPED "
        "with its reason:\n" + "\n".join(problems)
    )


def test_the_allowlist_has_no_stale_entries():
    present = {(p.stem, n) for p in _notebooks()
               for _, md in _markdown_cells(json.loads(p.read_text(encoding="utf-8")))
               for n, _ in typed_numbers(md)}
    stale = sorted((set(ALLOWED_TYPED) | set(PENDING_TYPED)) - present)
    assert not stale, f"ALLOWED_TYPED / PENDING_TYPED list numbers no longer in the book: {stale}"


# ----------------------------------------------------------------------------- the built book
def html_problems(html):
    """Raw glue roles and progress-bar traces in a built page."""
    problems = []
    for m in re.finditer(r"\{glue(?::[a-z]+)?\}", html):
        problems.append(f"raw glue role: {html[m.start():m.start() + 60]!r}")
    problems += [f"progress bar: {t!r}" for t in progress_bar_traces(html)]
    return problems


def _built_pages():
    if not HTML_DIR.is_dir():
        return None
    pages = sorted(p for p in HTML_DIR.rglob("*.html")
                   if not any(part.startswith(("_", ".")) or part == "reports"
                              for part in p.relative_to(HTML_DIR).parts))
    return pages or None


@pytest.fixture(scope="module")
def built_pages():
    pages = _built_pages()
    if pages is None:
        reason = f"no built book in {HTML_DIR} (build it with `jupyter-book build .`, or set CNN_BOOK_HTML)"
        if IN_CI:
            pytest.fail(f"the built-page guards cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return pages


def test_built_pages_have_no_raw_glue_or_progress_bars(built_pages):
    problems = []
    for page in built_pages:
        for p in html_problems(page.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{page.relative_to(HTML_DIR).as_posix()}: {p}")
    assert not problems, "built pages show raw glue roles or progress bars:\n" + "\n".join(problems)
