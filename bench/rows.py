"""Each group of rows: set up, measure, and turn seconds into table rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.checkpoints import save_gpt2
from bench.corpus import (
    rolling_lengths,
    spread_corpus,
    token_corpus,
    write_jsonl,
    write_large_jsonl,
)
from bench.forward import run_forward_rows
from bench.report import Row
from bench.timing import median, paired_ratio
from lensbatch.jobspec import JobSpec


@dataclass(frozen=True)
class Options:
    model: str
    device: str
    dtype: str
    scale: float
    per_length: int
    reps: int
    batch_tokens: int | None
    submit_docs: int
    rows: str
    lmeval_corpus: str
    out: Path
    interval_docs: int = 100_000


def _rate(tokens: int, seconds: list[float]) -> float:
    return tokens / median(seconds)


def forward_rows(options: Options, work: Path) -> list[Row]:
    """a-d on the same documents, interleaved repetitions."""
    from lensbatch.store.db import ensure_schema
    from scheduler.local import run_local
    from worker.engine.evaluate import tokenize
    from worker.engine.models import load_model

    model = load_model(options.model, options.device, options.dtype)
    spec = JobSpec(model=options.model, batch_tokens=options.batch_tokens, dtype=options.dtype)
    texts = spread_corpus(options.scale, options.per_length)
    docs = tokenize(model, texts, spec.prepend_bos)
    corpus = write_jsonl(work / "spread.jsonl", texts)
    # (b) variants. Per-head summaries are always on; the second adds selected activation
    # statistics (resid_post and pattern at every layer, mean and norm).
    variants = {"evaluate": spec,
                "evaluate + activations": replace(spec, activations=("resid_post", "pattern"),
                                                  stats=("mean", "norm")),
                "evaluate, --batch-tokens 8192": replace(spec, batch_tokens=8192)}
    extra: dict[str, Callable[[], object]] = {}
    if "d" in options.rows:
        engines = [ensure_schema(f"sqlite:///{work / f'run{i}.db'}")
                   for i in range(options.reps)]
        extra["lensbatch_run"] = lambda: run_local(
            engines.pop(), str(corpus), spec, options.device)
    measured = run_forward_rows(model, docs, variants, extra, options.reps)
    s, n = measured.seconds, measured.n_tokens
    lengths = f"{len(docs)} docs, {min(map(len, docs))}-{max(map(len, docs))} tokens"
    rows = [Row("a", "bare forward (model loss)", _rate(n, s["bare_forward"]), "tokens/s",
                note=f"{n} tokens, {lengths}")]
    for name in list(variants)[:2]:
        ratio = paired_ratio(s["bare_forward"], s[name])  # time(a)/time(b) = speed(b)/speed(a)
        rows.append(Row("b", f"worker evaluation ({name})", _rate(n, s[name]), "tokens/s",
                        ratio, ">= 0.90 of a", ratio >= 0.90, "ratio: speed b / speed a"))
    large = "evaluate, --batch-tokens 8192"
    ratio = paired_ratio(s["evaluate"], s[large])
    rows.append(Row("b", f"worker evaluation ({large})", _rate(n, s[large]), "tokens/s", ratio,
                    ">= 1.0x 1024 on a CPU", ratio >= 1.0 if options.device == "cpu" else None,
                    f"ratio: speed / speed at {options.batch_tokens or 'the default'}"))
    naive = paired_ratio(s["naive_loop"], s["evaluate"])
    rows.append(Row("c", "naive run_with_cache loop", _rate(n, s["naive_loop"]), "tokens/s",
                    naive, "b >= 3x c", naive >= 3.0, "ratio: speed b / speed c"))
    if "d" in options.rows:
        ratio = paired_ratio(s["bare_forward"], s["lensbatch_run"])
        rows.append(Row("d", "lensbatch run end to end", _rate(n, s["lensbatch_run"]),
                        "tokens/s", ratio, ">= 0.85 of a", ratio >= 0.85,
                        "ratio: speed d / speed a; SQLite"))
    return rows


def queue_rows(options: Options, work: Path) -> list[Row]:
    # Imported here: rows a-d need no Celery (the GPU script runs only those).
    from bench.queue import QueueJob, queue_overhead, scaling
    from bench.workers import Services
    from lensbatch.store.db import ensure_schema
    from tests.services import PostgresServer, RedisServer

    redis, postgres = RedisServer(), PostgresServer()
    redis.start()
    postgres.start()
    try:
        services = Services(postgres.url, redis.url, str(work / "cache"))
        engine = ensure_schema(postgres.url)
        log = work / "workers.log"
        rows: list[Row] = []
        if "e" in options.rows:
            # The tests' tiny GPT-2 (2 layers, d_model 64, n_ctx 64).
            tiny = save_gpt2(work / "tiny", 1234, n_layer=2, n_head=4, n_embd=64,
                             n_positions=64)
            texts = [f"Task {i}: the lamp is lit, the harbour is quiet." for i in range(200)]
            job = QueueJob(write_jsonl(work / "tasks.jsonl", texts),
                           JobSpec(model=tiny, task_tokens=1), 0)
            e = queue_overhead(engine, services, job, options.reps, log)
            rows.append(Row("e", "queue: tasks through Redis + 1 worker", e.tasks_per_s,
                            "tasks/s", note=f"{e.n_tasks} one-document tasks, tiny model"))
            rows.append(Row("e", "queue overhead per task", e.overhead_ms_per_task, "ms",
                            target="< 20 ms", met=e.overhead_ms_per_task < 20,
                            note=f"vs process_task in-process ({e.local_ms_per_task:.1f} ms)"))
        if set("gh") & set(options.rows):
            texts = spread_corpus(options.scale / 2, seed=1)
            spec = JobSpec(model=options.model, task_tokens=64)
            job = QueueJob(write_jsonl(work / "scaling.jsonl", texts), spec, 0)
            h = scaling(engine, services, job, min(3, options.reps), log)
            ratio = paired_ratio(h.two_threads_s, h.two_processes_s)
            rows.append(Row("g", "worker peak RSS", h.peak_rss_mb, "MB",
                            note=f"{options.model}, after a job"))
            rows.append(Row("h", "2 workers x 1 thread vs 1 worker x 2 threads",
                            median(h.two_processes_s), "s", ratio,
                            note=f"1x2: {median(h.two_threads_s):.1f} s; "
                                 "ratio: speed 2x1 / speed 1x2"))
        return rows
    finally:
        redis.stop()
        postgres.stop()


def memory_rows(options: Options, work: Path) -> list[Row]:
    """g, for the evaluation path: peak RSS of `lensbatch run` with and without summaries,
    and with 8,192-token batches."""
    from bench.memory import LARGE_BATCHES, SUMMARIES, peak_memory

    # Half the lengths: the longest documents still fill whole context windows, which is
    # what sets the peak, in half the time.
    corpus = write_jsonl(work / "memory.jsonl", spread_corpus(options.scale / 2, seed=2))
    peaks = peak_memory(corpus, options.model, work,
                        {"plain": (), "summaries": SUMMARIES, "large": LARGE_BATCHES},
                        min(3, options.reps))
    summaries, large = peaks["summaries"] / peaks["plain"], peaks["large"] / peaks["plain"]
    return [
        Row("g", "lensbatch run peak RSS", peaks["plain"], "MB",
            note=f"{options.model}, --batch-tokens 1024 (the CPU's default)"),
        Row("g", "lensbatch run peak RSS, --activations resid_post,pattern",
            peaks["summaries"], "MB", summaries, "<= 1.5x without", summaries <= 1.5,
            "--stats mean,norm; ratio: with / without"),
        Row("g", "lensbatch run peak RSS, --batch-tokens 8192", peaks["large"], "MB", large,
            "<= 1.5x 1024", large <= 1.5, "ratio: 8,192 / 1,024"),
    ]


def submit_rows(options: Options, work: Path) -> list[Row]:
    from bench.submit import submit_large
    from bench.workers import Services
    from lensbatch.store.db import ensure_schema
    from tests.services import RedisServer

    corpus = write_large_jsonl(work / "large.jsonl", options.submit_docs, 480)
    redis = RedisServer()
    redis.start()
    try:
        url = f"sqlite:///{work / 'submit.db'}"
        ensure_schema(url)
        run = submit_large(Services(url, redis.url, str(work / "cache")), corpus,
                           options.submit_docs, work / "submit.log")
    finally:
        redis.stop()
    note = f"{run.n_docs:,} docs, {run.megabytes:.0f} MB JSONL, SQLite"
    return [
        Row("f", "submit wall time", run.seconds, "s", note=note),
        Row("f", "submit peak RSS", run.peak_rss_mb, "MB", target="< 300 MB",
            met=run.peak_rss_mb < 300, note="the scheduler process"),
    ]


def interval_rows(options: Options, work: Path) -> list[Row]:
    """i: what the 95% intervals of a large job cost (`status`, `run`, the report,
    `compare`)."""
    from bench.intervals import interval_times, summary

    n = options.interval_docs
    s = summary(interval_times(work, n, options.reps))
    note = f"{n:,} documents, 1,000 resamples, SQLite"
    return [
        Row("i", "read per-document sums of a job", s["read"], "s", note=note),
        Row("i", "bootstrap intervals of a job", s["one_job"], "s",
            note="status, run and the report pay read + this"),
        Row("i", "compare of two jobs (rates, paired differences)", s["two_jobs"], "s",
            note="on the same documents; plus two reads"),
    ]


ABLATION_DOCS = (500, 2000)  # documents per job of row r


def ablation_rows(options: Options, work: Path) -> list[Row]:
    """r: `lensbatch ablations SWEEP` ranking GPT-2 small's 144 heads from SQL, on
    SQLite and on a PostgreSQL server of its own (tests/services.py)."""
    from bench.ablations import fresh_postgres_database, ranking_seconds, sqlite_url
    from tests.services import PostgresServer

    rows = []
    for n_docs in ABLATION_DOCS:
        wall, cpu = ranking_seconds(sqlite_url(work, n_docs), n_docs, options.reps)
        rows.append(Row("r", f"rank 144 ablated heads from SQL ({n_docs:,} docs/job)",
                        wall, "s", target="< 1 s", met=wall < 1.0,
                        note=f"CPU {cpu:.3f} s; 145 jobs x {n_docs:,} documents, paired "
                             "sums in one query, SQLite"))
    postgres = PostgresServer()
    postgres.start()
    try:
        for n_docs in ABLATION_DOCS:
            url = fresh_postgres_database(postgres.url, n_docs)
            wall, _ = ranking_seconds(url, n_docs, options.reps)
            rows.append(Row("r", f"rank 144 ablated heads from SQL ({n_docs:,} docs/job)",
                            wall, "s", target="< 1 s", met=wall < 1.0,
                            note=f"145 jobs x {n_docs:,} documents, PostgreSQL (its CPU "
                                 "is the server's)"))
    finally:
        postgres.stop()
    return rows


def lmeval_group(options: Options, work: Path) -> list[Row]:
    """j: lm-evaluation-harness, the raw Hugging Face forward and lensbatch (bench/lmeval.py)."""
    from bench.lmeval import lmeval_rows

    if options.lmeval_corpus == "rolling":
        from worker.engine.tokenizer import gpt2_tokenizer

        tokenizer = gpt2_tokenizer()
        lengths = [max(2, int(n * options.scale)) for n in rolling_lengths()]
        texts = token_corpus(lengths, tokenizer.encode, tokenizer.decode)
    else:
        texts = spread_corpus(options.scale, options.per_length)
    return lmeval_rows(texts, work, options.reps, options.batch_tokens)


def top_group(options: Options, work: Path) -> list[Row]:
    """n: top activations' storage per job and their reduction's cost (bench/top.py)."""
    from bench.top import top_rows

    return top_rows(options.model, options.device, options.scale, options.reps, work)
