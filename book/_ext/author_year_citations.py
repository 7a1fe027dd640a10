"""Author-year citations for ``{footcite}``: "(Park et al., 2025)", linked to the page's list.

The chapters cite with ``{footcite}`` (a reference list per page, ``{footbibliography}``).
sphinxcontrib-bibtex's only foot style, ``foot``, shows such a citation as a bare footnote
number ("[1]"), and its ``author_year`` style works for ``{cite}`` only (it needs a global
citation target). This extension registers ``author_year_foot`` (set it as
``bibtex_foot_reference_style`` in ``_config.yml``): ``{footcite}`` (``:p``) renders
"(Park et al., 2025)" and ``{footcite:t}`` "Park et al. (2025)", the author and year
linked to the entry in the page's reference list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import docutils.nodes
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.richtext import BaseReferenceText
from sphinxcontrib.bibtex.style.referencing import (
    BaseReferenceStyle,
    BracketStyle,
    GroupReferenceStyle,
    PersonStyle,
)
from sphinxcontrib.bibtex.style.template import FootReferenceInfo, _format_list, join, node, year

STYLE = "author_year_foot"


class FootLinkText(BaseReferenceText[FootReferenceInfo]):
    """Rich text that renders as a link to the citation's footnote (the page's list entry).

    sphinxcontrib-bibtex names each footnote ``footcite-<key>`` and that name is its id, so
    the link points there directly. It is noted as an auto-numbered footnote reference, so
    Sphinx counts the footnote as referenced, and is marked resolved, so docutils does not
    number it like a "[1]" marker."""

    def render(self, backend: Any) -> list[docutils.nodes.Element]:
        info = self.info[0]
        ref = docutils.nodes.reference("", "", *super().render(backend), refid=info.refname,
                                       internal=True, auto=1)
        ref.resolved = 1
        info.document.note_autofootnote_ref(ref)
        return [ref]


@node
def footnote_link(children: list[Any], data: dict[str, Any]) -> FootLinkText:
    """Pybtex node: its children, linked to the cited entry's footnote."""
    info = data["reference_info"]
    if not isinstance(info, FootReferenceInfo):
        raise TypeError(f"{STYLE} is a style for {{footcite}} only; use author_year for {{cite}}")
    return FootLinkText(info, *_format_list(children, data))


def _round() -> BracketStyle:
    return BracketStyle(left="(", right=")", sep="; ")


@dataclass
class _Parenthetical(BaseReferenceStyle):
    """``{footcite}``/``{footcite:p}``: (Author et al., Year; Other, Year)."""

    bracket: BracketStyle = field(default_factory=_round)
    person: PersonStyle = field(default_factory=PersonStyle)

    def role_names(self) -> list[str]:
        return ["p", "ps"]

    def outer(self, role_name: str, children: list[Any]) -> Any:
        return self.bracket.outer(children, brackets=True, capfirst=False)

    def inner(self, role_name: str) -> Any:
        return footnote_link[join(sep=", ")[self.person.author_or_editor_or_title(full="s" in role_name), year]]


@dataclass
class _Textual(BaseReferenceStyle):
    """``{footcite:t}``: Author et al. (Year)."""

    bracket: BracketStyle = field(default_factory=_round)
    person: PersonStyle = field(default_factory=PersonStyle)

    def role_names(self) -> list[str]:
        return [f"{c}t{s}" for c in ("", "c") for s in ("", "s")]

    def outer(self, role_name: str, children: list[Any]) -> Any:
        return self.bracket.outer(children, brackets=False, capfirst="c" in role_name)

    def inner(self, role_name: str) -> Any:
        author = self.person.author_or_editor_or_title(full="s" in role_name)
        return footnote_link[join(sep=" ")[author, join["(", year, ")"]]]


@dataclass
class AuthorYearFootStyle(GroupReferenceStyle):
    """The author-year style for ``{footcite}``: parenthetical and textual."""

    #: How authors are named ("Park et al."); the templates read it from the group style.
    person: PersonStyle = field(default_factory=PersonStyle)

    def __post_init__(self) -> None:
        self.styles.extend([_Parenthetical(person=self.person), _Textual(person=self.person)])
        super().__post_init__()


def setup(app: Any) -> dict:
    # Registered at import of the extension, before builder-inited reads the config value.
    register_plugin("sphinxcontrib.bibtex.style.referencing", STYLE, AuthorYearFootStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
