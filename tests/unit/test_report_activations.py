"""The report's Activations section: present for a job run with --activations and
--stats, each value the mean over documents (and heads) of what activation_stats holds.
(A job without them has no such section: tests/unit/test_report.py.)"""

from __future__ import annotations

import html
import re
from collections import defaultdict

import pytest
from sqlalchemy import Engine, select

from lensbatch.jobspec import JobSpec
from lensbatch.store import schema
from lensbatch.store.db import ensure_schema
from scheduler.options import job_spec
from scheduler.report.page import render
from tests.jobdb import write_corpus
from tests.unit.test_report import assert_self_contained


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: str) -> tuple[Engine, str]:
    from scheduler.local import run_local

    tmp = tmp_path_factory.mktemp("report-activations")
    corpus = write_corpus(tmp / "corpus.jsonl")
    engine = ensure_schema(f"sqlite:///{tmp / 'lensbatch.db'}")
    spec = job_spec(JobSpec(model=tiny_checkpoint, task_tokens=64), "resid_post,pattern",
                    "mean,norm,absmax")
    return engine, run_local(engine, str(corpus), spec, "cpu").summary.job_id


def stored_means(engine: Engine, job_id: str) -> dict[tuple[str, str], float]:
    """(hook, stat) -> the plain mean of every stored value (documents and heads)."""
    a = schema.activation_stats
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    with engine.connect() as connection:
        for row in connection.execute(select(a.c.hook, a.c.stat, a.c.value)
                                      .where(a.c.job_id == job_id)):
            values[(row.hook, row.stat)].append(float(row.value))
    return {key: sum(found) / len(found) for key, found in values.items()}


def shown_means(part: str) -> dict[tuple[str, str], float]:
    """(hook, stat) -> the value the section's tables show."""
    shown = {}
    for table in re.findall(r'<table class="grid acts" data-hook="[^"]+">(.*?)</table>', part):
        stats = re.findall(r'<th colspan="2">([^<]+)</th>', table)
        for hook, cells in re.findall(r'<tr title="([^"]+)"><td>[^<]*</td>(.*?)</tr>', table):
            values = re.findall(r'<td>([^<]+)</td><td class="bar">', cells)
            for stat, value in zip(stats, values, strict=True):
                shown[(html.unescape(hook), stat)] = float(value)
    return shown


def test_activations_section_shows_the_mean_of_each_stat(job: tuple[Engine, str]) -> None:
    engine, job_id = job
    page = render(engine, job_id, rescore=False)
    assert_self_contained(page)
    part = page.split('<section id="activations">')[1].split("</section>")[0]
    expected = stored_means(engine, job_id)
    # the tiny GPT-2: 2 layers, resid_post and pattern, 3 statistics each
    assert len(expected) == 2 * 2 * 3
    shown = shown_means(part)
    assert shown.keys() == expected.keys()
    for key, value in expected.items():
        assert shown[key] == pytest.approx(value, rel=1e-3), key
    assert "attn.hook_pattern (also averaged over its 4 heads)" in part
    # before the model card and the settings, which close the page
    ids = re.findall(r'<section id="([^"]+)">', page)
    assert ids.index("activations") < ids.index("model") < ids.index("settings")

