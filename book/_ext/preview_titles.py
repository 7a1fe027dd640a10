"""Add "(preview)" or "(CPU scale)" to the title of a chapter whose GPU grid is owed.

Such a chapter opens with the banner that ``sam_hallucination.plotting.coverage_warning``
writes: its HTML carries the class ``smoke-preview`` (smoke results only) or ``cpu-tier-banner``
(the CPU-scale tier). While an executed notebook holds that banner, this extension appends
the matching suffix to its first heading, so the sidebar, the page title and the
navigation say so too; when the GPU results land, the banner is no longer generated and
the suffix goes.
"""

from __future__ import annotations

import re
from typing import Any

MARKER = "smoke-preview"
SUFFIX = " (preview)"
# banner class -> title suffix; the smoke warning wins if both appear
SUFFIXES = {MARKER: SUFFIX, "cpu-tier-banner": " (CPU scale)"}
# The first level-1 heading in a notebook's JSON: "# 5. Title\n" (a JSON string).
_HEADING = re.compile(r'^(\s*"#\s[^"\\]*?)(\\n)?"', re.MULTILINE)


def add_preview_suffix(source: str) -> str:
    """Return notebook JSON ``source`` with " (preview)" (smoke banner) or " (CPU scale)"
    (CPU-tier banner) after its first heading; unchanged without a banner."""
    suffix = next((v for k, v in SUFFIXES.items() if k in source), None)
    if suffix is None:
        return source

    def repl(m: re.Match) -> str:
        title = m.group(1)
        if title.endswith(suffix):
            return m.group(0)
        return f'{title}{suffix}{m.group(2) or ""}"'

    return _HEADING.sub(repl, source, count=1)


def _source_read(app: Any, docname: str, source: list[str]) -> None:
    if docname.startswith("notebooks/") and str(app.env.doc2path(docname)).endswith(".ipynb"):
        source[0] = add_preview_suffix(source[0])


def setup(app: Any) -> dict:
    app.connect("source-read", _source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
