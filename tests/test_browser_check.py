"""The browser check's pure helpers (no browser), plus one small end-to-end run that is
skipped where Debian's chromium and chromedriver are not installed."""

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "tools" / "browser_check.py"
_spec = importlib.util.spec_from_file_location("browser_check", _PATH)
bc = importlib.util.module_from_spec(_spec)
sys.modules["browser_check"] = bc  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(bc)

ORIGIN = "http://127.0.0.1:8123"


# -- raw math -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "the update $$x_{k+1} = x_k$$ follows",
        r"points where \(\nabla f(x^+) = 0\) hold",
        r"display \[ a = b \] here",
        r"\begin{align} a &= b \end{align}",
        r"inline $\alpha + \beta$ left raw",
        r"a lone closing \) from a broken render",
    ],
)
def test_find_raw_math_flags_unrendered_tex(text):
    assert bc.find_raw_math(text)


@pytest.mark.parametrize(
    "text",
    [
        "It costs $5 and the other one $10.",
        "Rendered math leaves no delimiters: ∇f(x+)=0 while ∇f(x)≠0.",
        "A backslash in prose \\ is not math, nor is C:\\temp.",
        "",
    ],
)
def test_find_raw_math_ignores_plain_text(text):
    assert bc.find_raw_math(text) == []


def test_find_raw_math_snippet_names_the_spot_and_counts_each_hit():
    hits = bc.find_raw_math(r"one \(a\) two \(b\)", context=4)
    assert len(hits) == 4  # \( and \) of each inline formula
    assert "\\(" in hits[0] and "one" in hits[0]


def test_find_raw_math_rejects_non_text():
    with pytest.raises(TypeError, match="text must be a str"):
        bc.find_raw_math(None)


# -- links and ids ------------------------------------------------------------------------

PAGE = """<html><body>
<section id="intro"><h1>T<a class="headerlink" href="#intro">#</a></h1>
<a href="../book/intro.html#what-the-paper-claims">x</a>
<a name="old-anchor"></a><span id="eq-sam"></span>
<a href="https://arxiv.org/abs/2509.21818">paper</a><a>no href</a>
<a href="mailto:a@b.org">mail</a></section></body></html>"""


def test_extract_links_keeps_document_order_and_skips_anchors_without_href():
    assert bc.extract_links(PAGE) == [
        "#intro",
        "../book/intro.html#what-the-paper-claims",
        "https://arxiv.org/abs/2509.21818",
        "mailto:a@b.org",
    ]


def test_extract_ids_collects_ids_and_anchor_names():
    assert bc.extract_ids(PAGE) == {"intro", "old-anchor", "eq-sam"}


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("#eq-sam", ("notebooks/ch01_sam.html", "eq-sam")),
        ("../book/intro.html#what-the-paper-claims", ("book/intro.html", "what-the-paper-claims")),
        ("ch02_hallucination.html?highlight=x#f", ("notebooks/ch02_hallucination.html", "f")),
        ("../", ("index.html", "")),
        ("./", ("notebooks/index.html", "")),
        ("/_images/fig.png", ("_images/fig.png", "")),
        ("../_sources/notebooks/ch01_sam.ipynb", ("_sources/notebooks/ch01_sam.ipynb", "")),
        ("fig%20one.png", ("notebooks/fig one.png", "")),
        ("https://arxiv.org/abs/2509.21818", None),
        ("//cdn.example.org/x.js", None),
        ("mailto:a@b.org", None),
        ("javascript:void(0)", None),
    ],
)
def test_resolve_internal_link(href, expected):
    assert bc.resolve_internal_link("notebooks/ch01_sam.html", href) == expected


def test_resolve_internal_link_rejects_links_above_the_site_root():
    with pytest.raises(ValueError, match="climbs above the site root"):
        bc.resolve_internal_link("notebooks/ch01_sam.html", "../../etc/passwd")


def _site(tmp_path: Path) -> Path:
    html = tmp_path / "html"
    for rel, text in {
        "index.html": '<a href="book/intro.html">intro</a>',
        "search.html": "",
        "genindex.html": "",
        "book/intro.html": '<h1 id="top">x</h1><a href="../notebooks/ch01_sam.html#eq-sam">eq</a>',
        "notebooks/ch01_sam.html": PAGE,
        "_static/some.html": "",
        "_sources/notebooks/ch01_sam.html": "",
    }.items():
        (html / rel).parent.mkdir(parents=True, exist_ok=True)
        (html / rel).write_text(text)
    return html


