"""What a reader does in the built book, offline: search, launch and download buttons, the
bibliography, dark mode, the stride/padding explorer and the animations. Screenshots of key
pages are written to ``screenshots/`` for a person to look at."""

from __future__ import annotations

import re

import pytest
from browser_support import (
    BOOK_ROOT,
    HTML_DIR,
    SCREENSHOTS,
    built_pages_containing,
    local_path,
    toc_pages,
    untolerated,
)

ROOT_PAGE = toc_pages()[0]

#: The works the book must cite (sphinxcontrib-bibtex renders them in its bibliography).
REQUIRED_REFERENCES = {
    "Goodfellow et al., Deep Learning": r"Goodfellow.{0,400}Deep Learning",
    "LeCun et al. 1998": r"LeCun.{0,400}Gradient-Based Learning Applied to Document Recognition",
    "Dumoulin & Visin": r"Dumoulin.{0,400}guide to convolution arithmetic",
    "the original Numpy-CNN code": r"Escontrela.{0,400}Numpy-CNN",
}


def _config():
    import yaml

    return yaml.safe_load((BOOK_ROOT / "_config.yml").read_text(encoding="utf-8"))


def _shot(page, name, element=None):
    """Save a screenshot of the viewport, or of one element (cut from the full page, so that
    the theme's sticky header does not cover it)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if element is None:
        page.screenshot(path=str(path))
    else:
        box = element.evaluate("""el => { const r = el.getBoundingClientRect();
            return {x: r.left + window.scrollX, y: r.top + window.scrollY,
                    width: r.width, height: r.height}; }""")
        page.evaluate("() => window.scrollTo(0, 0)")  # sticky header back at the page's top
        page.screenshot(path=str(path), full_page=True, clip=box)
    return path


def _assert_clean(report, what):
    errors = untolerated(report.console_errors) + report.page_errors
    assert not errors, f"{what}: console errors: {errors}"
    assert not report.external_requests, f"{what}: network requests: {report.external_requests}"


# ---------------------------------------------------------------------------------------------
# Site-wide features
# ---------------------------------------------------------------------------------------------

def test_site_root_opens_the_first_page(visitor):
    page, report = visitor.open("")
    try:
        assert page.url.endswith(ROOT_PAGE), f"/ leads to {page.url}, not {ROOT_PAGE}"
        _assert_clean(report, "index.html")
    finally:
        page.close()


def test_search_finds_the_first_page(visitor):
    """Sphinx's search (the header's search box) works offline from searchindex.js."""
    page, _ = visitor.open(ROOT_PAGE)
    words = re.findall(r"[A-Za-z]{5,}", page.locator("h1").first.inner_text())
    page.close()
    assert words, "the first page has no heading to search for"
    query = max(words, key=len)
    page, report = visitor.open(f"search.html?q={query}")
    try:
        results = page.locator("#search-results li")
        results.first.wait_for(timeout=15_000)
        hrefs = [a.get_attribute("href") or "" for a in page.locator("#search-results li a").all()]
        assert any(ROOT_PAGE in href for href in hrefs), (
            f"searching {query!r} did not find {ROOT_PAGE}: {hrefs[:10]}")
        _assert_clean(report, "search.html")
    finally:
        page.close()


def test_logo_and_favicon(visitor, base_url):
    dom = visitor.report(ROOT_PAGE).dom
    assert dom["icons"], "no <link rel=icon>: set html.favicon in _config.yml"
    for href in dom["icons"]:
        target = local_path(href, base_url)
        assert target and target[0].is_file(), f"favicon {href} is not in the build"
    logos = [img for img in dom["images"] if "logo" in img["src"].rsplit("/", 1)[-1]]
    assert logos and all(img["ok"] for img in logos), f"the logo did not load: {logos}"


def test_launch_repository_and_download_buttons(visitor, base_url):
    """Notebook pages link to Binder, Colab, the repository, and the .ipynb to download."""
    source = BOOK_ROOT / ROOT_PAGE.replace(".html", ".ipynb")
    if not source.is_file():
        pytest.skip(f"{ROOT_PAGE} is not a notebook")
    config = _config()
    repo_url = config["repository"]["url"].rstrip("/")
    owner_repo = "/".join(repo_url.split("/")[-2:])
    branch = config["repository"].get("branch", "main")
    notebook = ROOT_PAGE.replace(".html", ".ipynb")
    links = visitor.report(ROOT_PAGE).dom["links"]
    binder = f"https://mybinder.org/v2/gh/{owner_repo}/{branch}?urlpath=lab/tree/{notebook}"
    colab = f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/{notebook}"
    launch = [u for u in links if "binder" in u or "colab" in u]
    assert binder in links, f"no Binder button {binder}; launch links: {launch}"
    assert colab in links, f"no Colab button {colab}; launch links: {launch}"
    assert repo_url in links, f"no repository button linking to {repo_url}"
    downloads = [u for u in links if u.endswith(".ipynb") and local_path(u, base_url)]
    assert downloads, "no download button for the page's .ipynb"
    for url in downloads:
        assert local_path(url, base_url)[0].is_file(), f"download link {url} is broken"


def test_bibliography_lists_the_required_works(site):
    """The works of REQUIRED_REFERENCES are cited, so the {bibliography} lists them."""
    if not (BOOK_ROOT / "book" / "references.bib").is_file():
        pytest.skip(f"{BOOK_ROOT} has no book/references.bib")
    text = " ".join(re.sub(r"<[^>]+>", " ", (HTML_DIR / p).read_text(encoding="utf-8"))
                    for p in toc_pages())
    text = re.sub(r"\s+", " ", text)
    missing = [name for name, pattern in REQUIRED_REFERENCES.items()
               if not re.search(pattern, text, re.I)]
    assert not missing, (
        f"not in the built bibliography (cite them with {{cite:p}}`key`, see "
        f"book/references.bib): {missing}")


def test_dark_mode_keeps_figures_on_white(visitor):
    """With a dark system theme the page turns dark, and figures keep a light background."""
    pages = [p for p in toc_pages() if any(i["output"] for i in visitor.report(p).dom["images"])]
    if not pages:
        pytest.skip("no page with figures")
    page, report = visitor.open(pages[0], color_scheme="dark")
    try:
        assert report.dom["theme"] == "dark", f"theme is {report.dom['theme']!r} in dark mode"
        backgrounds = page.evaluate("""() => Array.from(
            document.querySelectorAll('.cell_output img'))
            .map(img => getComputedStyle(img).backgroundColor)""")
        dark = []
        for color in backgrounds:
            r, g, b, *alpha = (float(v) for v in re.findall(r"[\d.]+", color))
            if (alpha and alpha[0] == 0) or (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255 < 0.6:
                dark.append(color)
        assert not dark, f"{pages[0]}: figures on a dark background in dark mode: {dark}"
        figure = page.locator(".cell_output img").first
        figure.scroll_into_view_if_needed()
        _shot(page, "02-figure-dark-mode")
        _assert_clean(report, f"{pages[0]} (dark)")
    finally:
        page.close()


# ---------------------------------------------------------------------------------------------
# Interactive pieces that must work without a kernel
# ---------------------------------------------------------------------------------------------

EXPLORER_PAGES = built_pages_containing("cnn-explorer")
ANIMATION_PAGES = built_pages_containing('class="animation"')


def _explorer_state(root):
    """The explorer's control values and displayed output size."""
    return root.evaluate("""root => ({
        values: Object.fromEntries(Array.from(
            root.querySelectorAll('input[type="range"][data-param]'))
            .map(el => [el.dataset.param, +el.value])),
        shown: root.querySelector('.cnn-explorer-out-size').textContent.trim(),
        attr: root.getAttribute('data-out-size'),
        message: (root.querySelector('.cnn-explorer-message') || {}).hidden === false,
    })""")


