"""The report's sweep page and hardest documents: self-contained, rendered by headless
Chromium, and every number shown matching the database."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from lensbatch.jobspec import JobSpec
from lensbatch.store import schema
from lensbatch.store.db import ensure_schema
from lensbatch.store.jobs import Member
from lensbatch.store.queries import job_summary
from scheduler.compare_view import job_intervals
from scheduler.output import interval_text
from scheduler.report.page import render, write_report
from scheduler.report.sweep import render_sweep
from tests.jobdb import repeated_corpus
from tests.unit.test_report import assert_self_contained, screenshot_dir

CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--no-first-run"]
needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium")


def run_sweep(tmp: Path, steps: tuple[int | None, int | None]) -> tuple[Engine, str, list[str]]:
    """toy-induction-ablated, then toy-induction, over documents that repeat a phrase."""
    from scheduler.local import run_jobs_local

    engine = ensure_schema(f"sqlite:///{tmp / 'lensbatch.db'}")
    members = [Member(JobSpec(model="toy-induction-ablated").validate(), steps[0]),
               Member(JobSpec(model="toy-induction").validate(), steps[1])]
    reports = run_jobs_local(engine, str(repeated_corpus(tmp / "c.jsonl", 14)), members, "cpu")
    sweep = reports[0].summary.sweep
    assert sweep is not None
    return engine, sweep.sweep_id, [r.summary.job_id for r in reports]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, str, list[str]]:
    """Two 'checkpoints' in training order: the induction head off (step 0), then on
    (step 1000)."""
    return run_sweep(tmp_path_factory.mktemp("sweep-report"), (0, 1000))


@pytest.fixture(scope="module")
def models_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, str, list[str]]:
    """The same two models given as models, no training steps."""
    return run_sweep(tmp_path_factory.mktemp("models-report"), (None, None))


@pytest.fixture(scope="module")
def job_pages(sweep: tuple[Engine, str, list[str]]) -> list[str]:
    """The job page of each of the sweep's jobs, hardest documents drawn."""
    engine, _, job_ids = sweep
    return [render(engine, job_id) for job_id in job_ids]


def stored_loss(engine: Engine, job_id: str) -> float:
    r = schema.results
    with engine.connect() as connection:
        nll, predictions = connection.execute(
            select(func.sum(r.c.nll_sum), func.sum(r.c.n_predictions))
            .where(r.c.job_id == job_id)).one()
    return float(nll) / float(predictions)


def jobs_table(page: str) -> list[list[str]]:
    """The cells of the sweep page's jobs table, row by row (header left out)."""
    table = page.split('<div id="sweep-jobs">')[1].split("</table>")[0]
    return [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
            for row in table.split("<tr>")[2:]]


def check_sweep_numbers(page: str, engine: Engine, job_ids: list[str]) -> None:
    rows = jobs_table(page)
    assert [row[1:4] for row in rows] == [["0", job_ids[0], "toy-induction-ablated"],
                                          ["1000", job_ids[1], "toy-induction"]]
    for row, job_id in zip(rows, job_ids, strict=True):
        intervals = job_intervals(engine, job_summary(engine, job_id))
        assert row[6] == interval_text(intervals["loss"])  # what `status` shows too
        assert float(row[6].split()[0]) == pytest.approx(stored_loss(engine, job_id), abs=5e-5)
        assert row[7] == interval_text(intervals["accuracy"])


def test_sweep_report_shows_each_model_in_order(sweep: tuple[Engine, str, list[str]]) -> None:
    engine, sweep_id, job_ids = sweep
    page = render_sweep(engine, sweep_id)
    # the A-vs-B scatter (the metrics are an inline SVG, the heatmaps HTML tables)
    assert len(assert_self_contained(page)) == 1
    check_sweep_numbers(page, engine, job_ids)
    differences = page.split('id="sweep-differences"')[1]
    cells = re.findall(r"<td>(.*?)</td>", differences)
    assert cells[:2] == [job_ids[1], "toy-induction"]
    assert cells[2].startswith("-") and cells[2].endswith("*")  # loss falls, interval < 0
    head_cells = re.findall(r"<td>(.*?)</td>",
                            differences.split("Heads whose scores differ most")[1])
    # job, head, prev_token_score, induction_score, ... differences; 1.2 switched on
    assert head_cells[:2] == [job_ids[1], "1.2"] and float(head_cells[3]) > 0.8