def test_content_pages_leaves_out_search_index_and_static_folders(tmp_path):
    assert bc.content_pages(_site(tmp_path)) == ["book/intro.html", "index.html", "notebooks/ch01_sam.html"]


def test_content_pages_needs_a_built_book(tmp_path):
    with pytest.raises(ValueError, match="no index.html"):
        bc.content_pages(tmp_path)


def test_link_checker_reports_missing_files_and_fragments(tmp_path):
    html = _site(tmp_path)
    checker = bc.LinkChecker(html)
    assert checker.check_page("book/intro.html") == (1, [])
    n, problems = checker.check_page("notebooks/ch01_sam.html")
    assert n == 2  # '#intro' and the intro page; external and mailto links are not counted
    assert problems == ["broken link '../book/intro.html#what-the-paper-claims': no id "
                        "'what-the-paper-claims' on book/intro.html"]
    (html / "book/intro.html").unlink()
    assert checker.check_page("index.html")[1] == ["broken link 'book/intro.html': book/intro.html does not exist"]


# -- images: proportion, alt text, page weight ---------------------------------------------


@pytest.mark.parametrize(
    ("natural", "shown", "expected"),
    [
        ((1000, 500), (660, 330), 0.0),
        ((1000, 500), (660, 660), 1.0),  # shown twice as tall as it should be
        ((1000, 500), (660, 165), 1.0),  # squashed to half the height
        ((2000, 807), (660, 403), 403 / (660 * 807 / 2000) - 1),
    ],
)
def test_aspect_distortion(natural, shown, expected):
    assert bc.aspect_distortion(natural, shown) == pytest.approx(expected)


def test_aspect_distortion_within_tolerance_for_rounding_only():
    assert bc.aspect_distortion((1320, 633), (660, 317)) < bc.ASPECT_TOLERANCE
    assert bc.aspect_distortion((1320, 633), (660, 330)) > bc.ASPECT_TOLERANCE


def test_aspect_distortion_rejects_empty_sizes():
    with pytest.raises(ValueError, match="sizes must be positive"):
        bc.aspect_distortion((0, 10), (10, 10))


@pytest.mark.parametrize(
    ("alt", "real"),
    [
        ("Two panels of test accuracy against rho.", True),
        ("Binder logo", True),
        ("rho = 0.5.", True),
        (None, False),
        ("", False),
        ("   ", False),
        ("../_images/7361f7a462585df5.png", False),
        ("_images/fig.svg", False),
        ("landing-triptych.png", False),
        ("./figure.JPG", False),
    ],
)
def test_is_real_alt(alt, real):
    assert bc.is_real_alt(alt) is real


def test_local_image_sources_skips_data_uris_and_other_hosts():
    html = ('<img src="../_images/a.png"><img alt="x" src=\'b.svg\'><img src="data:image/png;base64,AAA">'
            '<img src="https://example.org/c.png"><IMG SRC="../_images/a.png">')
    assert bc.local_image_sources(html) == ["../_images/a.png", "b.svg"]


def test_page_weight_counts_the_html_and_each_local_image_once(tmp_path):
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "a.png").write_bytes(b"x" * 1000)
    (tmp_path / "notebooks").mkdir()
    page = tmp_path / "notebooks" / "ch.html"
    page.write_text('<img src="../_images/a.png"><img src="../_images/a.png"><img src="../_images/gone.png">')
    assert bc.page_weight(tmp_path, "notebooks/ch.html") == page.stat().st_size + 1000


# -- console log, paths -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ({"level": "SEVERE", "source": "javascript",
          "message": f"{ORIGIN}/book/intro.html 61:12 Uncaught SyntaxError: Identifier 'X' has already been declared"},
         "error"),
        ({"level": "SEVERE", "source": "network",
          "message": f"{ORIGIN}/_static/mathjax/tex-mml-chtml.js - Failed to load resource: 404 (File not found)"},
         "error"),
        ({"level": "SEVERE", "source": "network",
          "message": "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js - Failed to load resource: "
                     "net::ERR_NAME_NOT_RESOLVED"},
         "external"),
        ({"level": "SEVERE", "source": "network", "message": f"{ORIGIN}/favicon.ico - Failed to load resource: 404"},
         "ignore"),
        ({"level": "WARNING", "source": "console-api", "message": "something deprecated"}, "ignore"),
        ({"level": "SEVERE", "source": "console-api", "message": "plain console.error with no url"}, "error"),
    ],
)
def test_classify_console_entry(entry, kind):
    assert bc.classify_console_entry(entry, ORIGIN) == kind


