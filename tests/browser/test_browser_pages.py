"""Every page of the table of contents, opened in Chromium from the local build, offline.

Each page is visited once (``visitor.report``); the tests below read what that visit recorded.
"""

from __future__ import annotations

import pytest
from browser_support import (
    HTML_DIR,
    TOLERATED_CONSOLE_ERRORS,
    anchors_in,
    local_path,
    toc_pages,
    untolerated,
)

PAGES = toc_pages()


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_without_console_errors(visitor, page):
    report = visitor.report(page)
    # A blocked request to the network also logs "Failed to load resource": that is reported
    # by test_no_request_leaves_localhost, not twice.
    errors = [e for e in untolerated(report.console_errors)
              if not any(url in e for url in report.external_requests)]
    errors += [f"uncaught: {e}" for e in report.page_errors]
    assert not errors, (
        f"{page}: errors in the browser console (tolerated ones are listed, with their reason, "
        f"in TOLERATED_CONSOLE_ERRORS: {[p for p, _ in TOLERATED_CONSOLE_ERRORS]}):\n  "
        + "\n  ".join(errors))


@pytest.mark.parametrize("page", PAGES)
def test_no_request_leaves_localhost(visitor, page):
    report = visitor.report(page)
    assert not report.external_requests, (
        f"{page} requested files from the network (the book must work offline; serve them from "
        f"the build, see book/_static_offline/ and scripts/sphinx_offline.py):\n  "
        + "\n  ".join(sorted(set(report.external_requests))))


@pytest.mark.parametrize("page", PAGES)
def test_every_local_request_succeeds(visitor, page):
    report = visitor.report(page)
    assert not report.failed_requests, (
        f"{page}: requests to the build failed:\n  " + "\n  ".join(report.failed_requests))


@pytest.mark.parametrize("page", PAGES)
def test_math_is_typeset(visitor, page):
    dom = visitor.report(page).dom
    assert not dom["math_untypeset"], (
        f"{page}: {len(dom['math_untypeset'])} of {dom['math']} math elements were not typeset "
        f"by MathJax, e.g. {dom['math_untypeset'][:3]}")
    assert not dom["math_errors"], f"{page}: MathJax errors: {dom['math_errors']}"


@pytest.mark.parametrize("page", PAGES)
def test_every_image_loads(visitor, page):
    dom = visitor.report(page).dom
    broken = [img["src"][:120] for img in dom["images"] if not img["ok"]]
    assert not broken, f"{page}: images that did not load: {broken}"


@pytest.mark.parametrize("page", PAGES)
def test_figures_have_an_opaque_background(visitor, page, base_url):
    """Matplotlib figures are saved on white, so they stay legible in dark mode too."""
    from PIL import Image

    transparent = []
    for img in visitor.report(page).dom["images"]:
        target = local_path(img["src"], base_url)
        if not img["output"] or target is None or target[0].suffix.lower() != ".png":
            continue
        with Image.open(target[0]) as image:
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                low, _ = image.convert("RGBA").getchannel("A").getextrema()
                if low < 255:
                    transparent.append(target[0].name)
    assert not transparent, (
        f"{page}: figures with transparent pixels (unreadable on a dark background; save them "
        f"with a white facecolor): {transparent}")


@pytest.mark.parametrize("page", PAGES)
def test_widgets_render(visitor, page):
    dom = visitor.report(page).dom
    assert dom["widgets_rendered"] >= dom["widget_views"], (
        f"{page}: only {dom['widgets_rendered']} of {dom['widget_views']} saved widgets were "
        f"rendered by the widgets manager (_static/jupyter-widgets/embed.js)")


@pytest.mark.parametrize("page", PAGES)
def test_internal_links_resolve(visitor, page, base_url):
    broken = []
    for url in sorted(set(visitor.report(page).dom["links"])):
        target = local_path(url, base_url)
        if target is None:
            continue  # external links are not followed (no network here)
        path, fragment = target
        if not path.is_file():
            broken.append(f"{url} (no file {path.relative_to(HTML_DIR)})")
        elif fragment and path.suffix == ".html" and fragment not in anchors_in(path):
            broken.append(f"{url} (no id {fragment!r} in {path.relative_to(HTML_DIR)})")
    assert not broken, f"{page}: broken internal links:\n  " + "\n  ".join(broken)
