"""The SQL schema, as SQLAlchemy Core tables.

The tables are created only by Alembic migrations (migrations/versions); this module
describes them for queries. Keep the two in step: tests/integration/test_migrations.py
compares them. Only lensbatch/store imports this module (and migrations/env.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from lensbatch.corpus import MAX_ID_CHARS
from lensbatch.jobspec import MAX_MODEL_CHARS
from lensbatch.metrics import (
    HEAD_SCORES,
    MOMENTS,
    STORED_METRICS,
    SUMMED_METRICS,
    moment_name,
)

metadata = MetaData()

# Models seen by workers: where they came from and the shapes the seed notebook prints.
models = Table(
    "models",
    metadata,
    Column("name", String(MAX_MODEL_CHARS), primary_key=True),
    Column("source", String(32), nullable=False),  # builtin | local | hub
    Column("config", JSON, nullable=False),
    Column("weight_shapes", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per submitted job; settings holds the full JobSpec (no secrets).
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("model", String(MAX_MODEL_CHARS), nullable=False),
    Column("settings", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # a lensbatch.status.JobStatus
    Column("corpus", Text, nullable=False),
    Column("n_documents", Integer, nullable=False),
    Column("n_tasks", Integer, nullable=False),
    Column("n_chars", BigInteger, nullable=False, server_default="0"),  # of its documents
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # A sweep: jobs of several models over the same documents (`--model A --model B`),
    # in the order given (sweep_index, from 0), with a training step where one is known.
    Column("sweep_id", String(64), nullable=True, index=True),
    Column("sweep_index", Integer, nullable=True),
    Column("sweep_step", BigInteger, nullable=True),
    # The metadata fields of the job's documents, [[field, kind], ...] in first-seen
    # order (lensbatch/docmeta.py): the columns `results` adds.
    Column("metadata_fields", JSON(none_as_null=True), nullable=True),
)

# Document texts, stored once whatever the number of jobs that use them.
documents = Table(
    "documents",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("content_hash", String(64), nullable=False, unique=True),
    Column("text", Text, nullable=False),
    Column("n_chars", Integer, nullable=False),
)

# Which documents a job evaluates: seq is the position in the corpus (0-based) and is
# what task messages carry; doc_id is the corpus's own id (or a generated one).
# attempts counts the tasks that claimed the document (lensbatch/store/attempts.py);
# claimed_by is the pool process (hostname:pid) that last claimed it alone, or null;
# metadata is the user's own fields of the document (lensbatch/docmeta.py).
job_documents = Table(
    "job_documents",
    metadata,
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("doc_id", String(MAX_ID_CHARS), nullable=False),
    Column("document_id", BigInteger().with_variant(Integer, "sqlite"),
           ForeignKey("documents.id"), nullable=False),
    Column("source", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("claimed_by", String(255), nullable=True),
    # The corpus object's fields besides id and text ({"source": "wiki"}), or null.
    Column("metadata", JSON(none_as_null=True), nullable=True),
    UniqueConstraint("job_id", "doc_id", name="uq_job_documents_doc_id"),
)

# One row per (job, document): a column per stored metric of the registry
# (lensbatch/metrics.py); a rate is null for a document with no prediction.
results = Table(
    "results",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    *(Column(m.name, Integer if m.kind == "count" else Float, nullable=m.corpus != "sum")
      for m in STORED_METRICS),
    Column("worker", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(["job_id", "seq"], ["job_documents.job_id", "job_documents.seq"],
                         ondelete="CASCADE"),
)

# Pool processes; heartbeat_at tells which are still alive. exit_status is set by the
# worker's parent process when a pool process exits ("signal 9 (SIGKILL)", "exit code 0").
workers = Table(
    "workers",
    metadata,
    Column("name", String(255), primary_key=True),  # hostname:pid
    Column("hostname", String(255), nullable=False),
    Column("device", String(32), nullable=False),
    Column("queues", String(255), nullable=False),
    Column("current_task", String(255), nullable=True),
    Column("documents_done", Integer, nullable=False, default=0),
    Column("online", Boolean, nullable=False, default=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("exit_status", String(64), nullable=True),
)

# A job's counters, kept by the task that writes each result (lensbatch/store/totals.py)
# so that progress and corpus numbers read a few rows whatever the job's size. A job's
# numbers are the sums over its shards: concurrent writers add to different rows.
def _job_shard() -> tuple[Column[Any], Column[Any]]:
    """The key of a job's sharded counters: the job and one of its shards."""
    return (Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"),
                   primary_key=True),
            Column("shard", Integer, primary_key=True))


job_progress = Table(
    "job_progress",
    metadata,
    *_job_shard(),
    Column("documents_done", BigInteger, nullable=False),
    *(Column(m.name, BigInteger if m.kind == "count" else Float, nullable=False)
      for m in SUMMED_METRICS),
    # sum over documents of a*b for the rates' parts (lensbatch/metrics.py MOMENTS)
    *(Column(moment_name(pair), Float, nullable=False, server_default="0")
      for pair in MOMENTS),
)

