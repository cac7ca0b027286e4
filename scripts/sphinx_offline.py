"""A small Sphinx extension that keeps the built book free of view-time network requests.

Loaded by ``_config.yml`` (``sphinx.local_extensions``). MathJax and the Jupyter widgets manager
are served from the build (``book/_static_offline``, see ``scripts/fetch_offline_assets.py``);
this extension handles what configuration alone cannot:

* Matplotlib's ``to_jshtml`` animations start with a ``<link>`` to Font Awesome 4 on a CDN, for
  the icons of their buttons. The theme already loads Font Awesome 6 from the build, which draws
  those same ``fa fa-play`` icons, so the link is removed.
* Any other raw HTML output or image that would fetch a script, stylesheet, image or frame from
  the network is reported as a build warning (so ``jupyter-book build -W`` fails) with its page.
* Inline ``<script>`` blocks that two extensions add twice to every page (``const THEBE_JS_URL``
  declared twice is a JavaScript error in the console) are de-duplicated.
* The Jupyter widgets manager typesets widget labels with the MathJax 2 call
  ``MathJax.Hub.Queue``; this book runs MathJax 3, so ``mathjax2-compat.js`` provides that one
  call (without it, every widget label throws an error in the console).
* The offline widgets manager renders the standard ipywidgets only. A saved widget from another
  package (say an ``ipycanvas`` drawing canvas, useless without a kernel anyway) would show an
  error box and log errors; it is replaced in the page's saved widget state by a short note
  saying that this widget needs a running kernel (Jupyter, Binder or Colab).
"""

from __future__ import annotations

import html
import json
import re
import uuid

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: The Font Awesome 4 stylesheet that matplotlib's HTML animation writer links from a CDN.
FONT_AWESOME_CDN_LINK = re.compile(
    r"""<link\b[^>]*\bhref=["']https?://[^"']*font-awesome[^"']*\.css["'][^>]*>\s*""", re.I
)
#: Tags that make the browser fetch a resource by themselves (links <a href> do not).
EXTERNAL_RESOURCE = re.compile(
    r"""<(script|link|img|iframe|source|video|audio|embed)\b[^>]*?\b(?:src|href)\s*=\s*["']"""
    r"""((?:https?:)?//[^"']+)["']""",
    re.I,
)


WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
#: The widget modules that the offline manager (jupyter-widgets/embed.js) can render.
BUILTIN_WIDGET_MODULES = {"@jupyter-widgets/base", "@jupyter-widgets/controls",
                          "@jupyter-widgets/output"}
_CONTROLS, _BASE = "@jupyter-widgets/controls", "@jupyter-widgets/base"


def _raw_html_nodes(doctree):
    for node in doctree.findall(nodes.raw):
        if "html" in node.get("format", "").split():
            yield node


def strip_and_check(app, doctree, docname):
    """Remove the animations' Font Awesome CDN link; warn about any other remote resource."""
    for node in list(_raw_html_nodes(doctree)):
        text = node.astext()
        cleaned = FONT_AWESOME_CDN_LINK.sub("", text)
        if cleaned != text:
            node[:] = [nodes.Text(cleaned)]
            node.rawsource = cleaned
        for match in EXTERNAL_RESOURCE.finditer(cleaned):
            logger.warning(
                "%s: an output loads <%s> from %s at view time; the book must work offline "
                "(serve the file from the build, see book/_static_offline/)",
                docname, match.group(1).lower(), match.group(2),
                location=(docname, node.line), type="offline", subtype="remote",
            )
    for node in doctree.findall(nodes.image):
        uri = node.get("uri", "")
        if re.match(r"(?:https?:)?//", uri):
            logger.warning(
                "%s: image %s is loaded from the network at view time; put the file in the "
                "repository (or make it with code) so the book works offline",
                docname, uri, location=node, type="offline", subtype="remote",
            )


