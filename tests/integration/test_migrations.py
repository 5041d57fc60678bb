"""The schema is made only by Alembic, identically on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import create_engine, inspect, text

from lensbatch.store import db, schema


def table_columns(url: str) -> dict[str, set[str]]:
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {t: {c["name"] for c in found.get_columns(t)}
                for t in found.get_table_names() if t != "alembic_version"}
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_downgrade_upgrade(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    expected = {t.name: {c.name for c in t.columns} for t in schema.metadata.sorted_tables}
    db.upgrade(url)
    assert table_columns(url) == expected
    db.downgrade(url, "base")
    assert table_columns(url) == {}
    db.upgrade(url)
    assert table_columns(url) == expected


def test_ensure_schema_is_idempotent(sqlite_url: str) -> None:
    db.ensure_schema(sqlite_url)
    db.ensure_schema(sqlite_url)
    assert "results" in table_columns(sqlite_url)


OLD_HEADS = [  # (seq, layer, head, prev_token_score, induction_score, attn_entropy, bos)
    (seq, layer, head, 0.1 * (seq + layer + head), None if seq == 1 else 0.3 * seq + head,
     1.0 + seq, 0.25) for seq in range(3) for layer in range(2) for head in range(3)]
OLD_HITS = [(0, 4, " cat", False), (0, 9, " sat", True), (2, 6, " mat", True)]


def fill_0006(url: str) -> dict[str, object]:
    """A job at revision 0006 with results, per-document head rows and hit tokens;
    returns what the old queries answered (per-head AVG, the job's sums)."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO jobs (id, model, settings, status, corpus, n_documents, n_tasks, "
            "created_at) VALUES ('j', 'm', '{}', 'done', 'c', 3, 1, CURRENT_TIMESTAMP)"))
        for seq in range(3):
            connection.execute(text(
                "INSERT INTO documents (content_hash, text, n_chars) VALUES (:h, :t, :n)"),
                {"h": f"h{seq}", "t": "x" * (10 + seq), "n": 10 + seq})
            connection.execute(text(
                "INSERT INTO job_documents (job_id, seq, doc_id, document_id, source) "
                "SELECT 'j', :s, :d, id, 'c' FROM documents WHERE content_hash = :h"),
                {"s": seq, "d": f"d{seq}", "h": f"h{seq}"})
            connection.execute(text(
                "INSERT INTO results VALUES ('j', :s, :t, :p, :nll, 2.0, 1, 0.1, 2, 1, 0, 1, "
                "'w', CURRENT_TIMESTAMP)"), {"s": seq, "t": 5 + seq, "p": 4 + seq,
                                             "nll": 2.0 * (4 + seq)})
        connection.execute(text("INSERT INTO head_scores VALUES ('j', :s, :l, :h, :a, :b, :c, :d)"),
                           [dict(zip("slhabcd", row, strict=True)) for row in OLD_HEADS])
        connection.execute(text("INSERT INTO induction_hit_tokens VALUES ('j', :s, :p, :t, :n)"),
                           [dict(zip("sptn", row, strict=True)) for row in OLD_HITS])
        means = connection.execute(text(
            "SELECT layer, head, COUNT(*), AVG(prev_token_score), AVG(induction_score), "
            "AVG(attn_entropy), AVG(bos_attention) FROM head_scores GROUP BY layer, head "
            "ORDER BY layer, head")).all()
        sums = connection.execute(text(
            "SELECT COUNT(*), SUM(n_tokens), SUM(nll_sum) FROM results")).one()
    engine.dispose()
    return {"means": [tuple(row) for row in means], "sums": tuple(sums)}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_0007_moves_existing_rows(backend: str, request: pytest.FixtureRequest) -> None:
    """Counters and per-head sums from the old rows, per-document rows packed, and back."""
    from lensbatch.store.head_queries import head_means
    from lensbatch.store.queries import job_moments, job_summary
    from lensbatch.store.report_data import hit_positions

    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    db.upgrade(url, "0006_crash_attempts")
    before = fill_0006(url)
    db.upgrade(url)
    engine = db.make_engine(url)
    summary = job_summary(engine, "j")
    assert (summary.n_done, summary.totals["n_tokens"], summary.totals["nll_sum"]) == \
        pytest.approx(before["sums"])
    moments = job_moments(engine, "j")  # nll_sum = 2 * n_predictions, n_predictions 4..6
    assert moments["nll_sum_x_n_predictions"] == pytest.approx(2 * (16 + 25 + 36))
    assert moments["induction_candidates_x_induction_candidates"] == pytest.approx(12)
    after = [value for row in head_means(engine, "j") for value in row]
    means = before["means"]
    assert isinstance(means, list)
    assert after == pytest.approx([value for row in means for value in row], rel=1e-12)
    assert hit_positions(engine, "j", 0) == [(4, False), (9, True)]
    assert hit_positions(engine, "j", 2) == [(6, True)] and hit_positions(engine, "j", 1) == []
    with engine.connect() as connection:  # one packed row per document
        assert connection.scalar(text("SELECT COUNT(*) FROM head_scores")) == 3
        n_chars = connection.scalar(text("SELECT n_chars FROM jobs"))
    assert n_chars == 10 + 11 + 12
    engine.dispose()
    db.downgrade(url, "0006_crash_attempts")
    with create_engine(url).connect() as connection:
        heads = connection.execute(text(
            "SELECT seq, layer, head, prev_token_score, induction_score, attn_entropy, "
            "bos_attention FROM head_scores ORDER BY seq, layer, head")).all()
        hits = connection.execute(text(
            "SELECT seq, position, novel FROM induction_hit_tokens ORDER BY seq, position")).all()
    flat = [value if value is not None else math.nan for row in heads for value in row]
    assert flat == pytest.approx([value if value is not None else math.nan
                                  for row in OLD_HEADS for value in row], rel=1e-6, nan_ok=True)
    assert [(s, p, bool(n)) for s, p, n in hits] == [(s, p, n) for s, p, _, n in OLD_HITS]
