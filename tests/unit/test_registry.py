"""The metric registry drives the schema, the summary, the output and the views."""

from __future__ import annotations

from dataclasses import fields

import pytest
from sqlalchemy import inspect

from lensbatch.evaluation import DocMetrics
from lensbatch.metrics import (
    DOC_METRICS,
    HEAD_SCORE_NAMES,
    LISTED_METRICS,
    STORED_METRICS,
    Ratio,
    corpus_value,
)
from lensbatch.store import schema
from lensbatch.store.db import ensure_schema
from lensbatch.store.head_queries import HEAD_COLUMNS
from lensbatch.store.queries import RESULT_COLUMNS


def test_doc_metrics_hold_the_stored_metrics_in_registry_order() -> None:
    assert [f.name for f in fields(DocMetrics)] == [m.name for m in STORED_METRICS]


def test_every_rate_names_summed_metrics() -> None:
    summed = {m.name for m in DOC_METRICS if m.corpus == "sum"}
    rates = [m.corpus for m in DOC_METRICS if isinstance(m.corpus, Ratio)]
    assert rates and all({r.numerator, r.denominator} <= summed for r in rates)


def test_schema_and_output_columns_come_from_the_registry() -> None:
    result_columns = [c.name for c in schema.results.columns]
    assert result_columns == ["job_id", "seq", *(m.name for m in STORED_METRICS),
                              "worker", "created_at"]
    assert [c.name for c in schema.head_scores.columns][4:] == list(HEAD_SCORE_NAMES)
    assert RESULT_COLUMNS == ("doc_id", *LISTED_METRICS)
    assert "n_windows" not in RESULT_COLUMNS and "induction_hit_rate" not in RESULT_COLUMNS
    assert HEAD_COLUMNS[3:7] == HEAD_SCORE_NAMES


def test_corpus_value_is_a_rate_of_sums() -> None:
    totals = {m.name: 0.0 for m in DOC_METRICS if m.corpus == "sum"}
    totals.update(nll_sum=30.0, n_predictions=10.0, induction_hits=1.0,
                  induction_candidates=4.0)
    assert corpus_value("loss", totals) == 3.0
    assert corpus_value("induction_hit_rate", totals) == 0.25
    assert corpus_value("nll_sum", totals) == 30.0
    assert corpus_value("accuracy", {**totals, "n_predictions": 0.0}) is None


@pytest.mark.parametrize("view", ["v_results", "v_jobs"])
def test_views_have_a_column_per_metric(sqlite_url: str, view: str) -> None:
    engine = ensure_schema(sqlite_url)
    columns = [c["name"] for c in inspect(engine).get_columns(view)]
    metrics = [m.name for m in DOC_METRICS]
    assert [c for c in columns if c in metrics] == metrics