def _expected_out_size(values):
    """What cnn_lib computes for these controls, as the explorer should display it."""
    from cnn_lib.functional import conv_output_size

    try:
        return str(conv_output_size(values["n"], values["k"], values.get("s", 1),
                                    values.get("p", 0), values.get("d", 1)))
    except ValueError:
        return "\u2014"  # the explorer's dash for an impossible setting


@pytest.mark.skipif(not EXPLORER_PAGES, reason=(
    "the stride/padding explorer (Part II, cnn_lib.teaching.widgets.conv.explorer_html: "
    "div.cnn-explorer) is not in the build yet"))
def test_stride_padding_explorer_responds_to_its_controls(visitor):
    """Moving the stride and padding sliders (keyboard, as a reader would) changes the output
    size shown, to the value cnn_lib.functional.conv_output_size gives; no kernel involved.
    The contract (classes, data-param names) is explorer_html's docstring."""
    page, report = visitor.open(EXPLORER_PAGES[0])
    try:
        root = page.locator("div.cnn-explorer").first
        page.wait_for_function("el => el.dataset.ready === '1'", arg=root.element_handle(),
                               timeout=10_000)
        root.scroll_into_view_if_needed()
        _shot(page, "04-explorer-before", element=root)
        start = _explorer_state(root)
        assert start["shown"] == _expected_out_size(start["values"]), start
        moves = []
        for param in ("p", "s"):  # padding (at the default stride), then stride
            control = root.locator(f'input[type="range"][data-param="{param}"]')
            assert control.count() == 1, f"no input[type=range][data-param={param}]"
            before = _explorer_state(root)
            at_max = control.evaluate("el => el.value === el.max")
            control.focus()
            page.keyboard.press("Home" if at_max else "End")
            page.wait_for_function(
                "([el, text]) => el.querySelector('.cnn-explorer-out-size').textContent.trim()"
                " !== text", arg=[root.element_handle(), before["shown"]], timeout=5_000)
            after = _explorer_state(root)
            assert after["values"][param] != before["values"][param], f"{param} did not move"
            assert after["shown"] == _expected_out_size(after["values"]), (param, after)
            if after["shown"].isdigit():
                assert after["attr"] == after["shown"] and not after["message"], after
            else:
                assert after["message"], f"impossible setting without a message: {after}"
            moves.append((param, before["shown"], after["shown"]))
        _shot(page, "05-explorer-after", element=root)
        print("explorer output size:", moves)
        _assert_clean(report, EXPLORER_PAGES[0])
    finally:
        page.close()


