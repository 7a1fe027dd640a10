"""Add "(preview)" to the title of a chapter that shows smoke results only.

A chapter built from the CPU smoke run opens with the warning that
``sam_hallucination.plotting.coverage_warning`` writes (its HTML carries the class
``smoke-preview``). While an executed notebook holds that warning, this extension appends
" (preview)" to its first heading, so the sidebar, the page title and the navigation say so
too; when the GPU results land, the warning is no longer generated and the suffix goes.
"""

from __future__ import annotations

import re
from typing import Any

MARKER = "smoke-preview"
# The first level-1 heading in a notebook's JSON: "# 5. Title\n" (a JSON string).
_HEADING = re.compile(r'^(\s*"#\s[^"\\]*?)(\\n)?"', re.MULTILINE)
SUFFIX = " (preview)"


def add_preview_suffix(source: str) -> str:
    """Return notebook JSON ``source`` with " (preview)" after its first heading when the
    notebook holds the smoke-run warning; unchanged otherwise."""
    if MARKER not in source:
        return source

    def repl(m: re.Match) -> str:
        title = m.group(1)
        if title.endswith(SUFFIX):
            return m.group(0)
        return f'{title}{SUFFIX}{m.group(2) or ""}"'

    return _HEADING.sub(repl, source, count=1)


def _source_read(app: Any, docname: str, source: list[str]) -> None:
    if docname.startswith("notebooks/") and str(app.env.doc2path(docname)).endswith(".ipynb"):
        source[0] = add_preview_suffix(source[0])


def setup(app: Any) -> dict:
    app.connect("source-read", _source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
