"""The results table: printed for people, written as JSON for machines."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO


@dataclass(frozen=True)
class Row:
    row: str  # a-j, as in docs/performance.md
    name: str
    value: float | None  # None: not measured (see note)
    unit: str
    ratio: float | None = None  # against the row named in `note`
    target: str = ""
    met: bool | None = None
    note: str = ""


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"


def print_table(rows: list[Row], out: TextIO | None = None) -> None:
    header = ("row", "measure", "value", "unit", "ratio", "target", "met", "note")
    cells = [header] + [
        (r.row, r.name, _fmt(r.value), r.unit, "-" if r.ratio is None else f"{r.ratio:.2f}",
         r.target, {True: "yes", False: "NO", None: "-"}[r.met], r.note)
        for r in rows
    ]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(header))]
    for i, cell in enumerate(cells):
        print("  ".join(str(v).ljust(w) for v, w in zip(cell, widths, strict=True)).rstrip(),
              file=out)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=out)


def write_json(directory: Path, rows: list[Row], meta: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    device = str(meta.get("device", "")).replace(":", "")
    path = directory / f"bench-{device}-{meta.get('dtype', '')}-{stamp}.json"
    path.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
    return path