@pytest.mark.skipif(not ANIMATION_PAGES, reason="no page of the build has a to_jshtml animation")
@pytest.mark.parametrize("page_path", ANIMATION_PAGES)
def test_animations_play(visitor, page_path):
    page, report = visitor.open(page_path)
    try:
        players = page.locator("div.animation")
        for index in range(players.count()):
            player = players.nth(index)
            player.scroll_into_view_if_needed()
            image, slider = player.locator("img").first, player.locator("input.anim-slider")
            frames = int(slider.get_attribute("max") or 0)
            if frames < 1:
                continue  # a single frame has nothing to play
            src, value = image.get_attribute("src"), slider.input_value()
            player.locator('button[title="Play"]').click()
            page.wait_for_function("([el, v]) => el.value !== v",
                                   arg=[slider.element_handle(), value], timeout=10_000)
            player.locator('button[title="Pause"]').click()
            assert image.get_attribute("src") != src, (
                f"{page_path}: animation {index} moved its slider but not its frame")
            if index == 0 and page_path == ANIMATION_PAGES[0]:
                _shot(page, "06-animation-playing", element=player)
        _assert_clean(report, page_path)
    finally:
        page.close()


# ---------------------------------------------------------------------------------------------
# Screenshots for a person
# ---------------------------------------------------------------------------------------------

def test_screenshots_of_key_pages(visitor):
    """Writes screenshots/*.png: the first page, the page with the most math, widgets."""
    written = []
    page, _ = visitor.open(ROOT_PAGE)
    written.append(_shot(page, "01-first-page"))
    page.close()
    reports = {p: visitor.report(p).dom for p in toc_pages()}
    most_math = max(reports, key=lambda p: reports[p]["math"])
    if reports[most_math]["math"]:
        page, _ = visitor.open(most_math)
        first_display = page.locator("div.math").first
        if first_display.count():
            first_display.scroll_into_view_if_needed()
        written.append(_shot(page, "03-math-" + most_math.replace("/", "-")[:-5]))
        page.close()
    with_widgets = [p for p in toc_pages() if reports[p]["widget_views"]]
    if with_widgets:
        page, _ = visitor.open(with_widgets[0])
        page.locator(".widget-subarea").first.scroll_into_view_if_needed()
        written.append(_shot(page, "07-widgets-" + with_widgets[0].replace("/", "-")[:-5]))
        page.close()
    with_bibliography = built_pages_containing('class="citation-list"')
    if with_bibliography:
        page, _ = visitor.open(with_bibliography[0])
        written.append(_shot(page, "08-references", element=page.locator(
            "section:has(> div.docutils.container > div.citation-list)").first))
        page.close()
    assert all(path.stat().st_size > 1000 for path in written)
    print("screenshots:", ", ".join(str(p) for p in written))


