#!/usr/bin/env python3
"""Vendor the JavaScript that the built book needs at view time, so that it works offline.

The built pages typeset math with MathJax 3 and render saved ipywidgets with the Jupyter
widgets HTML manager. By default Sphinx and myst-nb load both from CDNs; this book serves
them from its own build instead (see ``_config.yml``: ``mathjax_path`` and
``nb_ipywidgets_js``). The files live, committed, in ``book/_static_offline/`` and Sphinx copies
them into ``_build/html/_static/``. Building the book therefore needs neither npm nor a network.

This script is only for *updating* those files: it downloads the pinned npm packages with
``npm pack`` (npm checks each tarball against the registry's integrity hash), and copies the
subset the pages use:

* ``mathjax@3`` (Apache-2.0): ``es5/tex-mml-chtml.js`` (TeX and MathML input, CommonHTML
  output, menu, assistive MathML), the TeX extensions that ``autoload`` fetches on first use
  (``\\color``, ``\\cancel``, ``\\bbox``, ...), and the CommonHTML woff2 fonts. Not copied: the
  SVG output, the speech rule engine (``sre``) and the ``a11y/explorer`` that the MathJax menu
  can switch on (offline, those menu items fail to load; everything else works).
* ``@jupyter-widgets/html-manager@1`` (BSD-3-Clause): ``dist/embed.js``, the standalone widget
  manager for the standard ipywidgets 8 controls (no require.js needed), and the woff2 files of
  the Font Awesome icons it bundles (SIL OFL 1.1). Widgets from third-party packages would need
  ``embed-amd.js`` + require.js and their own bundles; the book uses none.

Usage, from the repository root (needs ``npm`` and the npm registry)::

    python scripts/fetch_offline_assets.py           # refresh book/_static_offline/
    python scripts/fetch_offline_assets.py --check   # exit 1 if the committed files differ

After changing a version here, rebuild the book and run ``python -m pytest tests/browser``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "book" / "_static_offline"

#: npm package -> list of (path inside the package, path below DEST). A path ending in "/"
#: copies every file of that folder whose name ends with one of the given suffixes.
PACKAGES = {
    "mathjax@3.2.2": [
        ("LICENSE", "mathjax/LICENSE"),
        ("es5/tex-mml-chtml.js", "mathjax/tex-mml-chtml.js"),
        ("es5/input/tex/extensions/", "mathjax/input/tex/extensions/"),
        ("es5/output/chtml/fonts/woff-v2/", "mathjax/output/chtml/fonts/woff-v2/"),
    ],
    "@jupyter-widgets/html-manager@1.0.15": [
        ("dist/embed.js", "jupyter-widgets/embed.js"),
        ("dist/embed.js.LICENSE.txt", "jupyter-widgets/embed.js.LICENSE.txt"),
        ("dist/", "jupyter-widgets/"),  # the Font Awesome fonts, woff2 only (see SUFFIXES)
    ],
}
#: Suffixes copied from folder entries ("dist/" holds large .svg/.eot/.ttf fallbacks that
#: no current browser requests when a woff2 is offered first).
SUFFIXES = {"mathjax": (".js", ".woff"), "@jupyter-widgets/html-manager": (".woff2",)}

LICENSE_NOTE = """\
Third-party files served by the built book (copied by scripts/fetch_offline_assets.py)
======================================================================================

mathjax/          MathJax {mathjax}, https://www.mathjax.org/
                  License: Apache License 2.0 (mathjax/LICENSE).
