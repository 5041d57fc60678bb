"""The SQL views, rendered from the metric registry so that a new metric appears in them.

v_results: one row per (job, document), every metric (stored, or a rate worked out per
document) with the document's corpus id, source, length and the job's model.
v_jobs: one row per job, every metric as its corpus number (sums; rates of sums).
v_head_scores and v_probe_heads: the per-head tables with their job and document.

Views are derived, not migrated: migrations/env.py drops them before any migration
runs and creates them again, from the registry as it is now, once the schema is at
the newest revision.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

from lensbatch.metrics import DOC_METRICS, Ratio

VIEW_NAMES = ("v_results", "v_jobs", "v_head_scores", "v_probe_heads")
DROP_STATEMENTS = tuple(f"DROP VIEW IF EXISTS {name}" for name in reversed(VIEW_NAMES))
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")


def _rate(numerator: str, denominator: str) -> str:
    return (f"CASE WHEN {denominator} > 0 THEN CAST({numerator} AS FLOAT) / {denominator} "
            "END")


def _document_column(name: str) -> str:
    corpus = next(m.corpus for m in DOC_METRICS if m.name == name)
    stored = next(m.stored for m in DOC_METRICS if m.name == name)
    if stored or not isinstance(corpus, Ratio):
        return f"r.{name}"
    return f"{_rate('r.' + corpus.numerator, 'r.' + corpus.denominator)} AS {name}"


def _job_column(name: str) -> str:
    corpus = next(m.corpus for m in DOC_METRICS if m.name == name)
    if isinstance(corpus, Ratio):
        rate = _rate(f"SUM(r.{corpus.numerator})", f"SUM(r.{corpus.denominator})")
        return f"{rate} AS {name}"
    return f"COALESCE(SUM(r.{name}), 0) AS {name}"


def view_statements() -> list[str]:
    """CREATE VIEW statements, in VIEW_NAMES order. Column names come from the
    registry's constant declarations, never from input, and are checked to be plain
    identifiers."""
    bad = [m.name for m in DOC_METRICS if not IDENTIFIER.fullmatch(m.name)]
    if bad:
        raise ValueError(f"metric names must be SQL identifiers: {bad}")
    per_document = ",\n       ".join(_document_column(m.name) for m in DOC_METRICS)
    per_job = ",\n       ".join(_job_column(m.name) for m in DOC_METRICS)
    return [
        f"""CREATE VIEW v_results AS
SELECT r.job_id, j.model, r.seq, jd.doc_id, jd.source, d.n_chars,
       {per_document},
       r.worker, r.created_at
FROM results r
JOIN job_documents jd ON jd.job_id = r.job_id AND jd.seq = r.seq
JOIN documents d ON d.id = jd.document_id
JOIN jobs j ON j.id = r.job_id""",
        f"""CREATE VIEW v_jobs AS
SELECT j.id AS job_id, j.model, j.status, j.corpus, j.n_documents,
       COUNT(r.seq) AS documents_done,
       {per_job},
       j.created_at, j.started_at, j.finished_at
FROM jobs j
LEFT JOIN results r ON r.job_id = j.id
GROUP BY j.id, j.model, j.status, j.corpus, j.n_documents, j.created_at, j.started_at,
         j.finished_at""",
        """CREATE VIEW v_head_scores AS
SELECT h.*, j.model, jd.doc_id, jd.source
FROM head_scores h
JOIN jobs j ON j.id = h.job_id
JOIN job_documents jd ON jd.job_id = h.job_id AND jd.seq = h.seq""",
        """CREATE VIEW v_probe_heads AS
SELECT ph.*, p.model, p.first_copy_loss, p.second_copy_loss
FROM probe_heads ph
JOIN probes p ON p.job_id = ph.job_id""",
    ]


def drop_views(connection: Connection) -> None:
    for statement in DROP_STATEMENTS:
        connection.execute(text(statement))


def create_views(connection: Connection) -> None:
    drop_views(connection)
    for statement in view_statements():
        connection.execute(text(statement))
