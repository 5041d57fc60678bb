"""`lensbatch report`: the page's sections, its self-containment, and a real render.

The per-head tables (head_totals, induction_hit_tokens, probes, probe_heads) are filled
by hand with known scores, so each section's content can be checked exactly.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from sqlalchemy import Engine, delete, update

from lensbatch.store import schema
from lensbatch.store.packing import pack_bits, pack_positions
from lensbatch.store.totals import head_total_rows
from scheduler.report.page import render, write_report
from scheduler.report.text import Hit, highlight
from tests.jobdb import finished_job, write_corpus

head_totals = schema.head_totals
induction_hit_tokens = schema.induction_hit_tokens
probes = schema.probes
probe_heads = schema.probe_heads
IMG_SRC = re.compile(r'<img [^>]*src="([^"]+)"')


def induction(layer: int, head: int) -> float:
    """Hand-made scores: head 1.2 is the induction head, 0.3 the previous-token head."""
    return 0.9 if (layer, head) == (1, 2) else 0.05 * (layer * 4 + head) / 8


def clear_head_rows(engine: Engine, job_id: str) -> None:
    """Remove what the pipeline computed for the job's heads and probe."""
    with engine.begin() as connection:
        for table in (probe_heads, probes, head_totals, induction_hit_tokens):
            connection.execute(delete(table).where(table.c.job_id == job_id))


def add_head_tables(engine: Engine, job_id: str) -> None:
    """Replace the job's per-head rows with hand-made ones whose answers are known."""
    clear_head_rows(engine, job_id)
    with engine.begin() as connection:
        # Four documents' per-head scores, [layer][head] per score, summed as a task does.
        documents = [
            {"prev_token_score": [[0.97 if (layer, head) == (0, 3) else 0.1
                                   for head in range(4)] for layer in range(2)],
             "induction_score": [[None if seq == 2 else induction(layer, head)
                                  for head in range(4)] for layer in range(2)],
             "attn_entropy": [[1.0] * 4 for _ in range(2)],
             "bos_attention": [[0.5] * 4 for _ in range(2)]}
            for seq in range(4)]
        connection.execute(head_totals.insert(), head_total_rows(job_id, 0, documents))
        # Document 0 is "The cat sat on the mat. The cat sat on the mat. The cat sat."
        # Hits " cat", " sat" (novel) and " mat" at positions 9, 10 and 13.
        connection.execute(induction_hit_tokens.insert().values(
            job_id=job_id, seq=0, positions=pack_positions([9, 10, 13]),
            novel=pack_bits([False, True, False])))
        # the untrained tiny model predicts no repeat; make its results agree with the hits
        connection.execute(update(schema.results).where(
            schema.results.c.job_id == job_id, schema.results.c.seq == 0
        ).values(induction_hits=3, induction_novel_hits=1))
        connection.execute(probes.insert().values(
            job_id=job_id, model="tiny", n_tokens=50, first_copy_loss=11.9,
            second_copy_loss=0.42, created_at=datetime.now(UTC)))
        connection.execute(probe_heads.insert(), [
            {"job_id": job_id, "layer": layer, "head": head,
             "induction_score": induction(layer, head), "prev_token_score": 0.1}
            for layer in range(2) for head in range(4)])


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: str) -> tuple[Engine, str]:
    tmp = tmp_path_factory.mktemp("report")
    corpus = write_corpus(tmp / "corpus.jsonl")
    engine, job_id = finished_job(f"sqlite:///{tmp / 'lensbatch.db'}", tiny_checkpoint, corpus)
    clear_head_rows(engine, job_id)
    return engine, job_id


@pytest.fixture(scope="module")
def job_with_heads(tmp_path_factory: pytest.TempPathFactory,
                   tiny_checkpoint: str) -> tuple[Engine, str]:
    tmp = tmp_path_factory.mktemp("report-heads")
    corpus = write_corpus(tmp / "corpus.jsonl")
    engine, job_id = finished_job(f"sqlite:///{tmp / 'lensbatch.db'}", tiny_checkpoint, corpus)
    add_head_tables(engine, job_id)
    return engine, job_id


def assert_self_contained(page: str) -> list[bytes]:
    """No external reference; every image an inline PNG that decodes. Returns the PNGs."""
    assert not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', page, re.IGNORECASE)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    pngs = []
    for src in IMG_SRC.findall(page):
        assert src.startswith("data:image/png;base64,"), src[:60]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert mpimg.imread(io.BytesIO(data), format="png").shape[0] > 50
        pngs.append(data)
    return pngs


