"""`lensbatch report`: the page's sections, its self-containment, and a real render.

The per-head tables (head_totals, induction_hit_tokens, probes, probe_heads) are filled
by hand with known scores, so each section's content can be checked exactly.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.image as mpimg
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
    for anchor in ("induction-heads", "prev-token-heads", "probe"):
        assert f'id="{anchor}"' not in page
    assert "documents evaluated</th><td>4 / 4" in page
    # left unset, the batch size is each worker's choice for its device
    assert "setting: batch_tokens</th><td>worker default</td>" in page


def test_report_with_head_tables(job_with_heads: tuple[Engine, str]) -> None:
    engine, job_id = job_with_heads
    page = render(engine, job_id)
    # histogram, scatter, 2 corpus heatmaps, probe bars, probe heatmap
    assert len(assert_self_contained(page)) == 6
    induction_part = page.split('id="induction-heads"')[1].split("</section>")[0]
    assert 'alt="Induction score (layer x head)"' in induction_part
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
