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
from matplotlib.figure import Figure  # noqa: E402


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
        for layer in range(n_layers):
            for head in range(n_heads):
                value = grid[layer, head]
                if not np.isnan(value):
                    ax.text(head, layer, f"{value:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if value < 0.6 * vmax else "black")
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