def dedupe_scripts(app, pagename, templatename, context, doctree):
    """Drop exact duplicates (same file or same inline body, same attributes) from a page."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = (getattr(js, "filename", js) or "", tuple(sorted(
            (k, str(v)) for k, v in getattr(js, "attributes", {}).items())))
        if key in seen:
            continue
        seen.add(key)
        unique.append(js)
    if len(unique) != len(scripts):
        context["script_files"] = unique


def _needs_kernel_note(module: str) -> str:
    return (
        '<div class="cnn-widget-needs-kernel" style="border: 1px dashed #888; padding: 0.5em 1em;'
        ' border-radius: 4px; background: #f6f6f6; color: #333;">'
        f"This interactive widget (<code>{html.escape(module)}</code>) needs a running Python "
        "kernel: open this notebook in Jupyter, or with the Binder or Colab launch buttons at "
        "the top of the page.</div>"
    )


def replace_foreign_widgets(state: dict) -> list[str]:
    """Replace, in a saved widget state (the JSON of WIDGET_STATE_MIME), every model from a
    module the offline manager cannot load by an HTML note; return the modules replaced."""
    models = state.get("state", {})
    replaced = []
    for model_id, model in list(models.items()):
        module = model.get("model_module", "")
        if module in BUILTIN_WIDGET_MODULES:
            continue
        replaced.append(module)
        layout = model.get("state", {}).get("layout")
        style_id = uuid.uuid4().hex
        models[style_id] = {
            "model_name": "HTMLStyleModel", "model_module": _CONTROLS,
            "model_module_version": "2.0.0",
            "state": {"_model_name": "HTMLStyleModel", "_model_module": _CONTROLS,
                      "_model_module_version": "2.0.0", "_view_name": "StyleView",
                      "_view_module": _BASE, "_view_module_version": "2.0.0",
                      "background": None, "description_width": "", "font_size": None,
                      "text_color": None},
        }
        note = {"_model_name": "HTMLModel", "_model_module": _CONTROLS,
                "_model_module_version": "2.0.0", "_view_name": "HTMLView",
                "_view_module": _CONTROLS, "_view_module_version": "2.0.0",
                "_dom_classes": [], "description": "", "description_allow_html": False,
                "placeholder": "", "tabbable": None, "tooltip": None,
                "style": f"IPY_MODEL_{style_id}", "value": _needs_kernel_note(module)}
        if isinstance(layout, str) and layout.removeprefix("IPY_MODEL_") in models:
            note["layout"] = layout
        models[model_id] = {"model_name": "HTMLModel", "model_module": _CONTROLS,
                            "model_module_version": "2.0.0", "state": note}
    return replaced


def offline_widget_state(app, pagename, templatename, context, doctree):
    """Apply replace_foreign_widgets to the page's saved widget state, if any."""
    scripts = context.get("script_files") or []
    for index, js in enumerate(scripts):
        attributes = getattr(js, "attributes", {})
        if attributes.get("type") != WIDGET_STATE_MIME or "body" not in attributes:
            continue
        state = json.loads(attributes["body"])
        replaced = replace_foreign_widgets(state)
        if replaced:
            logger.info("[sphinx_offline] %s: widgets that need a kernel shown as a note: %s",
                        pagename, ", ".join(sorted(set(replaced))))
            body = json.dumps(state).replace("</script>", r"<\/script>")
            new_attributes = {k: v for k, v in attributes.items() if k != "body"}
            scripts = list(scripts)
            scripts[index] = type(js)(js.filename, priority=js.priority, body=body,
                                      **new_attributes)
            context["script_files"] = scripts


def setup(app):
    # Deferred like MathJax and after it (priority 500): runs once the MathJax 3 global exists.
    app.add_js_file("mathjax2-compat.js", priority=510, defer="defer")
    app.connect("doctree-resolved", strip_and_check)
    # After the themes and extensions have added their scripts to the page.
    app.connect("html-page-context", dedupe_scripts, priority=900)
    app.connect("html-page-context", offline_widget_state, priority=901)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
