"""Reading a job's activation statistics back (`--activations HOOK --stats STAT`), by the
corpus's document ids: activation_stats is keyed by the document's seq."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, select

from lensbatch.store import schema

# `lensbatch results JOB --activations`: one row per (document, hook, layer, head,
# statistic). layer is null for a hook outside the blocks (hook_embed), head for a hook
# without a head dimension (resid_post).
ACTIVATION_COLUMNS = ("doc_id", "hook", "layer", "head", "stat", "value")
STREAM_ROWS = 50_000


def activation_rows(engine: Engine, job_id: str) -> Iterator[dict[str, Any]]:
    """The job's activation statistics in corpus order (then hook, layer, head and
    statistic, the table's key order), one dict of ACTIVATION_COLUMNS each, streamed."""
    a, jd = schema.activation_stats, schema.job_documents
    query = (select(jd.c.doc_id, a.c.hook, a.c.layer, a.c.head, a.c.stat, a.c.value)
             .join(jd, (jd.c.job_id == a.c.job_id) & (jd.c.seq == a.c.seq))
             .where(a.c.job_id == job_id)
             .order_by(a.c.seq, a.c.hook, a.c.layer, a.c.head, a.c.stat))
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True,
                                              yield_per=STREAM_ROWS).execute(query)
        for row in result:
            yield {"doc_id": row.doc_id, "hook": row.hook,
                   "layer": None if row.layer == schema.NO_LAYER else row.layer,
                   "head": None if row.head == schema.NO_HEAD else row.head,
                   "stat": row.stat, "value": row.value}


def has_activations(engine: Engine, job_id: str) -> bool:
    a = schema.activation_stats
    with engine.connect() as connection:
        return connection.execute(select(a.c.seq).where(a.c.job_id == job_id)
                                  .limit(1)).first() is not None
