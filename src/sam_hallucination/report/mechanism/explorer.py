"""The ring explorer: SAM on the ring (‖x‖² − 1)² for a grid of (ρ, η), behind two sliders.

Every frame is computed here, through the dynamics engine (:func:`explorer_frame`): SAM's
iterates from six fixed starts in the unit disk, the hallucinated circle ‖x‖ = ρ − 1, and
where the iterates end. :func:`ring_explorer` renders the frames as light PNGs and
:meth:`RingExplorer.html` wraps them in a self-contained player: two range inputs and a few
lines of JavaScript that swap the picture and the readout. No server, no CDN: it works in the
static book, offline, and in a notebook. Without JavaScript (and in print) the default frame
and its readout stay, as a static figure.

The readout of each frame (ρ, η, the end radius, the end states) is stored beside the frames
in the page; ``tools/browser_check.py`` moves the sliders and compares what the page shows
with :func:`explorer_values` for that frame.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np

from .frames import encode_frame

# The grid the book shows: ρ across the three regimes of Chapter 3 (ρ < 1, 1 < ρ < 2, ρ > 2),
# η up to and past the attraction bound 1/4 (a 2-cycle at 0.28). No cell is chaotic (ρ = 0.6
# would be: its frames and end radii would change with the CPU's rounding, and so would a
# rebuilt page); a start perturbed by 1e-13 moves by at most 1e-9 in 300 steps on this grid.
RHOS = (0.8, 1.1, 1.3, 1.5, 1.7, 1.9, 2.2)
ETAS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.24, 0.28)
DEFAULT = (1.5, 0.1)  # the chapter's example
STEPS = 300
START_RADII = (0.15, 0.33, 0.47, 0.63, 0.78, 0.93)  # none on a circle of the grid
START_ANGLES_DEG = (15, 75, 135, 195, 255, 315)
FRAME_INCHES = 4.2  # 370 CSS px at the book's 88 px per inch: fits a 390 px phone's column

# How the readout words each end state of the engine's classifier.
_STATE_WORDS = {
    "hallucinated point": "on the hallucinated circle",
    "true minimizer": "at a minimizer",
    "stationary non-minimum": "at the maximizer",
    "diverged": "diverged",
    "not converged": "still moving",
}


def explorer_starts():
    """The six starts (a (6, 2) float64 tensor): radii 0.15 to 0.93, 60° apart."""
    import torch

    from ...rd.landscapes import DTYPE

    r = torch.tensor(START_RADII, dtype=DTYPE)
    th = torch.deg2rad(torch.tensor(START_ANGLES_DEG, dtype=DTYPE))
    return torch.stack((r * torch.cos(th), r * torch.sin(th)), -1)


@dataclass(frozen=True)
class ExplorerFrame:
    """What one frame shows, as numbers: ``end_radius`` is the median of ‖x‖ after ``steps``
    steps over the starts that did not diverge (NaN when all did); ``states`` counts the
    starts per end state (``dynamics.end_state_counts``)."""

    rho: float
    eta: float
    steps: int
    end_radius: float
    states: dict[str, int] = field(default_factory=dict)

    @property
    def readout(self) -> str:
        """The sentence under the picture: ρ, η, the end radius and the end states."""
        n = sum(self.states.values())
        radius = (f"end radius {self.end_radius:.4f}" if math.isfinite(self.end_radius)
                  else "no end radius")
        states = ", ".join(f"{k} {_STATE_WORDS[s]}" for s, k in self.states.items())
        return (f"ρ = {self.rho:.2f}, η = {self.eta:.2f}. After {self.steps} steps: {radius}; "
                f"of {n} starts, {states}.")

    def as_dict(self) -> dict:
        return {"rho": self.rho, "eta": self.eta, "steps": self.steps,
                "end_radius": self.end_radius if math.isfinite(self.end_radius) else None,
                "states": dict(self.states), "readout": self.readout}


def explorer_frame(rho: float, eta: float, *, steps: int = STEPS):
    """SAM on the ring from :func:`explorer_starts` for ``steps`` steps: returns the frame's
    numbers (:class:`ExplorerFrame`) and the iterates (a (steps + 1, 6, 2) numpy array)."""
    import torch

    from ...rd import dynamics as D
    from ...rd.landscapes import RING

    res = D.iterate(RING, explorer_starts(), rho=rho, eta=eta, steps=steps, record_every=1)
    hist = res.history.numpy()
    radii = torch.linalg.vector_norm(res.x, dim=-1)
    finite = radii[torch.isfinite(radii) & (radii < 1e6)]
    # median of an even count: the mean of the middle two, as numpy does
    end = float(np.median(finite.numpy())) if finite.numel() else math.nan
    states = D.end_state_counts(D.classify(RING, res.x, rho=rho))
    return ExplorerFrame(float(rho), float(eta), int(steps), end, states), hist


def explorer_values(rho: float, eta: float, *, steps: int = STEPS) -> ExplorerFrame:
    """The numbers of the frame at (ρ, η), without drawing it (what the browser check asks)."""
    return explorer_frame(rho, eta, steps=steps)[0]


def draw_explorer_frame(ax, hist: np.ndarray, rho: float, eta: float) -> None:
    """One frame on ``ax``: the minimizer circle (dashed), the hallucinated circle ‖x‖ = ρ − 1
    for 1 < ρ < 2 (vermillion; for ρ < 1 the repelling circle ‖x‖ = ρ, dotted), the paths
    from grey starts and the end points (vermillion dots)."""
    from ...plotting import METHOD_COLORS, PALETTE

    t = np.linspace(0, 2 * np.pi, 241)
    ax.plot(np.cos(t), np.sin(t), "k--", lw=1)
    if 1 < rho < 2:
        ax.plot((rho - 1) * np.cos(t), (rho - 1) * np.sin(t), color=PALETTE["vermillion"], lw=2.2,
                alpha=0.45)
    elif rho < 1:
        ax.plot(rho * np.cos(t), rho * np.sin(t), ":", color=PALETTE["vermillion"], lw=1.4)
    with np.errstate(invalid="ignore"):
        h = np.where(np.abs(hist) < 1e3, hist, np.nan)  # a diverged path leaves the picture
    ax.plot(h[..., 0], h[..., 1], "-", color=METHOD_COLORS["sam"], lw=0.8, alpha=0.8)
    ax.plot(h[0, :, 0], h[0, :, 1], "o", color="0.5", ms=5)
    # the last two iterates: one dot where a run has settled, two where it cycles
    ax.plot(h[-2, :, 0], h[-2, :, 1], "o", mfc="none", mec=METHOD_COLORS["sam"], ms=7, mew=1.2)
    ax.plot(h[-1, :, 0], h[-1, :, 1], "o", color=METHOD_COLORS["sam"], ms=7, mec="k", mew=0.6)
    ax.set_title(rf"SAM on the ring: $\rho = {rho:.2f}$, $\eta = {eta:.2f}$")
    ax.set(aspect="equal", xlim=(-1.25, 1.25), ylim=(-1.25, 1.25), xticks=[-1, 0, 1], yticks=[-1, 0, 1])
    ax.grid(False)


@dataclass(repr=False)
class RingExplorer:
    """The precomputed frames (PNG bytes, ρ-major: frame ``i * len(etas) + j`` is
    (``rhos[i]``, ``etas[j]``)) and their numbers; :meth:`html` is the player."""

    rhos: tuple[float, ...]
    etas: tuple[float, ...]
    frames: list[bytes]
    values: list[ExplorerFrame]
    width_px: int

    def index(self, rho: float, eta: float) -> int:
        """The frame number of (ρ, η), which must be on the grid."""
        try:
            return self.rhos.index(rho) * len(self.etas) + self.etas.index(eta)
        except ValueError:
            raise ValueError(f"(rho, eta) = ({rho}, {eta}) is not on the grid {self.rhos} x {self.etas}") from None

    @property
    def nbytes(self) -> int:
        """Bytes of the frames as embedded (base64), the bulk of the player's weight."""
        return sum(4 * math.ceil(len(f) / 3) for f in self.frames)

    def html(self, uid: str = "ring-explorer", alt: str | None = None,
             default: tuple[float, float] = DEFAULT) -> str:
        """The self-contained player: picture, two sliders, readout, data and script."""
        if not re.match(r"^[A-Za-z][\w-]*$", uid):
            raise ValueError(f"uid={uid!r}: use letters, digits, - and _ (an HTML id), e.g. 'ring-explorer'")
        k = self.index(*default)
        i, j = divmod(k, len(self.etas))
        alt = alt or ("SAM's paths on the ring from six grey starts in the unit disk, inside the dashed "
                      "unit circle of minimizers, for the chosen rho and eta.")
        data = {"rhos": list(self.rhos), "etas": list(self.etas), "steps": self.values[0].steps,
                "frames": [base64.b64encode(f).decode() for f in self.frames],
                "values": [v.as_dict() for v in self.values]}
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
        e = html.escape
        return _TEMPLATE.format(
            uid=uid, css=_CSS.replace("UID", uid), width=self.width_px, alt=e(alt, quote=True),
            src=f"data:image/png;base64,{data['frames'][k]}", readout=e(self.values[k].readout),
            i=i, j=j, i_max=len(self.rhos) - 1, j_max=len(self.etas) - 1,
            rho=f"{self.rhos[i]:.2f}", eta=f"{self.etas[j]:.2f}", data=payload,
            script=_JS.replace("UID", uid))

    def _repr_html_(self) -> str:
        return self.html()

    def __repr__(self) -> str:  # not the frames' bytes
        return (f"RingExplorer({len(self.rhos)} x {len(self.etas)} frames, rho {self.rhos}, eta {self.etas}, "
                f"{self.nbytes / 1e3:.0f} kB)")