def spans(div: str) -> list[tuple[str, float | None]]:
    """(class, data-loss) of each token span."""
    found = re.findall(r'<span class="([^"]+)" style="[^"]*"(?: data-loss="([^"]+)")?', div)
    return [(css, float(loss) if loss else None) for css, loss in found]


def test_job_report_draws_the_hardest_documents_token_by_token(
        sweep: tuple[Engine, str, list[str]], job_pages: list[str]) -> None:
    engine, _, job_ids = sweep
    job_id, page = job_ids[1], job_pages[1]
    assert_self_contained(page)
    part = page.split('id="hardest-docs"')[1].split("</section>")[0]
    drawn = re.findall(r'<div class="tokens" data-doc="([^"]+)">(.*?)</div>', part)
    r, jd = schema.results, schema.job_documents
    with engine.connect() as connection:
        stored = connection.execute(
            select(jd.c.doc_id, r.c.nll_sum, r.c.n_tokens, r.c.induction_hits,
                   r.c.induction_novel_hits)
            .join(jd, (jd.c.job_id == r.c.job_id) & (jd.c.seq == r.c.seq))
            .where(r.c.job_id == job_id).order_by(r.c.loss.desc()).limit(10)).all()
    assert [doc for doc, _ in drawn] == [row.doc_id for row in stored]
    for (_, div), row in zip(drawn, stored, strict=True):
        tokens = spans(div)
        assert len(tokens) == row.n_tokens
        assert sum(loss for _, loss in tokens if loss is not None) == pytest.approx(
            row.nll_sum, rel=1e-6)
        assert sum(" hit" in css or " novel" in css for css, _ in tokens) == row.induction_hits
        assert sum(" novel" in css for css, _ in tokens) == row.induction_novel_hits
    assert "induction hit" in part and "loss in nats" in part  # the legend


