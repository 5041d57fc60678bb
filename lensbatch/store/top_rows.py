"""Merging a task's top activations into the job's, inside the task's write transaction.

Per hook: make sure every neuron's row exists (an empty one inserted, skipping those
there), lock the hook's rows (SELECT ... FOR UPDATE, in key order, so that two writers
of a job wait for each other instead of crossing), merge in numpy (lensbatch/top.py
merge_top: the top K of the union of entries; counts added) and write them back.

Only a task that created the results rows of exactly the documents its top activations
cover merges them (lensbatch/store/tasks.py checks): the counts are then added once per
document, and the entries, a union, cannot repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from lensbatch.hooks import hook_kind, hook_layer
from lensbatch.store import schema
from lensbatch.store.top_packing import (
    pack_entries,
    pack_histogram,
    unpack_entries,
    unpack_histogram,
)
from lensbatch.store.upsert import INSERTS, insert_ignore, upsert
from lensbatch.top import BINS, HookTop, merge_top

KEYS = ("job_id", "hook", "layer", "head", "neuron")
Row = dict[str, Any]


def neuron_keys(job_id: str, top: HookTop) -> list[Row]:
    """The key of each neuron's row, in neuron order (which is key order)."""
    layer = hook_layer(top.hook)
    per_head = hook_kind(top.hook) == "head"
    return [{"job_id": job_id, "hook": top.hook,
             "layer": schema.NO_LAYER if layer is None else layer,
             "head": n // top.per_head if per_head else schema.NO_HEAD,
             "neuron": n % top.per_head if per_head else n}
            for n in range(top.n_neurons)]


def _empty(keys: Row) -> Row:
    return {**keys, "n_positions": 0, "n_positive": 0, "max_value": None, "top_values": b"",
            "seqs": b"", "positions": b"", "histogram": b""}


def _stored(job_id: str, top: HookTop, rows: Sequence[Any]) -> HookTop:
    """The locked rows of one hook (in neuron order) as a HookTop."""
    entries = [unpack_entries(row) for row in rows]
    width = min(len(v) for v, _, _ in entries) if entries else 0
    return HookTop(
        top.hook, top.per_head,
        np.stack([v[:width] for v, _, _ in entries]),
        np.stack([s[:width] for _, s, _ in entries]),
        np.stack([p[:width] for _, _, p in entries]),
        np.stack([unpack_histogram(row.histogram) for row in rows]),
        np.array([row.n_positive for row in rows], dtype=np.int64),
        int(rows[0].n_positions) if rows else 0)


def _row(keys: Row, top: HookTop, n: int) -> Row:
    values = top.values[n]
    return {**keys, "n_positions": top.total, "n_positive": int(top.positive[n]),
            "max_value": float(values[0]) if len(values) else None,
            **pack_entries(values, top.seqs[n], top.positions[n]),
            "histogram": pack_histogram(top.histogram[n])}


def _locked(connection: Connection, job_id: str, hook: str) -> list[Any]:
    t = schema.top_activations
    query = (select(t).where(t.c.job_id == job_id, t.c.hook == hook)
             .order_by(t.c.layer, t.c.head, t.c.neuron).with_for_update())
    return list(connection.execute(query))


def _insert_new(connection: Connection, keys: list[Row], top: HookTop) -> set[int]:
    """Insert the rows of a hook the job has none of yet, skipping any another writer
    inserted first; return the neurons inserted."""
    t = schema.top_activations
    statement = (INSERTS[connection.dialect.name](t)
                 .on_conflict_do_nothing(index_elements=list(KEYS))
                 .returning(t.c.head, t.c.neuron))
    found = connection.execute(statement, [_row(key, top, n) for n, key in enumerate(keys)])
    return {neuron if head == schema.NO_HEAD else head * top.per_head + neuron
            for head, neuron in found}


def merge_tops(connection: Connection, job_id: str, tops: Sequence[HookTop], k: int) -> None:
    """Merge each hook's top activations into the job's rows, under their locks."""
    for top in sorted(tops, key=lambda t: t.hook):
        if top.histogram.shape[1:] != (BINS,):
            raise ValueError(f"{top.hook}: histogram of {top.histogram.shape[1:]} bins")
        keys = neuron_keys(job_id, top)
        rows = _locked(connection, job_id, top.hook)
        inserted: set[int] = set()
        if not rows:  # the job's first rows of this hook: insert them as they are
            inserted = _insert_new(connection, keys, top)
            if len(inserted) == len(keys):
                continue
            rows = _locked(connection, job_id, top.hook)  # another writer was first
        if len(rows) != len(keys):
            insert_ignore(connection, schema.top_activations, [_empty(key) for key in keys],
                          keys=KEYS)
            rows = _locked(connection, job_id, top.hook)
        merged = merge_top(_stored(job_id, top, rows), top, k)
        upsert(connection, schema.top_activations,  # the rows inserted above hold `top`
               [_row(key, merged, n) for n, key in enumerate(keys) if n not in inserted],
               keys=KEYS)