def ring_explorer(rhos=RHOS, etas=ETAS, *, steps: int = STEPS, inches: float = FRAME_INCHES,
                  dpi: float = 88, colors: int = 32) -> RingExplorer:
    """Compute and draw every frame of the (ρ, η) grid (ρ-major). ``inches`` is the frame's
    drawn size (shown at 88 CSS px per inch, as every figure of the book); ``dpi`` the
    rendering resolution; ``colors`` the PNG palette."""
    import matplotlib.pyplot as plt

    from ...plotting import BOOK_DPI

    rhos, etas = tuple(float(r) for r in rhos), tuple(float(e) for e in etas)
    if not rhos or not etas or min(rhos) <= 0 or min(etas) <= 0:
        raise ValueError(f"rhos and etas must be non-empty and positive, got {rhos} and {etas}")
    if len(set(rhos)) < len(rhos) or len(set(etas)) < len(etas):
        raise ValueError("rhos and etas must not repeat a value (a slider position each)")
    frames, values = [], []
    fig, ax = plt.subplots(figsize=(inches, inches))
    try:
        for rho in rhos:
            for eta in etas:
                v, hist = explorer_frame(rho, eta, steps=steps)
                ax.clear()
                draw_explorer_frame(ax, hist, rho, eta)
                frames.append(encode_frame(fig, "png", dpi=dpi, colors=colors))
                values.append(v)
    finally:
        plt.close(fig)
    return RingExplorer(rhos, etas, frames, values, width_px=round(inches * BOOK_DPI))