def test_report_without_head_rows(job: tuple[Engine, str]) -> None:
    engine, job_id = job
    page = render(engine, job_id)
    assert len(assert_self_contained(page)) == 2  # loss histogram, loss vs length
    for anchor in ("settings", "model", "corpus", "loss-histogram", "loss-length",
                   "induction-docs"):
        assert f'id="{anchor}"' in page
    for anchor in ("induction-heads", "prev-token-heads", "probe", "activations"):
        assert f'id="{anchor}"' not in page
    assert "documents evaluated</th><td>4 / 4" in page
    # left unset, the batch size is each worker's choice for its device
    assert "setting: batch_tokens</th><td>worker default</td>" in page


def test_report_with_head_tables(job_with_heads: tuple[Engine, str]) -> None:
    engine, job_id = job_with_heads
    page = render(engine, job_id)
    # histogram, scatter, probe bars (the heatmaps are HTML tables)
    assert len(assert_self_contained(page)) == 3
    induction_part = page.split('id="induction-heads"')[1].split("</section>")[0]
    assert 'aria-label="Induction score (layer x head)"' in induction_part
    assert re.search(r'title="head 1\.2 \(layer 1, head 2\): 0\.900">0\.90</td>',
                     induction_part)
    # the top-heads table lists head 1.2 first with its mean over documents 0, 1, 3
    assert re.search(r"<tr><td>1\.2</td><td>0\.900</td></tr>", induction_part)
    prev_part = page.split('id="prev-token-heads"')[1].split("</section>")[0]
    assert re.search(r"<tr><td>0\.3</td><td>0\.970</td></tr>", prev_part)
    probe_part = page.split('id="probe"')[1].split("</section>")[0]
    assert "<td>11.900</td><td>0.420</td>" in probe_part
    docs_part = page.split('id="induction-docs"')[1]
    # positions 9, 10, 13 (BOS is 0) are the second "cat", "sat" and "mat": the tokenizer's
    # offsets place the marks there, not on the first occurrence
    assert ('The cat sat on the mat. The <mark>cat</mark> <mark class="novel">sat</mark> '
            "on the <mark>mat</mark>. The cat sat.") in docs_part


def section_ids(page: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)">', page)


def kv_labels(page: str, anchor: str) -> list[str]:
    """The row labels of a section's key-value table, in order."""
    part = page.split(f'<section id="{anchor}">')[1].split("</section>")[0]
    return [html.unescape(label) for label in re.findall(r"<tr><th>(.*?)</th>", part)]


def test_report_leads_with_the_findings(job_with_heads: tuple[Engine, str]) -> None:
    """Corpus numbers first, then the top heads, then the hardest documents; the model
    card and the settings close the page."""
    engine, job_id = job_with_heads
    page = render(engine, job_id)
    ids = section_ids(page)
    assert ids[0] == "corpus"
    assert ids.index("prev-token-heads") < ids.index("hardest-docs")
    assert ids.index("induction-heads") < ids.index("hardest-docs")
    assert ids.index("hardest-docs") < ids.index("loss-histogram")
    assert ids[-2:] == ["model", "settings"]
    # the contents line at the top links every section, in the page's order
    assert re.findall(r'<a href="#([^"]+)">', page.split("</nav>")[0]) == ids
    corpus = page.split('<section id="corpus">')[1].split("</section>")[0]
    assert re.search(r"<th>loss \(token-weighted, nats\)</th><td>[\d.]+ \[[\d.]+, [\d.]+\]",
                     corpus)  # with its 95% interval
    heads = page.split('<section id="induction-heads">')[1]
    assert heads.index("Top heads") < heads.index('<table class="heat"')


def test_model_card_and_settings_show_each_fact_once(
        job_with_heads: tuple[Engine, str]) -> None:
    engine, job_id = job_with_heads
    page = render(engine, job_id, rescore=False)
    card, settings = kv_labels(page, "model"), kv_labels(page, "settings")
    assert len(card) == len(set(card)) and len(settings) == len(set(settings))
    # the card's architecture rows say the norm and the positions in words
    assert "Norm" in card and "Positional scheme" in card
    assert "normalization_type" not in card and "positional_embedding_type" not in card
    assert "model" in settings and "setting: model" not in settings
    norm = page.split("<tr><th>Norm</th><td>")[1].split("</td>")[0]
    assert norm == "LayerNorm"  # the tiny GPT-2's normalization_type LN, shown once


def heat_cells(table: str) -> list[tuple[str, str]]:
    """(title, text) of each cell of one heatmap table."""
    return re.findall(r'<td [^>]*title="([^"]*)">([^<]*)</td>', table)


