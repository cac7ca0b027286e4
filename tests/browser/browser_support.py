"""Helpers of the browser tests (see conftest.py): the pages, a visit of a page, links."""

from __future__ import annotations

import functools
import mimetypes
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
HTML_DIR = Path(os.environ.get("CNN_BOOK_HTML", ROOT / "_build" / "html")).resolve()


def _book_root() -> Path:
    """The book whose _toc.yml lists the pages: $CNN_BOOK_ROOT, else the folder holding the
    build (BOOK/_build/html), else this repository."""
    if os.environ.get("CNN_BOOK_ROOT"):
        return Path(os.environ["CNN_BOOK_ROOT"]).resolve()
    holder = HTML_DIR.parents[1]
    return holder if (holder / "_toc.yml").is_file() else ROOT


BOOK_ROOT = _book_root()
CHROMIUM = Path(os.environ.get("CNN_BOOK_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("CNN_BOOK_SCREENSHOTS", ROOT / "screenshots"))
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}

#: Flags for Chromium in a container as root, with nothing reaching out to Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: Console errors that pages may show, as (regular expression, why it is tolerated). Empty: the
#: noise of a default Jupyter Book 1 build is fixed instead. scripts/sphinx_offline.py removes
#: the duplicated `const THEBE_JS_URL` script and gives the widgets manager the MathJax 2 call it
#: makes; `html_context.default_mode: auto` (_config.yml) ends "Got invalid theme mode"; the
#: favicon is configured. Add an entry only for noise that cannot be fixed, with its reason.
TOLERATED_CONSOLE_ERRORS: list[tuple[str, str]] = []

PAGE_TIMEOUT_MS = 30_000
#: Widgets and images get this long after "load" to appear.
SETTLE_TIMEOUT_MS = 15_000

mimetypes.add_type("font/woff2", ".woff2")
mimetypes.add_type("font/woff", ".woff")
mimetypes.add_type("text/javascript", ".js")


# ---------------------------------------------------------------------------------------------
# The pages of the table of contents
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def toc_pages() -> tuple[str, ...]:
    """The HTML path of every ``_toc.yml`` entry, root first (e.g. ``book/intro.html``)."""
    from book_toc import toc_entries  # tests/book_toc.py

    pages = []
    for entry in toc_entries(BOOK_ROOT / "_toc.yml"):
        stem = re.sub(r"\.(ipynb|md)$", "", entry.strip("/"))
        pages.append(stem + ".html")
    return tuple(dict.fromkeys(pages))


def _source_of(page: str) -> Path | None:
    stem = BOOK_ROOT / page[: -len(".html")]
    for suffix in (".ipynb", ".md"):
        if stem.with_suffix(suffix).is_file():
            return stem.with_suffix(suffix)
    return None


def unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return ("the Python package playwright is not installed "
                "(pip install -r requirements-dev.txt; never run `playwright install`)")
    if not CHROMIUM.is_file():
        return (f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium; "
                "or set CNN_BOOK_CHROMIUM)")
    if not (HTML_DIR / "index.html").is_file():
        return (f"no built book in {HTML_DIR}: build it first with "
                "`jupyter-book build . -W --keep-going` (or set CNN_BOOK_HTML)")
    missing = [p for p in toc_pages() if not (HTML_DIR / p).is_file()]
    if missing:
        return f"the build in {HTML_DIR} lacks pages listed in _toc.yml (rebuild it): {missing}"
    stale = [p for p in toc_pages()
             if (src := _source_of(p)) and src.stat().st_mtime > (HTML_DIR / p).stat().st_mtime]
    if stale:
        return f"the build in {HTML_DIR} is older than these sources (rebuild it): {stale}"
    return None


def built_pages_containing(marker: str) -> list[str]:
    """The TOC pages whose built HTML contains ``marker`` (a class name, say)."""
    return [p for p in toc_pages()
            if (HTML_DIR / p).is_file() and marker in (HTML_DIR / p).read_text(encoding="utf-8")]


@dataclass
class PageReport:
    """What one visit of a page showed."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    dom: dict = field(default_factory=dict)


#: Runs in the page once it has settled; everything the page-level tests look at.
_WIDGET_VIEWS = 'script[type="application/vnd.jupyter.widget-view+json"]'
_COLLECT_JS = """() => {
  const views = document.querySelectorAll('%s');
  const rendered = Array.from(document.querySelectorAll('.widget-subarea'))
                        .filter(el => el.children.length > 0);
  const maths = Array.from(document.querySelectorAll('.math'));
  return {
    title: document.title,
    theme: document.documentElement.dataset.theme || '',
    math: maths.length,
    math_untypeset: maths.filter(el => !el.querySelector('mjx-container'))
                         .map(el => el.textContent.trim().slice(0, 80)),
    math_errors: Array.from(document.querySelectorAll('mjx-merror'))
                      .map(el => el.getAttribute('data-mjx-error') || el.textContent),
    widget_views: views.length,
    widgets_rendered: rendered.length,
    images: Array.from(document.images).map(img => ({
      src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0,
      output: !!img.closest('.cell_output'),
    })),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    icons: Array.from(document.querySelectorAll('link[rel~="icon"]')).map(l => l.href),
  };
}""" % _WIDGET_VIEWS


def _settle(page):
    """Wait for MathJax's first pass, the widgets and the images, as a reader would."""
    if page.locator('script[src*="mathjax"]:not([src*="mathjax2-compat"])').count():
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
            timeout=PAGE_TIMEOUT_MS)
        page.evaluate("() => MathJax.startup.promise.then(() => true)")
    for condition in (
        f"""() => document.querySelectorAll('{_WIDGET_VIEWS}').length
               <= Array.from(document.querySelectorAll('.widget-subarea'))
                       .filter(e => e.children.length).length""",
        "() => Array.from(document.images).every(img => img.complete)",
    ):
        try:
            page.wait_for_function(condition, timeout=SETTLE_TIMEOUT_MS)
        except Exception:  # noqa: BLE001 - the tests report what did not appear
            pass


