"""book/_ext/author_year_citations.py: {footcite} renders as "(Author et al., Year)", linked to
the page's reference list, with no Sphinx warning (a tiny Sphinx build)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIB = """@article{park2025hallucinate,
  author = {Park, Chanwoong and Jang, Uijeong and Ryu, Ernest K. and Yang, Insoon},
  title = {Sharpness-Aware Minimization Can Hallucinate Minimizers},
  journal = {arXiv preprint arXiv:2509.21818}, year = {2025}}
@inproceedings{foret2021sam,
  author = {Foret, Pierre and Kleiner, Ariel and Mobahi, Hossein and Neyshabur, Behnam},
  title = {Sharpness-Aware Minimization for Efficiently Improving Generalization},
  booktitle = {ICLR}, year = {2021}}
"""
PAGE = """Page
====

SAM stalls :footcite:p:`park2025hallucinate`; see :footcite:t:`foret2021sam` and
:footcite:p:`park2025hallucinate,foret2021sam`.

.. footbibliography::
"""


def test_footcite_renders_author_year_links_to_the_reference_list(tmp_path):
    sphinx = pytest.importorskip("sphinx.application")
    src = tmp_path / "src"
    src.mkdir()
    (src / "refs.bib").write_text(BIB)
    (src / "index.rst").write_text(PAGE)
    (src / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'book' / '_ext')!r})\n"
        "extensions = ['sphinxcontrib.bibtex', 'author_year_citations']\n"
        "bibtex_bibfiles = ['refs.bib']\n"
        "bibtex_foot_reference_style = 'author_year_foot'\n"
    )
    app = sphinx.Sphinx(str(src), str(src), str(tmp_path / "html"), str(tmp_path / "doctrees"),
                        "html", status=None, warningiserror=True, freshenv=True)
    app.build()
    html = (tmp_path / "html" / "index.html").read_text()
    text = re.sub(r"<[^>]+>", "", html)
    assert "SAM stalls (Park et al., 2025); see Foret et al. (2021) and" in text
    assert "(Park et al., 2025; Foret et al., 2021)" in text
    links = re.findall(r'<a class="reference internal" href="#(footcite-[a-z0-9-]+)"', html)
    assert set(links) == {"footcite-park2025hallucinate", "footcite-foret2021sam"}
    for target in links:  # each link lands on the entry in the page's list
        assert f'id="{target}"' in html
