"""matplotlib figures as embedded <img> tags (base64 PNG), so a report needs no files."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display: reports are written on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lensbatch.bootstrap import Interval  # noqa: E402


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


def heatmap(grid: np.ndarray, title: str, vmax: float = 1.0) -> str:
    """grid: [n_layers, n_heads]; NaN cells (no data) are left blank. Every cell is
    labelled so a head can be read off as layer.head."""
    n_layers, n_heads = grid.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * n_heads + 1.5), max(2.5, 0.45 * n_layers + 1)))
    image = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.04)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers))
    ax.set_title(title)
    if n_layers * n_heads <= 400:
        _label_cells(ax, grid, vmax)
    return img_tag(fig, title)


def _label_cells(ax: Axes, grid: np.ndarray, vmax: float, fontsize: float = 6) -> None:
    """Write each cell's value on a [n_layers, n_heads] heatmap (NaN cells stay blank)."""
    for layer in range(grid.shape[0]):
        for head in range(grid.shape[1]):
            value = grid[layer, head]
            if not np.isnan(value):
                ax.text(head, layer, f"{value:.2f}", ha="center", va="center",
                        fontsize=fontsize, color="white" if value < 0.6 * vmax else "black")


def small_heatmaps(grids: Sequence[np.ndarray], titles: Sequence[str], title: str,
                   vmax: float = 1.0) -> str:
    """Small multiples: one [n_layers, n_heads] heatmap per grid, in order, on one
    colour scale (0 to vmax), up to five to a row."""
    columns = min(len(grids), 5)
    rows = -(-len(grids) // columns)
    n_layers, n_heads = max(g.shape[0] for g in grids), max(g.shape[1] for g in grids)
    width, height = max(2.2, 0.35 * n_heads + 0.8), max(1.8, 0.3 * n_layers + 1.0)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * width + 1, rows * height + 0.6),
                             squeeze=False, layout="constrained")
    image = None
    for ax, grid, name in zip(axes.ravel(), grids, titles, strict=False):
        image = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        ax.set_title(name, fontsize=8)
        ax.set_xticks(range(grid.shape[1]))
        ax.set_yticks(range(grid.shape[0]))
        ax.tick_params(labelsize=6)
        if grid.size <= 64:
            _label_cells(ax, grid, vmax, fontsize=5)
    for ax in axes.ravel()[len(grids):]:
        ax.axis("off")
    axes[-1, 0].set_xlabel("head", fontsize=8)
    axes[-1, 0].set_ylabel("layer", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8)
    fig.suptitle(title)
    return img_tag(fig, title)


def _bar(interval: Interval) -> tuple[float, float, float]:
    """(value, distance down to the low bound, distance up to the high bound)."""
    value = float(interval.value or 0.0)
    low = value if interval.low is None else interval.low
    high = value if interval.high is None else interval.high
    return value, value - low, high - value


def interval_panels(x: Sequence[float], ticks: Sequence[str],
                    panels: Sequence[tuple[str, Sequence[Interval]]], xlabel: str) -> str:
    """One panel per metric: its value at each x with the 95% interval as error bars;
    `ticks` label the x positions."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, values) in zip(axes[0], panels, strict=True):
        points = [(xi, _bar(iv)) for xi, iv in zip(x, values, strict=True)
                  if iv.value is not None]
        xs = [xi for xi, _ in points]
        ys, below, above = ([bar[k] for _, bar in points] for k in range(3))
        ax.errorbar(xs, ys, yerr=[below, above], marker="o", capsize=3, color="#4c72b0")
        ax.set_title(name, fontsize=10)
        ax.set_xticks(list(x))
        ax.set_xticklabels(ticks, rotation=30, ha="right", fontsize=7)
        ax.set_xlabel(xlabel)
    fig.tight_layout()
    return img_tag(fig, "Metrics across the sweep")


def bars(labels: Sequence[str], values: Sequence[float], ylabel: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(labels, values, color=["#c44e52", "#55a868"][: len(values)] or None)
    for i, value in enumerate(values):
        ax.text(i, value, f"{value:.2f}", ha="center", va="bottom")
    ax.margins(y=0.15)  # room for the value labels under the title
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return img_tag(fig, title)