class Visitor:
    """Opens pages in fresh tabs, blocking and recording every request that leaves 127.0.0.1."""

    def __init__(self, browser, base_url):
        self.browser, self.base_url = browser, base_url
        self._contexts = {}
        self._reports = {}

    def context(self, color_scheme="light"):
        if color_scheme not in self._contexts:
            self._contexts[color_scheme] = self.browser.new_context(
                viewport={"width": 1280, "height": 900}, color_scheme=color_scheme,
                service_workers="block")
        return self._contexts[color_scheme]

    def open(self, path, color_scheme="light"):
        """Open ``path`` (relative to the site); return ``(page, report)``, page left open."""
        page = self.context(color_scheme).new_page()
        report = PageReport(url=self.base_url + path)

        def route(route_):
            url = route_.request.url
            if url.startswith(self.base_url) or url.startswith(("data:", "blob:", "about:")):
                route_.continue_()
            else:
                report.external_requests.append(url)
                route_.abort()

        def on_console(message):
            if message.type == "error":
                location = message.location or {}
                report.console_errors.append(f"{message.text} [{location.get('url', '')}]")

        def on_failed(request):
            if request.url.startswith(self.base_url):
                report.failed_requests.append(f"{request.url}: {request.failure}")

        def on_response(response):
            if response.status >= 400:
                report.failed_requests.append(f"{response.url}: HTTP {response.status}")

        page.route("**/*", route)
        page.on("console", on_console)
        page.on("pageerror", lambda error: report.page_errors.append(str(error)))
        page.on("requestfailed", on_failed)
        page.on("response", on_response)
        page.goto(report.url, wait_until="load", timeout=PAGE_TIMEOUT_MS)
        _settle(page)
        report.dom = page.evaluate(_COLLECT_JS)
        return page, report

    def report(self, path):
        """The report of one visit of ``path`` (light mode), made once per session."""
        if path not in self._reports:
            page, report = self.open(path)
            page.close()
            self._reports[path] = report
        return self._reports[path]

    def close(self):
        for context in self._contexts.values():
            context.close()


def untolerated(errors):
    """The errors that no entry of TOLERATED_CONSOLE_ERRORS explains."""
    return [e for e in errors if not any(re.search(p, e) for p, _ in TOLERATED_CONSOLE_ERRORS)]


def local_path(url: str, base_url: str) -> tuple[Path, str] | None:
    """The file a local URL points to and its fragment, or None for other URLs."""
    if not url.startswith(base_url):
        return None
    parts = urlsplit(url)
    path = HTML_DIR / unquote(parts.path).lstrip("/")
    if path.is_dir():
        path = path / "index.html"
    return path, unquote(parts.fragment)


@functools.lru_cache(maxsize=None)
def anchors_in(path: Path) -> frozenset[str]:
    """Every ``id`` and ``name`` attribute of an HTML file."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return frozenset(re.findall(r"""\b(?:id|name)\s*=\s*["']([^"']+)["']""", text))