def test_is_local_url_does_not_accept_a_longer_port():
    assert bc.is_local_url(ORIGIN + "/x.html", ORIGIN)
    assert not bc.is_local_url(ORIGIN + "4/x.html", ORIGIN)


def test_screenshot_path_mirrors_the_page_path(tmp_path):
    assert bc.screenshot_path(tmp_path, "notebooks/ch01_sam.html") == tmp_path / "notebooks" / "ch01_sam.png"
    assert bc.screenshot_path(tmp_path, "index.html", "phone") == tmp_path / "index.phone.png"


def test_main_refuses_a_folder_without_a_book(tmp_path, capsys):
    assert bc.main([str(tmp_path)]) == 2
    assert "build the book first" in capsys.readouterr().err


# -- end to end in Chromium (skipped without it) ------------------------------------------

needs_chromium = pytest.mark.skipif(
    not (Path(bc.CHROMIUM).exists() and Path(bc.CHROMEDRIVER).exists()),
    reason="Debian's chromium and chromium-driver are not installed",
)


@needs_chromium
def test_browser_run_passes_a_clean_page_and_names_each_problem(tmp_path, capsys):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(
        '<html><body><h1 id="a">Fine</h1><a href="bad.html">to bad</a><a href="#a">self</a></body></html>'
    )
    (html / "bad.html").write_text(
        "<html><body><p>Raw $$x^2$$ math.</p><img src='missing.png'>"
        "<a href='index.html#nope'>x</a><script>throw new Error('boom')</script></body></html>"
    )
    # A 200x100 PNG drawn 100x100 (the retina-metadata bug), an unlabelled image and an
    # output wider than its box.
    from PIL import Image

    Image.new("RGB", (200, 100), "white").save(html / "wide.png")
    (html / "shapes.html").write_text(
        "<html><body><main><img alt='A wide white rectangle' src='wide.png' style='width: 100px; height: 100px'>"
        "<img src='wide.png' style='width: 100px'>"
        "<div class='cell_output' style='width: 300px; overflow-x: auto'><pre>" + "x" * 400 + "</pre></div>"
        "<figure><img alt='Drawn too wide' src='wide.png' style='width: 2000px; max-width: 100%; height: auto'>"
        "</figure>"
        "</main></body></html>"
    )
    status = bc.main([str(html), "--out", str(tmp_path / "shots"), "--expect-animation", "gone.html"])
    out = capsys.readouterr().out
    assert status == 1
    assert "PASS index.html" in out and "FAIL bad.html" in out
    assert "1 passed, 2 failed" in out
    assert "--expect-animation gone.html: page not in the build" in out
    for problem in ["raw TeX in visible text", "image did not load: missing.png", "no id 'nope' on index.html",
                    "Uncaught Error: boom", "local request failed: 404 /missing.png"]:
        assert problem in out, problem
    for problem in ["image out of proportion at 1280 px", "image out of proportion at 390 px",
                    "image without a real alt text (alt=None): wide.png", "overflows sideways at 1280 px",
                    "figure shrunk to"]:
        assert problem in out, problem
    assert out.count("image out of proportion at 1280 px") == 1  # the second img keeps its ratio
    assert (tmp_path / "shots" / "index.png").stat().st_size > 1000
    assert (tmp_path / "shots" / "index.top.png").stat().st_size > 1000
    assert (tmp_path / "shots" / "index.phone.png").stat().st_size > 1000


def test_figure_text_problems_scale_the_drawn_text():
    figs = [
        {"src": "a.png", "scale": 0.5, "minFont": float("nan")},
        {"src": "b.png", "scale": 0.9, "minFont": float("nan")},
    ]
    problems = bc.figure_text_problems(figs, "390 px")
    assert len(problems) == 1 and "a.png" in problems[0] and "5.5 px" in problems[0]
    # a page that states its smallest text (data-min-font-px) is measured by it
    assert bc.figure_text_problems([{"src": "c.svg", "scale": 0.5, "minFont": 20.0}], "390 px") == []


