"""Layer x head heatmaps as HTML tables: crisp at any zoom, every cell with a tooltip
(title) naming its head and score, and the score written in the cell when the grid is
small enough for the label to be legible (LABEL_MAX_HEADS; the style in html.py sets
the labels' font size). No image and no script, so the page stays self-contained."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps

from scheduler.report.html import esc

# Up to this many heads a layer, a cell is wide enough for its "0.97" at 12px; beyond
# it, cells shrink to coloured squares and the tooltip carries the number.
LABEL_MAX_HEADS = 16
CMAP = "viridis"


def cell_colour(value: float, vmax: float) -> tuple[str, str]:
    """(background, text colour) of a cell on the 0..vmax scale: text white on dark."""
    share = min(max(value / vmax if vmax else 0.0, 0.0), 1.0)
    red, green, blue, _ = colormaps[CMAP](share)
    luminance = 0.299 * red + 0.587 * green + 0.114 * blue
    background = f"#{int(red * 255):02x}{int(green * 255):02x}{int(blue * 255):02x}"
    return background, "#000" if luminance > 0.5 else "#fff"


def _cell(value: float, layer: int, head: int, labelled: bool, vmax: float) -> str:
    if np.isnan(value):
        return f'<td class="empty" title="head {layer}.{head}: no data"></td>'
    background, colour = cell_colour(value, vmax)
    label = f"{value:.2f}" if labelled else ""
    return (f'<td style="background:{background};color:{colour}" '
            f'title="head {layer}.{head} (layer {layer}, head {head}): {value:.3f}">'
            f"{label}</td>")


def scale_bar(vmax: float) -> str:
    """The colour scale under a heatmap: 0 to vmax."""
    stops = ", ".join(cell_colour(vmax * i / 4, vmax)[0] for i in range(5))
    return (f'<div class="heat-scale"><span>0</span><span class="bar" '
            f'style="background: linear-gradient(to right, {stops})"></span>'
            f"<span>{vmax:g}</span></div>")


def heatmap(grid: np.ndarray, title: str, vmax: float = 1.0, scale: bool = True) -> str:
    """grid: [n_layers, n_heads]; NaN cells (no data) are left blank. Rows are layers,
    columns heads, so cell (L, H) is head L.H."""
    n_layers, n_heads = grid.shape
    labelled = n_heads <= LABEL_MAX_HEADS
    css = "heat" if labelled else "heat dense"
    heads = "".join(f"<th>{head}</th>" for head in range(n_heads))
    rows = "".join(
        f"<tr><th>{layer}</th>"
        + "".join(_cell(float(grid[layer, head]), layer, head, labelled, vmax)
                  for head in range(n_heads)) + "</tr>"
        for layer in range(n_layers))
    table = (f'<table class="{css}" aria-label="{esc(title)}">'
             f'<tr><th class="axis">layer \\ head</th>{heads}</tr>{rows}</table>')
    return (f'<figure class="heatmap"><figcaption>{esc(title)}</figcaption>{table}'
            f'{scale_bar(vmax) if scale else ""}</figure>')


def small_heatmaps(grids: Sequence[np.ndarray], titles: Sequence[str], title: str,
                   vmax: float = 1.0) -> str:
    """Small multiples: one heatmap per grid, in order, on one colour scale (0 to vmax)."""
    panels = "".join(heatmap(grid, name, vmax, scale=False)
                     for grid, name in zip(grids, titles, strict=True))
    return (f'<div class="multiples"><p class="meta">{esc(title)}</p>'
            f'<div class="panels">{panels}</div>{scale_bar(vmax)}</div>')