def test_heatmaps_are_legible_with_a_tooltip_on_every_cell(
        job_with_heads: tuple[Engine, str]) -> None:
    from scheduler.report.heatmap import LABEL_MAX_HEADS, heatmap
    from scheduler.report.html import STYLE

    rule = re.search(r"table\.heat td \{[^}]*font-size: (\d+)px", STYLE)
    assert rule is not None and int(rule.group(1)) >= 11
    axis = re.search(r"table\.heat th \{[^}]*font-size: (\d+)px", STYLE)
    assert axis is not None and int(axis.group(1)) >= 11
    engine, job_id = job_with_heads
    part = render(engine, job_id, rescore=False).split('id="prev-token-heads"')[1]
    table = part.split('<table class="heat"')[1].split("</table>")[0]
    assert "layer \\ head" in table  # the axes: rows are layers, columns heads
    cells = heat_cells(table)
    assert len(cells) == 8 and all(text for _, text in cells)  # 2 layers x 4 heads, labelled
    assert ("head 0.3 (layer 0, head 3): 0.970", "0.97") in cells
    # many heads: cells too small for a label, but each keeps its tooltip
    grid = np.arange(4 * 32, dtype=float).reshape(4, 32) / 128
    grid[2, 5] = np.nan
    dense = heatmap(grid, "many heads")
    assert 32 > LABEL_MAX_HEADS and 'class="heat dense"' in dense
    titles = re.findall(r'<td [^>]*title="([^"]*)">([^<]*)</td>', dense)
    assert len(titles) == 4 * 32 and not any(text for _, text in titles)
    assert "head 2.5: no data" in dense and "head 3.31 (layer 3, head 31): 0.992" in dense


def test_highlight_falls_back_to_search_and_escapes() -> None:
    hits = [Hit(1, " <b>", False), Hit(2, "zzz", True), Hit(3, " <b>", True)]
    out = highlight("a <b> a <b>", hits)  # no spans: search after the previous mark
    assert out == 'a <mark>&lt;b&gt;</mark> a <mark class="novel">&lt;b&gt;</mark>'


def test_highlight_uses_spans_with_and_without_bos() -> None:
    text = "x y x y"
    spans = [(0, 1), (1, 3), (3, 5), (5, 7)]  # "x", " y", " x", " y"
    assert highlight(text, [Hit(4, " y", False)], spans, bos=True) == "x y x <mark>y</mark>"
    assert highlight(text, [Hit(3, " y", False)], spans, bos=False) == "x y x <mark>y</mark>"
    # a span whose text does not match the stored token is not trusted: search instead
    assert highlight(text, [Hit(2, " x", False)], spans, bos=True) == "<mark>x</mark> y x y"


def screenshot_dir(tmp_path: Path) -> Path:
    """Where the screenshot goes: LENSBATCH_SCREENSHOT_DIR if set (to look at it), else a
    temporary directory; never inside the repository."""
    chosen = os.environ.get("LENSBATCH_SCREENSHOT_DIR")
    path = Path(chosen) if chosen else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium not installed (scripts/install-services.sh installs it)")
def test_report_renders_in_headless_chromium(job_with_heads: tuple[Engine, str],
                                             tmp_path: Path) -> None:
    engine, job_id = job_with_heads
    out_dir = screenshot_dir(tmp_path)
    report = out_dir / "report.html"
    write_report(engine, job_id, report)
    shot = out_dir / "report.png"
    shot.unlink(missing_ok=True)
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,3000", report.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ERR_FILE_NOT_FOUND" not in result.stderr
    assert "Failed to load resource" not in result.stderr
    pixels = mpimg.imread(shot)  # [height, width, channels], floats in [0, 1]
    assert pixels.shape[:2] == (3000, 1200)
    # a blank page is one colour; the heatmaps and plots make many
    assert len({tuple(p) for p in pixels[::20, ::20, :3].reshape(-1, 3).round(2)}) > 50


def test_plots_read_a_bounded_sample_and_sql_counts(job: tuple[Engine, str]) -> None:
    """The scatter plot samples every k-th document by seq; the histogram is counted in
    SQL over every document."""
    from lensbatch.store import report_data

    engine, job_id = job
    assert [row.seq for row in report_data.sample_rows(engine, job_id, limit=2)] == [0, 2]
    assert [row.seq for row in report_data.sample_rows(engine, job_id)] == [0, 1, 2, 3]
    counted = report_data.loss_histogram(engine, job_id)
    assert counted is not None and sum(counted.counts) == 4
    assert len(counted.edges) == len(counted.counts) + 1 == 6
    top = report_data.top_induction_rows(engine, job_id, 5)
    assert all(row.induction_hits > 0 for row in top)