@needs_chromium
def test_sweep_report_renders_in_headless_chromium(sweep: tuple[Engine, str, list[str]],
                                                   tmp_path: Path) -> None:
    engine, sweep_id, job_ids = sweep
    out_dir = screenshot_dir(tmp_path)
    report = out_dir / "sweep-report.html"
    write_report(engine, sweep_id, report)  # a sweep id gives the sweep page
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    dom = subprocess.run([*CHROMIUM, profile, "--dump-dom", report.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    check_sweep_numbers(dom.stdout, engine, job_ids)  # as the browser parsed the page
    shot = out_dir / "sweep-report.png"
    shot.unlink(missing_ok=True)
    result = subprocess.run([*CHROMIUM, profile, f"--screenshot={shot}",
                             "--window-size=1200,2400", report.resolve().as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Failed to load resource" not in result.stderr
    pixels = mpimg.imread(shot)  # [height, width, channels]
    assert pixels.shape[:2] == (2400, 1200)
    assert len({tuple(p) for p in pixels[::20, ::20, :3].reshape(-1, 3).round(2)}) > 50


def test_report_without_tokens_leaves_the_model_unloaded(
        sweep: tuple[Engine, str, list[str]], tmp_path: Path) -> None:
    """`report --no-tokens`: the hardest documents are not scored again, so the job's
    model is never loaded (here it cannot be: its checkpoint is gone)."""
    engine, _, job_ids = sweep
    job_id = job_ids[1]
    jobs = schema.jobs
    with engine.connect() as connection:
        stored = connection.execute(select(jobs.c.settings).where(jobs.c.id == job_id)).one()
    gone = replace(JobSpec.from_json(stored.settings), model=str(tmp_path / "deleted"))
    with engine.begin() as connection:
        connection.execute(jobs.update().where(jobs.c.id == job_id)
                           .values(settings=gone.to_json()))
    try:
        page = render(engine, job_id, rescore=False)
        assert_self_contained(page)
        part = page.split('id="hardest-docs"')[1].split("</section>")[0]
        assert "--no-tokens" in part and "cannot be loaded" not in part
        assert "cannot be loaded" in render(engine, job_id).split('id="hardest-docs"')[1]
    finally:  # the module's other tests share the sweep
        with engine.begin() as connection:
            connection.execute(jobs.update().where(jobs.c.id == job_id)
                               .values(settings=stored.settings))


def drawn_losses(page: str) -> list[float]:
    part = page.split('id="hardest-docs"')[1].split("</section>")[0]
    return [float(v) for v in re.findall(r'data-loss="([^"]+)"', part)]


def legend_scale(page: str) -> tuple[float, float]:
    found = re.search(r'data-scale-low="([^"]+)" data-scale-high="([^"]+)"', page)
    assert found is not None
    return float(found.group(1)), float(found.group(2))


def test_token_colours_follow_the_jobs_own_losses(job_pages: list[str]) -> None:
    """The colour scale runs from the 5th to the 95th percentile of the drawn tokens'
    losses (one nat wide around them when they are equal, as for the ablated model,
    whose every token costs ln 50257), so the ablated and the induction model (near 0
    on the repeats) each get a scale of their own, shown in the legend."""
    scales = []
    for page in job_pages:
        losses = drawn_losses(page)
        low, high = legend_scale(page)
        p5, p95 = (float(np.percentile(losses, q)) for q in (5, 95))
        if p95 - p5 < 1e-5:
            p5, p95 = p5 - 0.5, p95 + 0.5
        assert (low, high) == (pytest.approx(p5, abs=1e-5), pytest.approx(p95, abs=1e-5))
        legend = page.split('data-scale-high="')[1].split("</p>")[0]
        assert re.findall(r">([\d.]+)</span>", legend) == [
            f"{v:.2f}" for v in np.linspace(low, high, 5)]
        shades = re.findall(r'rgba\(214, 39, 40, ([\d.]+)\)" data-loss="([^"]+)"', page)
        assert len(shades) == len(losses)
        for alpha, loss in shades:  # white at the low bound and under, red at the high
            share = min(max((float(loss) - low) / (high - low), 0.0), 1.0)
            assert float(alpha) == pytest.approx(0.85 * share, abs=1e-3)
        scales.append((low, high))
    ablated, induction = scales
    assert ablated[0] > induction[0] + 1 and ablated != induction


def metrics_part(page: str) -> str:
    return page.split('id="sweep-metrics"')[1].split("</section>")[0]


SLUGS = ("loss-token-weighted-nats", "accuracy", "induction-hit-rate")


def test_sweep_of_checkpoints_draws_a_line_across_the_steps(
        sweep: tuple[Engine, str, list[str]]) -> None:
    engine, sweep_id, _ = sweep
    part = metrics_part(render_sweep(engine, sweep_id))
    for slug in SLUGS:  # a path from the first step's point to the second's
        assert re.search(rf'<g id="trend-{slug}">\s*<path d="M [\d.]+ [\d.]+\s+L [\d.]+ [\d.]+',
                         part), slug
    assert 'id="points-' not in part and ">training step</text>" in part


def test_sweep_of_models_draws_points_and_no_line(
        models_sweep: tuple[Engine, str, list[str]]) -> None:
    engine, sweep_id, _ = models_sweep
    part = metrics_part(render_sweep(engine, sweep_id))
    assert 'id="trend-' not in part and "no line joins them" in part
    for slug in SLUGS:  # markers only: the group holds no path of its own
        assert f'<g id="points-{slug}">' in part
        assert not re.search(rf'<g id="points-{slug}">\s*<path', part), slug


def document_losses(engine: Engine, job_id: str) -> dict[str, float]:
    r, jd = schema.results, schema.job_documents
    with engine.connect() as connection:
        rows = connection.execute(
            select(jd.c.doc_id, r.c.nll_sum, r.c.n_predictions)
            .join(jd, (jd.c.job_id == r.c.job_id) & (jd.c.seq == r.c.seq))
            .where(r.c.job_id == job_id)).all()
    return {row.doc_id: row.nll_sum / row.n_predictions for row in rows}


def test_two_models_get_a_per_document_scatter(
        models_sweep: tuple[Engine, str, list[str]]) -> None:
    engine, sweep_id, job_ids = models_sweep
    page = render_sweep(engine, sweep_id)
    part = page.split('id="sweep-scatter"')[1].split("</section>")[0]
    assert len(assert_self_contained(part)) == 1
    a, b = (document_losses(engine, job_id) for job_id in job_ids)
    assert "the 14 documents both jobs scored" in part
    lower = sum(b[doc] < a[doc] for doc in a)
    assert lower > 0  # the induction model does better on repeated phrases
    assert f'<span id="scatter-lower">{lower}</span>' in part
    assert f'<span id="scatter-higher">{sum(b[doc] > a[doc] for doc in a)}</span>' in part
    assert job_ids[0] in part and job_ids[1] in part  # the axes name both jobs
