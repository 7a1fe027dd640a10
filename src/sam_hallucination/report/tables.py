"""The chapters' column tables: rows to fixed-width text, and that text's cells to HTML."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any


class Table(str):
    """A table's fixed-width text (what ``print`` shows) that keeps its cells, so the book
    renders it as HTML straight from them (``plotting.show_table``), never by re-parsing."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __new__(cls, text: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
        obj = super().__new__(cls, text)
        obj.header, obj.rows = tuple(header), tuple(tuple(r) for r in rows)
        return obj


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """One ``<table class="text-table">`` (the class the book's CSS fits to a phone column)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table class=\"text-table\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def format_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> Table:
    """A column table; ``columns`` = [(key, header, format spec)]. Its text is fixed-width."""
    def cell(v: Any, spec: str) -> str:
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    body = [[cell(r[k], spec) for k, _, spec in columns] for r in rows]
    heads = [h for _, h, _ in columns]
    widths = [max([len(h), *(len(b[i]) for b in body)]) for i, h in enumerate(heads)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return Table("\n".join(lines), heads, body)
