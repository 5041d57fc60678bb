"""matplotlib figures as embedded <img> tags (base64 PNG) or inline <svg>, so a report
needs no files."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display: reports are written on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lensbatch.bootstrap import Interval  # noqa: E402


def svg_tag(fig: Figure) -> str:
    """Render and close `fig`; return it as an inline <svg> (text kept as text, no
    metadata, nothing external)."""
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "lensbatch"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)


def img_tag(fig: Figure, alt: str) -> str:
    """Render and close `fig`; return an <img> with the PNG inline."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def histogram(edges: Sequence[float], counts: Sequence[int], xlabel: str, title: str) -> str:
    """Bins counted elsewhere (in SQL): len(edges) == len(counts) + 1."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.stairs(counts, edges, fill=True, color="#4c72b0")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("documents")
    ax.set_title(title)
    return img_tag(fig, title)


def scatter(x: Sequence[float], y: Sequence[float], labels: tuple[str, str], title: str) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.scatter(x, y, s=14, alpha=0.7, color="#dd8452")
    ax.set_xscale("log")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title)
    return img_tag(fig, title)


def _bar(interval: Interval) -> tuple[float, float, float]:
    """(value, distance down to the low bound, distance up to the high bound)."""
    value = float(interval.value or 0.0)
    low = value if interval.low is None else interval.low
    high = value if interval.high is None else interval.high
    return value, value - low, high - value


def interval_panels(x: Sequence[float], ticks: Sequence[str],
                    panels: Sequence[tuple[str, Sequence[Interval]]], xlabel: str,
                    connect: bool) -> str:
    """One panel per metric: its value at each x with the 95% interval as error bars;
    `ticks` label the x positions. connect: join the points with a line (group id
    trend-<metric>), which only a training-step axis warrants; otherwise each model is
    a point of its own (group id points-<metric>, the label lower-cased, runs of other
characters made "-"). An inline SVG."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, values) in zip(axes[0], panels, strict=True):
        points = [(xi, _bar(iv)) for xi, iv in zip(x, values, strict=True)
                  if iv.value is not None]
        if connect:
            points.sort(key=lambda point: point[0])
        xs = [xi for xi, _ in points]
        ys, below, above = ([bar[k] for _, bar in points] for k in range(3))
        drawn = ax.errorbar(xs, ys, yerr=[below, above], marker="o", capsize=3,
                            color="#4c72b0", linestyle="-" if connect else "none")
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        drawn.lines[0].set_gid(f"{'trend' if connect else 'points'}-{slug}")
        ax.set_title(name, fontsize=11)
        ax.set_xticks(list(x))
        ax.set_xticklabels(ticks, rotation=30, ha="right", fontsize=9)
        ax.set_xlabel(xlabel)
        if not connect:
            ax.margins(x=0.25)
    fig.tight_layout()
    return svg_tag(fig)


def paired_scatter(x: Sequence[float], y: Sequence[float], labels: tuple[str, str],
                   title: str) -> str:
    """One point per document, x against y, on equal axes with the diagonal y = x
    drawn: points under it are documents whose y is lower."""
    fig, ax = plt.subplots(figsize=(5.2, 5.2))
    ax.scatter(x, y, s=12, alpha=0.6, color="#4c72b0")
    both = [*x, *y]
    low, high = min(both), max(both)
    pad = 0.05 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="#888",
            linestyle="--", linewidth=1, label="equal loss")
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.legend(loc="upper left", fontsize=9)
    ax.set_title(title)
    return img_tag(fig, title)


def bars(labels: Sequence[str], values: Sequence[float], ylabel: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(labels, values, color=["#c44e52", "#55a868"][: len(values)] or None)
    for i, value in enumerate(values):
        ax.text(i, value, f"{value:.2f}", ha="center", va="bottom")
    ax.margins(y=0.15)  # room for the value labels under the title
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return img_tag(fig, title)