# Per-head attention summaries (lensbatch/metrics.py's HEAD_SCORES) summed over a job's
# documents: per score, the sum over the documents where it is not null and their count
# (the mean over documents is sum / count, as SQL's AVG), sharded as job_progress.
head_totals = Table(
    "head_totals",
    metadata,
    *_job_shard(),
    Column("layer", Integer, primary_key=True),
    Column("head", Integer, primary_key=True),
    Column("n_documents", BigInteger, nullable=False),
    *(column for score in HEAD_SCORES for column in (
        Column(f"{score.name}_sum", Float, nullable=False),
        Column(f"{score.name}_count", BigInteger, nullable=False))),
)

# Every document's per-head scores, for jobs run with `--head-scores document`: one row
# per document, one column per HeadScore holding a float32 array over (layer, head),
# layer-major, NaN for null (lensbatch/store/packing.py). prev_token_score is null for a
# one-token document, induction_score for a document with no repeated token.
head_scores = Table(
    "head_scores",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("n_layers", Integer, nullable=False),
    Column("n_heads", Integer, nullable=False),
    *(Column(score.name, LargeBinary, nullable=False) for score in HEAD_SCORES),
    ForeignKeyConstraint(["job_id", "seq"], ["job_documents.job_id", "job_documents.seq"],
                         ondelete="CASCADE"),
)

# NO_LAYER / NO_HEAD in activation_stats: the hook is outside the blocks (hook_embed),
# or has no head dimension (resid_post). A sentinel rather than NULL because the key
# must be unique, and NULLs never collide in a unique key (PostgreSQL and SQLite).
NO_LAYER = -1
NO_HEAD = -1

# Statistics of user-selected activations (--activations, --stats) per document,
# full canonical hook name, layer, head and statistic.
activation_stats = Table(
    "activation_stats",
    metadata,
    Column("job_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("hook", String(255), nullable=False),
    Column("layer", Integer, nullable=False),  # NO_LAYER (-1): none
    Column("head", Integer, nullable=False),  # NO_HEAD (-1): none
    Column("stat", String(16), nullable=False),
    Column("value", Float, nullable=True),
    PrimaryKeyConstraint("job_id", "seq", "hook", "layer", "head", "stat",
                         name="pk_activation_stats"),
    ForeignKeyConstraint(["job_id", "seq"], ["job_documents.job_id", "job_documents.seq"],
                         ondelete="CASCADE"),
)

# Induction hits (candidates predicted correctly), one row per document that has any:
# `positions` the document positions of the predicted tokens (BOS included), an int32
# array, and `novel` one bit per hit, set where the bigram's first occurrence was
# predicted wrongly (lensbatch/store/packing.py). The token text is the tokenizer's.
induction_hit_tokens = Table(
    "induction_hit_tokens",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("positions", LargeBinary, nullable=False),
    Column("novel", LargeBinary, nullable=False),
    ForeignKeyConstraint(["job_id", "seq"], ["job_documents.job_id", "job_documents.seq"],
                         ondelete="CASCADE"),
)

# The induction probe of a job's model (worker/probe.py): [BOS] + X + X with X of
# n_tokens random tokens; losses exclude each copy's first token.
probes = Table(
    "probes",
    metadata,
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("model", String(MAX_MODEL_CHARS), nullable=False),
    Column("n_tokens", Integer, nullable=False),
    Column("first_copy_loss", Float, nullable=True),
    Column("second_copy_loss", Float, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The probe's per-head scores, as head_detector.detect_head(..., exclude_bos=True).
probe_heads = Table(
    "probe_heads",
    metadata,
    Column("job_id", String(64), ForeignKey("probes.job_id", ondelete="CASCADE"),
           primary_key=True),
    Column("layer", Integer, primary_key=True),
    Column("head", Integer, primary_key=True),
    Column("induction_score", Float, nullable=True),
    Column("prev_token_score", Float, nullable=True),
)

# Documents whose evaluation raised or produced non-finite numbers. `final` is set once
# `attempts` reaches the bound (LENSBATCH_MAX_ATTEMPTS): the document then counts as
# finished (failed) and is retried only by `lensbatch resume JOB --failed`.
document_failures = Table(
    "document_failures",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("final", Boolean, nullable=False),
    Column("error", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(["job_id", "seq"], ["job_documents.job_id", "job_documents.seq"],
                         ondelete="CASCADE"),
)

# The top activations of every neuron of a job's --top-activations hooks (lensbatch/top.py):
# a row per (job, hook, layer, head, neuron), head NO_HEAD for a hook without heads;
# the K best entries packed best first (lensbatch/store/top_packing.py), `max_value` the
# first of them, `histogram` fixed-bin counts of every activation, n_positive of the
# n_positions above zero. Merged under the row's lock (lensbatch/store/top_rows.py).
top_activations = Table(
    "top_activations",
    metadata,
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("hook", String(255), nullable=False),
    Column("layer", Integer, nullable=False),  # NO_LAYER (-1): none
    Column("head", Integer, nullable=False),  # NO_HEAD (-1): none
    Column("neuron", Integer, nullable=False),
    Column("n_positions", BigInteger, nullable=False),
    Column("n_positive", BigInteger, nullable=False),
    Column("max_value", Float, nullable=True),
    Column("top_values", LargeBinary, nullable=False),
    Column("seqs", LargeBinary, nullable=False),
    Column("positions", LargeBinary, nullable=False),
    Column("histogram", LargeBinary, nullable=False),
    PrimaryKeyConstraint("job_id", "hook", "layer", "head", "neuron",
                         name="pk_top_activations"),
)