@needs_chromium
def test_browser_run_fails_cut_off_math_and_phone_overflow(tmp_path, capsys):
    html = tmp_path / "html"
    html.mkdir()
    math = (
        "<div class='math' style='width: {box}px'><span class='eqno' style='float: right'>(1)</span>"
        "<mjx-container><mjx-math style='display: inline-block; width: {w}px; height: 20px'></mjx-math>"
        "</mjx-container></div>"
    )
    (html / "index.html").write_text(
        "<html><body><article class='bd-article'>"
        + math.format(box=300, w=100)
        + "<table><tr><td>label</td><td>4.32e-02</td></tr></table></article></body></html>"
    )
    (html / "cut.html").write_text(
        "<html><body><article class='bd-article'>" + math.format(box=300, w=600) + "</article></body></html>"
    )
    (html / "phone.html").write_text(
        "<html><body><article class='bd-article'><div class='pst-scrollable-table-container' "
        "style='overflow-x: auto'><table><tr>" + "<td>0.123456</td>" * 30 + "</tr></table></div>"
        "<table style='width: 60px'><tr><td>x</td><td style='width: 30px'>4.32e-02</td></tr></table>"
        "</article></body></html>"
    )
    # math that fits its box but scrolls inside its mjx-container (the theme's overflow: auto)
    (html / "scroll.html").write_text(
        "<html><body><article class='bd-article'><div class='math' style='width: 300px; display: flex'>"
        "<mjx-container style='display: block; width: 150px; overflow: auto'>"
        "<mjx-math style='display: inline-block; width: 200px; height: 20px'></mjx-math>"
        "</mjx-container></div></article></body></html>"
    )
    # a prose table whose scroll wrapper hides columns at 1280 px
    (html / "prose.html").write_text(
        "<html><body><article class='bd-article'><div class='pst-scrollable-table-container' "
        "style='width: 400px; overflow-x: auto'><table style='width: 900px'><tr><td>wide</td></tr></table>"
        "</div></article></body></html>"
    )
    status = bc.main([str(html), "--out", str(tmp_path / "shots")])  # the phone checks fail by default
    out = capsys.readouterr().out
    assert status == 1
    assert "PASS index.html" in out and "FAIL cut.html" in out and "FAIL phone.html" in out
    assert "FAIL scroll.html" in out and "FAIL prose.html" in out
    assert "cut off at 1280 px: equation (1) 600 px wide in 300 px" in out
    assert "cut off at 390 px: equation (1)" in out
    assert "cut off at 1280 px: equation scrolls: 200 px of math in a 150 px box" in out
    assert "overflows sideways at 1280 px: div.pst-scrollable-table-container 900 px in 400 px" in out
    assert "overflows sideways at 390 px: div.pst-scrollable-table-container scrolls" in out
    assert "number broken across lines at 390 px: '4.32e-02'" in out
    assert "screens" in out.split("PASS index.html")[1].split("\n")[0]  # its length, in the summary


@needs_chromium
def test_browser_run_keeps_pending_layout_findings_as_notes(tmp_path, capsys, monkeypatch):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(
        "<html><body><article class='bd-article'><div class='pst-scrollable-table-container' "
        "style='width: 400px; overflow-x: auto'><table style='width: 900px'><tr><td>known wide</td></tr>"
        "</table></div></article></body></html>"
    )
    monkeypatch.setattr(bc, "PENDING_LAYOUT", (
        ("index.html", "known wide", "another change narrows it"),
        ("index.html", "fixed long ago", "stale"),
    ))
    assert bc.main([str(html), "--out", str(tmp_path / "shots")]) == 0
    out = capsys.readouterr().out
    assert "note: pending (another change narrows it): overflows sideways at 1280 px" in out
    assert "entry for index.html ('fixed long ago') matched no finding" in out
    assert bc.main([str(html), "--out", str(tmp_path / "shots"), "--strict-phone"]) == 1  # fails them too
    assert "index.html: overflows sideways at 1280 px" in capsys.readouterr().out


def test_pending_reason_matches_page_and_text():
    pending = (("a.html", "x⋆=±(ρ−1)", "Chapter 2's change"),)
    finding = "cut off at 390 px: equation (8)# scrolls: 339 px of math in a 303 px box: (8)#x⋆=±(ρ−1),1<ρ<2"
    assert bc.pending_reason("a.html", finding, pending) == ("x⋆=±(ρ−1)", "Chapter 2's change")
    assert bc.pending_reason("b.html", finding, pending) is None  # another page: a failure
    assert bc.pending_reason("a.html", "cut off at 390 px: equation (9)# f(x,y)", pending) is None


def test_pending_layout_entries_name_a_page_a_snippet_and_a_reason():
    for page, snippet, why in bc.PENDING_LAYOUT:
        assert page.endswith(".html") and snippet.strip() and why.strip(), (page, snippet)
        assert "ch04" not in page  # Chapter 4's pages have none: their findings are fixed


def test_screens_is_the_scroll_height_in_viewports():
    assert bc.screens(12000) == 15.0
    assert bc.screens(1200, 600) == 2.0
    with pytest.raises(ValueError, match="viewport_height must be positive"):
        bc.screens(100, 0)