DRAW_PAGES = built_pages_containing('class="cnn-draw"')


def _model_from_page(root):
    """A Sequential with the weights the page embeds (cnn_lib.teaching.widgets.draw.network_spec)."""
    import base64
    import json

    import numpy as np

    from cnn_lib.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
    from cnn_lib.model import Sequential

    spec = json.loads(root.evaluate("r => r.querySelector('script.cnn-draw-net').textContent"))
    layers = []
    for s in spec:
        if s["type"] in ("conv", "dense"):
            w = np.frombuffer(base64.b64decode(s["w"]), dtype="<f4").reshape(s["shape"])
            b = np.frombuffer(base64.b64decode(s["b"]), dtype="<f4")
            layer = (Conv2D(w.shape[1], w.shape[0], w.shape[2:], s["stride"], s["padding"])
                     if s["type"] == "conv" else Dense(*w.shape))
            layer.params["w"][...], layer.params["b"][...] = w, b
        else:
            layer = {"relu": ReLU, "flatten": Flatten}.get(s["type"])
            layer = layer() if layer else MaxPool2D(s["size"], s["stride"])
        layers.append(layer)
    return Sequential(*layers)


@pytest.mark.skipif(not DRAW_PAGES, reason="no page of the build has the draw-a-digit explorer")
def test_draw_a_digit_classifies_what_the_mouse_draws(visitor):
    """Draw a '1' and then, after Clear, a '0' with the mouse on the static page (no kernel):
    the verdict and the ten bars must be what cnn_lib's Python pipeline
    (canvas_to_ink -> preprocess -> the network) gives for the same canvas pixels and the
    weights the page embeds."""
    import math

    import numpy as np

    from cnn_lib.teaching.widgets import draw

    page, report = visitor.open(DRAW_PAGES[0])
    try:
        root = page.locator("div.cnn-draw").first
        page.wait_for_function("el => el.dataset.ready === '1'", arg=root.element_handle(), timeout=10_000)
        root.scroll_into_view_if_needed()
        model = _model_from_page(root)
        canvas = root.locator("canvas.cnn-draw-canvas")
        msg = root.locator(".cnn-draw-msg")
        assert "Draw a digit" in msg.text_content()
        shapes = {1: [(0.5, 0.15), (0.5, 0.85)],
                  0: [(0.5 + 0.22 * math.sin(t), 0.5 - 0.33 * math.cos(t))
                      for t in np.linspace(0, 2 * math.pi, 40)]}
        for digit, points in shapes.items():
            root.locator("button.cnn-draw-clear").click()
            box = canvas.bounding_box()
            xy = [(box["x"] + u * box["width"], box["y"] + v * box["height"]) for u, v in points]
            page.mouse.move(*xy[0])
            page.mouse.down()
            for p in xy[1:]:
                page.mouse.move(*p, steps=3)
            page.mouse.up()
            page.wait_for_function("el => el.textContent.startsWith('The network reads')",
                                   arg=msg.element_handle(), timeout=5_000)
            page.wait_for_timeout(200)      # the last animation frame
            shown = root.evaluate("""r => ({
                msg: r.querySelector('.cnn-draw-msg').textContent,
                bars: Array.from(r.querySelectorAll('.cnn-draw-bar')).map(b => parseFloat(b.style.height)),
                pixels: Array.from(r.querySelector('canvas.cnn-draw-canvas').getContext('2d')
                    .getImageData(0, 0, r.querySelector('canvas.cnn-draw-canvas').width,
                                  r.querySelector('canvas.cnn-draw-canvas').height).data),
                size: r.querySelector('canvas.cnn-draw-canvas').width})""")
            rgba = np.array(shown["pixels"], dtype=np.uint8).reshape(shown["size"], shown["size"], 4)
            py = draw.predict_drawing(model, draw.canvas_to_ink(rgba))
            assert f"reads a {py['label']} " in shown["msg"], (shown["msg"], py["probs"])
            assert py["label"] == digit, (digit, py["probs"])
            assert np.allclose(shown["bars"], 100 * np.asarray(py["probs"]), atol=0.06), (shown["bars"], py["probs"])
            if digit == 0:
                _shot(page, "09-draw-a-digit", element=root)
        _assert_clean(report, DRAW_PAGES[0])
    finally:
        page.close()