jupyter-widgets/  @jupyter-widgets/html-manager {widgets}, https://github.com/jupyter-widgets/ipywidgets
                  License: BSD 3-Clause, Copyright (c) 2015 Project Jupyter Contributors
                  (text below). embed.js bundles jQuery, jQuery UI and other libraries under
                  the MIT license (jupyter-widgets/embed.js.LICENSE.txt) and Font Awesome Free
                  (fonts: SIL OFL 1.1, CSS: MIT; https://fontawesome.com/license/free).

BSD 3-Clause License

Copyright (c) 2015 Project Jupyter Contributors
All rights reserved.

Redistribution and use in source and binary forms, with or without modification, are
permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of
   conditions and the following disclaimer.
2. Redistributions in binary form must reproduce the above copyright notice, this list of
   conditions and the following disclaimer in the documentation and/or other materials
   provided with the distribution.
3. Neither the name of the copyright holder nor the names of its contributors may be used
   to endorse or promote products derived from this software without specific prior written
   permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS
OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF
MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE
COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL,
EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE
GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND
ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING
NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED
OF THE POSSIBILITY OF SUCH DAMAGE.
"""


def _pack(spec: str, workdir: Path) -> tarfile.TarFile:
    """Download ``spec`` with ``npm pack`` (integrity-checked by npm); return the tarball."""
    out = subprocess.run(
        ["npm", "pack", "--silent", "--pack-destination", str(workdir), spec],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    return tarfile.open(workdir / out)


def _files(spec: str, workdir: Path) -> dict[str, bytes]:
    """Map each destination path (below DEST) to the file's bytes, for one package."""
    name = spec.rsplit("@", 1)[0]
    suffixes = SUFFIXES[name]
    result = {}
    with _pack(spec, workdir) as tar:
        members = {m.name.removeprefix("package/"): m for m in tar.getmembers() if m.isfile()}
        for src, dst in PACKAGES[spec]:
            if src.endswith("/"):
                chosen = [p for p in members if p.startswith(src) and "/" not in p[len(src):]
                          and p.endswith(suffixes)]
                if not chosen:
                    raise SystemExit(f"{spec}: nothing matched {src}*{suffixes}")
                for path in chosen:
                    result[dst + path[len(src):]] = tar.extractfile(members[path]).read()
            else:
                if src not in members:
                    raise SystemExit(f"{spec}: {src} not found in the package")
                result[dst] = tar.extractfile(members[src]).read()
    return result


#: What this script writes below DEST (everything else there, e.g. mathjax2-compat.js, is the
#: book's own and left alone).
MANAGED = ("mathjax/", "jupyter-widgets/", "THIRD-PARTY-LICENSES.txt", "SHA256SUMS")


def _managed_files() -> list[Path]:
    if not DEST.is_dir():
        return []
    return [p for p in DEST.rglob("*") if p.is_file()
            and p.relative_to(DEST).as_posix().startswith(MANAGED)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed files instead of writing them")
    args = parser.parse_args(argv)
    if shutil.which("npm") is None:
        raise SystemExit("npm is needed to fetch the packages (it is not needed to build the book)")

    wanted: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in PACKAGES:
            wanted.update(_files(spec, Path(tmp)))
    versions = {spec.rsplit("@", 1)[0]: spec.rsplit("@", 1)[1] for spec in PACKAGES}
    wanted["THIRD-PARTY-LICENSES.txt"] = LICENSE_NOTE.format(
        mathjax=versions["mathjax"], widgets=versions["@jupyter-widgets/html-manager"]
    ).encode()
    manifest = io.StringIO()
    for path in sorted(wanted):
        manifest.write(f"{hashlib.sha256(wanted[path]).hexdigest()}  {path}\n")
    wanted["SHA256SUMS"] = manifest.getvalue().encode()

    existing = {p.relative_to(DEST).as_posix(): p.read_bytes()
                for p in _managed_files()}
    if args.check:
        differ = sorted(p for p in set(wanted) | set(existing) if wanted.get(p) != existing.get(p))
        for path in differ:
            print(f"differs: {path}")
        print("up to date" if not differ else f"{len(differ)} file(s) differ")
        return 1 if differ else 0

    for path in _managed_files():
        path.unlink()
    for path, data in wanted.items():
        target = DEST / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    total = sum(len(d) for d in wanted.values())
    print(f"wrote {len(wanted)} files, {total / 1e6:.2f} MB, to {DEST.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
