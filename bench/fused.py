"""Row k: the fused attention path (worker/engine/attention.py) against TransformerLens's
own eager attention and the raw Hugging Face forward, side by side in one process, and
the peak RSS of `lensbatch run` at --batch-tokens 8,192 against 1,024 on each path.

The model is gpt2-small-random saved as a checkpoint (the same weights for the bridge
and for transformers' own GPT-2, which runs scaled_dot_product_attention); the
documents are rows a-d's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from transformer_lens.model_bridge import TransformerBridge

from bench.report import Row
from bench.rows import Options
from bench.timing import median, paired_ratio, side_by_side
from lensbatch.jobspec import JobSpec

LARGE = 8192


def _evaluate(model: TransformerBridge, docs: list[list[int]], spec: JobSpec, mode: str
              ) -> Callable[[], object]:
    from worker.engine.attention_mode import attention_mode
    from worker.engine.evaluate import evaluate_tokens

    def run() -> object:
        with attention_mode(mode):
            return evaluate_tokens(model, docs, spec)

    return run


def _peaks(corpus: Path, checkpoint: str, work: Path, reps: int) -> dict[str, float]:
    """Median peak RSS (MB) of `lensbatch run` per (path, batch tokens), in turn."""
    from bench.memory import run_peak_rss_mb

    peaks: dict[str, list[float]] = {}
    for rep in range(reps):
        for mode in ("eager", "fused"):
            for tokens in (1024, LARGE):
                name = f"{mode} {tokens}"
                peaks.setdefault(name, []).append(run_peak_rss_mb(
                    corpus, checkpoint, work / f"fused-{mode}-{tokens}-{rep}.db",
                    ("--batch-tokens", str(tokens)), {"LENSBATCH_ATTENTION": mode}))
    return {name: median(values) for name, values in peaks.items()}


def fused_rows(options: Options, work: Path) -> list[Row]:
    checkpoint = _checkpoint(work)
    return speed_rows(options, work, checkpoint) + memory_rows(options, work, checkpoint)


def _checkpoint(work: Path) -> str:
    from bench.checkpoints import save_gpt2
    from worker.engine.models import RANDOM_SEED

    path = work / "gpt2-small-random"
    return str(path) if path.exists() else save_gpt2(path, RANDOM_SEED)


def speed_rows(options: Options, work: Path, checkpoint: str) -> list[Row]:
    """Eager and fused, every default metric and --no-heads, the fused path at 8,192-
    token batches, and the raw forward, interleaved."""
    from bench.corpus import spread_corpus
    from bench.lmeval import hf_model, hf_pass
    from worker.engine.evaluate import tokenize
    from worker.engine.models import load_model
    from worker.engine.windows import document_windows

    model = load_model(checkpoint, "cpu", "float32")
    spec = JobSpec(model=checkpoint, batch_tokens=1024)
    texts = spread_corpus(options.scale, options.per_length)
    docs = tokenize(model, texts, spec.prepend_bos)
    n = sum(map(len, docs))
    windows = [w.tokens for i, d in enumerate(docs)
               for w in document_windows(i, d, int(model.cfg.n_ctx), spec.windows, 0)]
    no_heads, large = replace(spec, heads=False), replace(spec, batch_tokens=LARGE)
    runs: dict[str, Callable[[], object]] = {"hf": hf_pass(hf_model(checkpoint), windows)}
    for mode in ("eager", "fused"):
        runs[mode] = _evaluate(model, docs, spec, mode)
        runs[f"{mode} --no-heads"] = _evaluate(model, docs, no_heads, mode)
    runs[f"fused {LARGE}"] = _evaluate(model, docs, large, "fused")
    short = [min(docs, key=len)]
    for mode in ("eager", "fused"):  # warm-up: first-call allocations, lazy initialisation
        _evaluate(model, short, spec, mode)()
    s = side_by_side(runs, options.reps)

    def rate(name: str) -> float:
        return n / median(s[name])

    def vs(base: str, name: str) -> float:  # speed of name / speed of base
        return paired_ratio(s[base], s[name])

    lengths = f"{len(docs)} docs, {min(map(len, docs))}-{max(map(len, docs))} tokens"
    return [
        Row("k", "raw Hugging Face forward (SDPA), every logit, batch size 1", rate("hf"),
            "tokens/s", note=f"{n} tokens, {lengths}"),
        Row("k", "evaluation, eager attention (LENSBATCH_ATTENTION=eager)", rate("eager"),
            "tokens/s", vs("hf", "eager"), note="every default metric; ratio: speed / raw"),
        Row("k", "evaluation, fused attention", rate("fused"), "tokens/s",
            vs("eager", "fused"), note=f"every default metric; ratio: speed / eager; "
                                       f"{vs('hf', 'fused'):.2f}x the raw forward"),
        Row("k", "evaluation --no-heads, fused attention", rate("fused --no-heads"),
            "tokens/s", vs("eager --no-heads", "fused --no-heads"),
            note=f"ratio: speed / eager --no-heads; {vs('hf', 'fused --no-heads'):.2f}x raw"),
        Row("k", f"evaluation --batch-tokens {LARGE}, fused attention", rate(f"fused {LARGE}"),
            "tokens/s", vs("fused", f"fused {LARGE}"), ">= 1.0x 1024 on a CPU",
            vs("fused", f"fused {LARGE}") >= 1.0, "ratio: speed / speed at 1,024"),
    ]


def memory_rows(options: Options, work: Path, checkpoint: str) -> list[Row]:
    """Peak RSS of `lensbatch run` on each path at 1,024 and 8,192 tokens per batch."""
    from bench.corpus import spread_corpus, write_jsonl

    # Row g's corpus at --scale 1 whatever the scale: its longest documents fill whole
    # windows, so 8,192-token batches hold eight of them.
    corpus = write_jsonl(work / "fused-memory.jsonl", spread_corpus(0.5, seed=2))
    peaks = _peaks(corpus, checkpoint, work, max(1, options.reps // 2))
    memory = {mode: peaks[f"{mode} {LARGE}"] / peaks[f"{mode} 1024"]
              for mode in ("eager", "fused")}
    return [
        Row("k", "lensbatch run peak RSS, fused attention", peaks["fused 1024"], "MB",
            note=f"--batch-tokens 1024; eager {peaks['eager 1024']:,.0f} MB"),
        Row("k", f"lensbatch run peak RSS --batch-tokens {LARGE}, fused attention",
            peaks[f"fused {LARGE}"], "MB", memory["fused"], "<= 1.5x 1024",
            memory["fused"] <= 1.5,
            f"ratio: {LARGE:,} / 1,024; eager {peaks[f'eager {LARGE}']:,.0f} MB, "
            f"{memory['eager']:.2f}x"),
    ]
