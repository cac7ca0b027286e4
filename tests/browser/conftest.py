"""Browser tests of the *built* book: Playwright (Python) driving Debian's Chromium.

They build nothing. They serve an existing build (``_build/html``, or ``$CNN_BOOK_HTML``) on
127.0.0.1, open every page of ``_toc.yml`` in headless Chromium with every request that would
leave 127.0.0.1 blocked and recorded, and check what a reader sees: no console errors, math
typeset, images loaded, widgets rendered, the stride/padding explorer and the animations working
without a kernel, internal links resolving. Screenshots of key pages go to ``screenshots/``
(``$CNN_BOOK_SCREENSHOTS``) for a person to look at.

Without a build, without Chromium (``/usr/bin/chromium``, or ``$CNN_BOOK_CHROMIUM``) or without
the ``playwright`` package (``pip install -r requirements-dev.txt``) they are skipped with the
reason, except in CI (``CI=true``), where that is a failure. Playwright never downloads a
browser here: ``playwright install`` is not needed and must not be run.
"""

from __future__ import annotations

import functools
import http.server
import threading

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, HTML_DIR, IN_CI, Visitor, unavailable

# ---------------------------------------------------------------------------------------------
# Fixtures: the site, a local server, the browser
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def site():
    """The built book, checked to be present and fresh; skip (fail in CI) otherwise."""
    reason = unavailable()
    if reason:
        if IN_CI:
            pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return HTML_DIR


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="session")
def base_url(site):
    """``http://127.0.0.1:PORT/`` serving the build, for the whole session."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="book-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def visitor(browser, base_url):
    visitor = Visitor(browser, base_url)
    yield visitor
    visitor.close()
