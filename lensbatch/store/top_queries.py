"""Reading a job's top activations back: one neuron's contexts, a hook's neurons.

`neuron_top` gives one neuron's K best (document, position, value) entries with the
documents' ids and texts, its histogram and density; `neuron_rows` ranks a hook's
neurons by their highest activation (SQL ORDER BY max_value ... LIMIT), with the share
of activations above zero. `lensbatch top` and `lensbatch neurons` print them; the
Python API calls the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, Engine, func, select

from lensbatch.errors import UserError
from lensbatch.store import schema
from lensbatch.store.queries import job_row
from lensbatch.store.top_packing import unpack_entries, unpack_histogram
from lensbatch.top import bin_edges


@dataclass(frozen=True)
class Context:
    """One of a neuron's top activations: where, how high, and the document."""

    rank: int  # 1 for the highest
    value: float
    seq: int
    doc_id: str
    position: int  # token position in the evaluated sequence (BOS included when prepended)
    text: str


@dataclass(frozen=True)
class NeuronTop:
    hook: str
    head: int | None
    neuron: int
    contexts: list[Context]
    histogram: list[int]  # counts per lensbatch.top bin
    edges: list[float]  # the bins' lower edges, and +inf
    n_positive: int
    n_positions: int

    @property
    def density(self) -> float | None:
        """The share of the neuron's activations above zero."""
        return self.n_positive / self.n_positions if self.n_positions else None


@dataclass(frozen=True)
class NeuronRow:
    hook: str
    head: int | None
    neuron: int
    max_value: float | None
    density: float | None
    n_positions: int


def top_hooks(engine: Engine, job_id: str) -> list[str]:
    """The hooks the job keeps top activations for (JobNotFound for a wrong id)."""
    t = schema.top_activations
    with engine.connect() as connection:
        job_row(connection, job_id)
        return list(connection.scalars(select(t.c.hook).where(t.c.job_id == job_id)
                                       .group_by(t.c.hook).order_by(t.c.hook)))


def neuron_counts(engine: Engine, job_id: str) -> dict[str, int]:
    """The job's top-activation hooks (JobNotFound for a wrong id) with their number of
    neurons (every head's), in layer order (hooks outside the blocks first), then by name."""
    t = schema.top_activations
    with engine.connect() as connection:
        job_row(connection, job_id)
        rows = connection.execute(select(t.c.hook, t.c.layer, func.count().label("n"))
                                  .where(t.c.job_id == job_id).group_by(t.c.hook, t.c.layer)
                                  .order_by(t.c.layer, t.c.hook))
        return {row.hook: int(row.n) for row in rows}


def _check_hook(engine: Engine, job_id: str, hook: str) -> None:
    hooks = top_hooks(engine, job_id)
    if hook not in hooks:
        kept = ", ".join(hooks) if hooks else "none (run it with --top-activations)"
        raise UserError(f"job {job_id} has no top activations for {hook}; it has: {kept}")


def _head(value: int) -> int | None:
    return None if value == schema.NO_HEAD else value


def neuron_top(engine: Engine, job_id: str, hook: str, neuron: int,
               head: int | None = None) -> NeuronTop:
    """One neuron's top activations, best first, with their documents."""
    _check_hook(engine, job_id, hook)
    t, jd, d = schema.top_activations, schema.job_documents, schema.documents
    head_key = schema.NO_HEAD if head is None else head
    with engine.connect() as connection:
        row = connection.execute(select(t).where(
            t.c.job_id == job_id, t.c.hook == hook, t.c.head == head_key,
            t.c.neuron == neuron)).first()
        if row is None:
            count = connection.scalar(select(func.count()).select_from(t).where(
                t.c.job_id == job_id, t.c.hook == hook, t.c.head == head_key))
            raise UserError(_no_neuron(connection, job_id, hook, neuron, head, count or 0))
        values, seqs, positions = unpack_entries(row)
        docs = {r.seq: (r.doc_id, r.text) for r in connection.execute(
            select(jd.c.seq, jd.c.doc_id, d.c.text).join(d, d.c.id == jd.c.document_id)
            .where(jd.c.job_id == job_id, jd.c.seq.in_(sorted(set(seqs.tolist())))))}
    contexts = [Context(rank, float(v), int(s), docs[int(s)][0], int(p), docs[int(s)][1])
                for rank, (v, s, p) in enumerate(zip(values, seqs, positions,
                                                     strict=True), start=1)]
    return NeuronTop(hook, head, neuron, contexts,
                     unpack_histogram(row.histogram).tolist(), bin_edges().tolist(),
                     int(row.n_positive), int(row.n_positions))


def _no_neuron(connection: Connection, job_id: str, hook: str, neuron: int,
               head: int | None, count: int) -> str:
    """Why (hook, head, neuron) has no row: a head where the hook has none (or none where
    it has heads), or an index past the end."""
    t = schema.top_activations
    heads = sorted(set(connection.scalars(select(t.c.head).where(
        t.c.job_id == job_id, t.c.hook == hook).group_by(t.c.head))))
    if head is None and heads != [schema.NO_HEAD]:
        return (f"{hook} has heads: name the neuron HEAD.INDEX "
                f"(0.{neuron} is head 0, index {neuron})")
    if head is not None and heads == [schema.NO_HEAD]:
        return f"{hook} has no heads: name the neuron by its index alone ({neuron})"
    if head is not None and not count:
        return f"{hook} has no head {head} (it has heads 0 to {heads[-1]})"
    where = "" if head is None else f" of head {head}"
    return f"{hook} has no neuron {neuron}{where} (it has {count}: 0 to {count - 1})"


def neuron_rows(engine: Engine, job_id: str, hook: str, limit: int | None = None
                ) -> list[NeuronRow]:
    """A hook's neurons by their highest activation, highest first."""
    _check_hook(engine, job_id, hook)
    t = schema.top_activations
    query = (select(t.c.head, t.c.neuron, t.c.max_value, t.c.n_positive, t.c.n_positions)
             .where(t.c.job_id == job_id, t.c.hook == hook)
             .order_by(t.c.max_value.desc().nulls_last(), t.c.head, t.c.neuron))
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as connection:
        return [NeuronRow(hook, _head(r.head), r.neuron, r.max_value,
                          r.n_positive / r.n_positions if r.n_positions else None,
                          int(r.n_positions)) for r in connection.execute(query)]


def top_storage_bytes(engine: Engine, job_id: str) -> int:
    """Bytes of the job's packed top-activation columns (the rows' keys left out)."""
    t = schema.top_activations
    sizes = [func.coalesce(func.sum(func.length(t.c[name])), 0)
             for name in ("top_values", "seqs", "positions", "histogram")]
    with engine.connect() as connection:
        return int(np.sum(connection.execute(select(*sizes).where(t.c.job_id == job_id)).one()))