_CSS = """
#UID { max-width: 100%; margin: 0 auto; }
#UID img.ring-explorer-frame { display: block; max-width: 100%; height: auto; }
#UID .ring-explorer-controls { display: grid; grid-template-columns: 1.4rem 1fr 2.6rem;
  gap: 0.2rem 0.5rem; align-items: center; margin: 0.3rem 0; font-size: 0.95rem; }
#UID .ring-explorer-controls input[type=range] { width: 100%; margin: 0; }
#UID .ring-explorer-readout { font-size: 0.85rem; margin: 0.2rem 0 0 0; }
@media print { #UID .ring-explorer-controls { display: none; } }
"""

_TEMPLATE = """<div class="ring-explorer" id="{uid}" data-frame="" style="max-width: {width}px">
<style>{css}</style>
<img class="ring-explorer-frame" src="{src}" alt="{alt}" width="{width}" height="{width}"
 style="width: {width}px">
<div class="ring-explorer-controls">
<label for="{uid}-rho">ρ</label>
<input type="range" id="{uid}-rho" class="ring-explorer-rho" min="0" max="{i_max}" step="1" value="{i}"
 aria-valuetext="ρ = {rho}">
<output class="ring-explorer-rho-value" for="{uid}-rho">{rho}</output>
<label for="{uid}-eta">η</label>
<input type="range" id="{uid}-eta" class="ring-explorer-eta" min="0" max="{j_max}" step="1" value="{j}"
 aria-valuetext="η = {eta}">
<output class="ring-explorer-eta-value" for="{uid}-eta">{eta}</output>
</div>
<p class="ring-explorer-readout" aria-live="polite">{readout}</p>
<script type="application/json" class="ring-explorer-data">{data}</script>
<script>{script}</script>
</div>"""

# Swaps the frame and the readout when a slider moves. Kept tiny and dependency-free.
_JS = """(function () {
  var root = document.getElementById("UID");
  if (!root || root.getAttribute("data-ready")) return;
  root.setAttribute("data-ready", "1");
  var d = JSON.parse(root.querySelector("script.ring-explorer-data").textContent);
  var img = root.querySelector("img.ring-explorer-frame");
  var out = root.querySelector(".ring-explorer-readout");
  var rho = root.querySelector("input.ring-explorer-rho");
  var eta = root.querySelector("input.ring-explorer-eta");
  var base = img.getAttribute("alt");
  function show() {
    var i = parseInt(rho.value, 10), j = parseInt(eta.value, 10), k = i * d.etas.length + j;
    var r = d.rhos[i].toFixed(2), e = d.etas[j].toFixed(2), v = d.values[k];
    img.src = "data:image/png;base64," + d.frames[k];
    img.setAttribute("alt", base + " " + v.readout);
    out.textContent = v.readout;
    root.querySelector(".ring-explorer-rho-value").textContent = r;
    root.querySelector(".ring-explorer-eta-value").textContent = e;
    rho.setAttribute("aria-valuetext", "ρ = " + r);
    eta.setAttribute("aria-valuetext", "η = " + e);
    root.setAttribute("data-frame", String(k));
  }
  rho.addEventListener("input", show);
  eta.addEventListener("input", show);
  show();
})();"""
