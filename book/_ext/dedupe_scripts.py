"""Drop duplicate ``<script>`` tags from every page.

Sphinx 7 emits an inline script twice when an extension adds it after the HTML builder
started (``None`` vs ``''`` filename; fixed upstream in Sphinx 8.2 by sphinx-doc/sphinx#13402,
but jupyter-book 1.x pins ``sphinx~=7.0``). sphinx-thebe's inline ``const THEBE_JS_URL = ...``
is such a script, so every page logged "Identifier 'THEBE_JS_URL' has already been declared".
"""

from __future__ import annotations

from typing import Any


def _script_key(js: Any) -> tuple:
    """Identity of a script tag: its file ('' for inline), priority and attributes (body included)."""
    if isinstance(js, str):
        return (js,)
    attrs = tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items()))
    return (getattr(js, "filename", None) or "", getattr(js, "priority", 500), attrs)


def dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """``html-page-context`` handler: keep the first of identical script tags."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for js in scripts:
        key = _script_key(js)
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def setup(app: Any) -> dict:
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
