"""A neuron's stored histogram (lensbatch.top: 32 symmetric log2 bins) as a small inline
SVG: one bar per bin, its height on a log scale of the count (so the few positions out
in the tails still show next to the bulk near zero), every bin edge written below the
bars, and each bar's interval and count in its tooltip and in data-count."""

from __future__ import annotations

import math
from collections.abc import Sequence

from lensbatch.top import HALF
from scheduler.report.html import esc

BAR = 18  # px per bar, gap included
GAP = 2
PLOT = 90  # px: the tallest bar
LEFT = 10  # px left of the first bar
LABELS = 40  # px below the bars for the rotated edge labels
_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075"
                                            "\u2076\u2077\u2078\u2079")


def edge_text(edge: float) -> str:
    """A bin edge as a power of two: 0, 2⁻⁸, −2⁶ (the edges are 0 and ±2^n)."""
    if edge == 0:
        return "0"
    sign = "\u2212" if edge < 0 else ""
    return f"{sign}2{str(round(math.log2(abs(edge)))).translate(_SUPERSCRIPT)}"


def bin_text(index: int, edges: Sequence[float]) -> str:
    """Bin `index` as an interval: [a, b) above zero, (a, b] below it, where a negative
    value's magnitude decides its bin; the outer bins are open."""
    low, high = edges[index], edges[index + 1]
    if index == 0:
        return f"\u2264 {edge_text(high)}"
    if index == len(edges) - 2:
        return f"\u2265 {edge_text(low)}"
    if index < HALF:
        return f"({edge_text(low)}, {edge_text(high)}]"
    return f"[{edge_text(low)}, {edge_text(high)})"


def histogram_svg(counts: Sequence[int], edges: Sequence[float]) -> str:
    """counts: [BINS] positions per bin; edges: [BINS + 1] lower edges and +inf (the
    ends infinite). Heights: log(1 + count) / log(1 + largest count). Colours and fonts
    come from the page's style (svg.neuron-hist in scheduler/report/html.py), so that a
    report with dozens of cards stays small."""
    largest = max(counts, default=0)
    scale = math.log1p(largest) or 1.0
    width = LEFT + BAR * len(counts) + LEFT
    parts = [f'<svg class="neuron-hist" width="{width}" height="{PLOT + LABELS}" '
             f'viewBox="0 0 {width} {PLOT + LABELS}" role="img">']
    for index, count in enumerate(counts):
        height = PLOT * math.log1p(count) / scale
        below = ' class="neg"' if index < HALF else ""
        parts.append(f'<rect x="{LEFT + BAR * index}" y="{PLOT - height:.1f}" '
                     f'width="{BAR - GAP}" height="{height:.1f}"{below} data-count="{count}">'
                     f"<title>{esc(bin_text(index, edges))}: {count:,} positions</title></rect>")
    parts.append(f'<line x1="{LEFT}" y1="{PLOT}" x2="{width - LEFT}" y2="{PLOT}"/>')
    # One label per finite edge, under the boundary between its two bins, read upwards.
    for index, edge in enumerate(edges):
        if math.isinf(edge):
            continue
        zero = ' class="zero"' if edge == 0 else ""
        parts.append(f'<text transform="translate({LEFT + BAR * index - GAP / 2.0:.0f} '
                     f'{PLOT + 4}) rotate(-90)"{zero}>{esc(edge_text(edge))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram_figure(counts: Sequence[int], edges: Sequence[float]) -> str:
    """The SVG with a caption that says how to read it."""
    return (f'<figure class="neuron-hist">{histogram_svg(counts, edges)}'
            f"<figcaption class=\"meta\">All {sum(counts):,} activations in {len(counts)} "
            "bins, one per power of two in magnitude (the edges are written under the bars; "
            "blue above zero, orange below; the outer bins are open); bar height on a log "
            f"scale of the count, the tallest {max(counts, default=0):,}. Hover a bar for "
            "its interval and count.</figcaption></figure>")
