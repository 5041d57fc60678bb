"""Row n: top activations per neuron (--top-activations): storage per job and the
reduction's cost.

- Storage: GPT-2 small's MLP (12 layers x 3,072 neurons = 36,864) at K = 20, as the
  store packs it (lensbatch/store/top_packing.py): 12 bytes per entry and the
  histogram, whose width follows the largest count (uint16 up to 65,535 positions in a
  bin, uint32 to 4e9, uint64 beyond), so the figure is bounded whatever the corpus.
  Measured by merging a task's worth of neurons into a real SQLite database and summing
  the stored columns, and worked out for the widest histogram.
- Cost: `--model`'s evaluation of the same documents with and without
  `--top-activations mlp_post` (every layer), side by side in one process, on the
  device of the run: the extra seconds as a share of the evaluation's.

`python -m bench --rows n [--model gpt2-small-random] [--scale 0.3] [--reps 3]`
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.corpus import spread_corpus
from bench.report import Row
from bench.timing import interleaved, median, paired_ratio
from lensbatch.jobspec import JobSpec
from lensbatch.top import BINS, HookTop

GPT2_LAYERS, GPT2_MLP = 12, 3072
K = 20
STORAGE_TARGET_MB = 20.0
COST_TARGET = 0.10


def synthetic_top(hook: str, neurons: int, k: int, count: int, seed: int) -> HookTop:
    """A hook's top activations with `count` positions in one bin of every neuron."""
    rng = np.random.default_rng(seed)
    values = -np.sort(-rng.standard_normal((neurons, k)).astype(np.float32), axis=1)
    histogram = np.zeros((neurons, BINS), dtype=np.int64)
    histogram[:, BINS // 2] = count
    return HookTop(hook, neurons, values, rng.integers(0, 1 << 30, (neurons, k)),
                   rng.integers(0, 1 << 20, (neurons, k)).astype(np.int32), histogram,
                   np.full(neurons, count // 2, dtype=np.int64), count)


def stored_bytes(work: Path, count: int) -> tuple[int, float]:
    """Packed bytes of one job's GPT-2 small MLP neurons in SQLite (two tasks merged),
    and the seconds the second task's merge took (every neuron, locked and rewritten)."""
    from sqlalchemy import create_engine

    from lensbatch.store import schema
    from lensbatch.store.db import ensure_schema
    from lensbatch.store.top_queries import top_storage_bytes
    from lensbatch.store.top_rows import merge_tops

    url = f"sqlite:///{work / f'top-{count}.db'}"
    ensure_schema(url)
    engine = create_engine(url)
    tops = [synthetic_top(f"blocks.{layer}.mlp.hook_post", GPT2_MLP, K, count, layer)
            for layer in range(GPT2_LAYERS)]
    with engine.begin() as connection:
        connection.execute(schema.jobs.insert().values(
            id="bench", model="gpt2", settings={}, status="done", corpus="-",
            n_documents=0, n_tasks=0, created_at=datetime.now(UTC)))
    with engine.begin() as connection:  # the job's first task: rows inserted
        merge_tops(connection, "bench", tops, K)
    later = [synthetic_top(top.hook, GPT2_MLP, K, count, 100 + i) for i, top in enumerate(tops)]
    started = time.perf_counter()
    with engine.begin() as connection:  # every later task: rows locked, merged, written
        merge_tops(connection, "bench", later, K)
    seconds = time.perf_counter() - started
    return top_storage_bytes(engine, "bench"), seconds


def storage_rows(work: Path) -> list[Row]:
    neurons = GPT2_LAYERS * GPT2_MLP
    rows = []
    for count, width in ((1_000, "uint16"), (1_000_000, "uint32")):
        size, seconds = stored_bytes(work, count)
        mb = size / 1e6
        rows.append(Row("n", f"top activations storage per job, {count:,} positions/bin "
                        f"(histogram {width})", mb, "MB", target=f"<= {STORAGE_TARGET_MB:.0f} MB",
                        met=mb <= STORAGE_TARGET_MB,
                        note=f"{neurons:,} MLP neurons, K={K}, packed columns in SQLite; "
                             f"a task's merge {seconds:.2f} s"))
    widest = neurons * (K * 12 + BINS * 8) / 1e6
    rows.append(Row("n", "top activations storage per job, any corpus (histogram uint64)",
                    widest, "MB", target=f"<= {STORAGE_TARGET_MB:.0f} MB",
                    met=widest <= STORAGE_TARGET_MB,
                    note=f"{neurons:,} x ({K} x 12 B + {BINS} x 8 B): the bound"))
    return rows


def cost_rows(model_name: str, device: str, scale: float, reps: int) -> list[Row]:
    from worker.engine.evaluate import analyse_texts, analyse_texts_top
    from worker.engine.models import load_model

    model = load_model(model_name, device, "float32")
    texts = spread_corpus(scale)
    spec = JobSpec(model=model_name)
    with_top = replace(spec, top_activations=("mlp_post",), top_k=K)
    seqs = list(range(len(texts)))

    def plain() -> float:
        started = time.perf_counter()
        analyse_texts(model, texts, spec)
        return time.perf_counter() - started

    def top() -> float:
        started = time.perf_counter()
        analyse_texts_top(model, texts, with_top, seqs)
        return time.perf_counter() - started

    top()  # warm-up: the first pass pays for allocations
    seconds = interleaved({"plain": plain, "top": top}, reps)
    ratio = paired_ratio(seconds["top"], seconds["plain"])
    n_tokens = sum(len(t) for t in model.tokenizer(texts)["input_ids"])
    return [Row("n", f"evaluation + --top-activations mlp_post (K={K})",
                median(seconds["top"]), "s", ratio - 1, f"<= {COST_TARGET:.0%} extra",
                ratio - 1 <= COST_TARGET,
                note=f"ratio: extra share vs plain evaluation {median(seconds['plain']):.2f} s; "
                     f"{model_name} on {device}, {len(texts)} docs, ~{n_tokens} tokens, "
                     f"{reps} reps")]


def top_rows(model: str, device: str, scale: float, reps: int, work: Path) -> list[Row]:
    return storage_rows(work) + cost_rows(model, device, scale, reps)


if __name__ == "__main__":
    import sys
    import tempfile

    from bench.report import print_table

    with tempfile.TemporaryDirectory() as tmp:
        print_table(top_rows("gpt2-small-random", "cpu", float(sys.argv[1]) if len(sys.argv) > 1
                             else 0.3, 3, Path(tmp)))
