"""Views for plain-SQL queries without join keys: v_results, v_jobs, v_head_scores and
v_probe_heads.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# One row per (job, document): every metric, plus the document's corpus id, source,
# length in characters, and the job's model.
V_RESULTS = """
CREATE VIEW v_results AS
SELECT r.job_id, j.model, r.seq, jd.doc_id, jd.source, d.n_chars,
       r.n_tokens, r.n_predictions, r.nll_sum, r.loss, r.n_correct, r.accuracy,
       r.induction_candidates, r.induction_hits, r.induction_novel_hits,
       CASE WHEN r.induction_candidates > 0
            THEN CAST(r.induction_hits AS FLOAT) / r.induction_candidates END
         AS induction_hit_rate,
       r.n_windows, r.worker, r.created_at
FROM results r
JOIN job_documents jd ON jd.job_id = r.job_id AND jd.seq = r.seq
JOIN documents d ON d.id = jd.document_id
JOIN jobs j ON j.id = r.job_id
"""

# One row per job with its corpus-level numbers (token-weighted loss).
V_JOBS = """
CREATE VIEW v_jobs AS
SELECT j.id AS job_id, j.model, j.status, j.corpus, j.n_documents,
       COUNT(r.seq) AS documents_done,
       COALESCE(SUM(r.n_tokens), 0) AS n_tokens,
       CASE WHEN SUM(r.n_predictions) > 0
            THEN SUM(r.nll_sum) / SUM(r.n_predictions) END AS loss,
       CASE WHEN SUM(r.n_predictions) > 0
            THEN CAST(SUM(r.n_correct) AS FLOAT) / SUM(r.n_predictions) END AS accuracy,
       CASE WHEN SUM(r.induction_candidates) > 0
            THEN CAST(SUM(r.induction_hits) AS FLOAT) / SUM(r.induction_candidates) END
         AS induction_hit_rate,
       j.created_at, j.started_at, j.finished_at
FROM jobs j
LEFT JOIN results r ON r.job_id = j.id
GROUP BY j.id, j.model, j.status, j.corpus, j.n_documents, j.created_at, j.started_at,
         j.finished_at
"""

# Per-head scores and the probe (tables of migration 0002), with the job and document.
V_HEAD_SCORES = """
CREATE VIEW v_head_scores AS
SELECT h.*, j.model, jd.doc_id, jd.source
FROM head_scores h
JOIN jobs j ON j.id = h.job_id
JOIN job_documents jd ON jd.job_id = h.job_id AND jd.seq = h.seq
"""

V_PROBE_HEADS = """
CREATE VIEW v_probe_heads AS
SELECT ph.*, p.model, p.first_copy_loss, p.second_copy_loss
FROM probe_heads ph
JOIN probes p ON p.job_id = ph.job_id
"""

VIEWS = (V_RESULTS, V_JOBS, V_HEAD_SCORES, V_PROBE_HEADS)


def upgrade() -> None:
    for sql in VIEWS:
        op.execute(sql)


def downgrade() -> None:
    for name in ("v_probe_heads", "v_head_scores", "v_jobs", "v_results"):
        op.execute(f"DROP VIEW IF EXISTS {name}")
