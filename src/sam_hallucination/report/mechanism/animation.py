"""A matplotlib figure stepped through frames, as a self-contained HTML animation.

matplotlib's ``HTMLWriter`` writes its player to a file, names it with a random id and gives
its picture no ``alt`` text. :func:`html_animation` fills the same templates in memory, with
a fixed id (so re-executing a chapter changes nothing) and the ``alt`` text the book needs.
The player is matplotlib's own (``div.animation``), which ``tools/browser_check.py`` steps.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable

from .frames import encode_frame

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
FORMATS = ("png", "jpeg")


def html_animation(fig, draw: Callable[[int], object], n_frames: int, *, uid: str, alt: str,
                   interval_ms: int = 300, fmt: str = "png", dpi: float | None = None,
                   colors: int = 32, quality: int = 60, mode: str = "once"):
    """The animation of ``fig`` over ``n_frames`` frames as an ``IPython.display.HTML``.

    ``draw(k)`` updates the figure's artists to frame ``k``; the figure is closed afterwards.
    ``uid`` is the player's fixed id (letters, digits, ``_``; unique on the page) and ``alt``
    the picture's description. Frames are ``"png"`` (quantised to ``colors`` colours: line art
    and dots stay sharp and light) or ``"jpeg"`` (``quality``), at ``dpi`` (default: the
    figure's). ``mode`` is the player's repeat mode: "once", "loop" or "reflect".
    """
    import matplotlib.pyplot as plt
    from IPython.display import HTML
    from matplotlib._animation_data import DISPLAY_TEMPLATE, JS_INCLUDE, STYLE_INCLUDE

    if not _ID.match(uid):
        raise ValueError(f"uid={uid!r}: use letters, digits and _ (it names a JS object), e.g. 'ch2cloud'")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if mode not in ("once", "loop", "reflect"):
        raise ValueError(f"mode must be 'once', 'loop' or 'reflect', got {mode!r}")
    if not alt.strip():
        raise ValueError("alt must describe the animation for readers who cannot see it")
    if not (isinstance(n_frames, int) and n_frames >= 2):
        raise ValueError(f"n_frames must be an int >= 2 (an animation), got {n_frames!r}")
    frames = []
    try:
        for k in range(n_frames):
            draw(k)
            frames.append(encode_frame(fig, fmt, dpi=dpi, colors=colors, quality=quality))
    finally:
        plt.close(fig)
    tag = '<img id="_anim_img{id}">'
    if tag not in DISPLAY_TEMPLATE:  # matplotlib changed its template: say so, do not guess
        raise RuntimeError("matplotlib's animation template has no <img id=\"_anim_img{id}\">; "
                           "update report/mechanism/animation.py for this matplotlib version")
    template = DISPLAY_TEMPLATE.replace(tag, '<img id="_anim_img{id}" alt="{alt}">', 1)
    fill = "\n" + "".join(f'  frames[{i}] = "data:image/{fmt};base64,{base64.b64encode(f).decode()}"\n'
                          for i, f in enumerate(frames))
    checked = {f"{m}_checked": ("checked" if m == mode else "") for m in ("once", "loop", "reflect")}
    body = template.format(id=uid, alt=html.escape(alt, quote=True), Nframes=len(frames),
                           fill_frames=fill, interval=int(interval_ms), **checked)
    return HTML(JS_INCLUDE + STYLE_INCLUDE + body)

