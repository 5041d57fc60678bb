"""Row i: lm-evaluation-harness against lensbatch, on identical work.

One saved checkpoint (GPT-2 small's shape with the seeded random weights of
gpt2-small-random) and one corpus, measured side by side in alternating order:

- lm-evaluation-harness's own `loglikelihood_rolling` at batch size 1, run by the
  Python of a virtualenv of its own (bench/lmeval_run.py). lm-eval is no dependency of
  lensbatch: the benchmark creates that virtualenv when it is missing
  (LENSBATCH_LMEVAL_VENV, default .venv-lmeval) and skips the rows, saying why, when it
  cannot;
- the raw Hugging Face forward of the same weights (transformers' GPT-2 with its
  default attention), over the same windows one at a time, logits and nothing else;
- `lensbatch run --windows disjoint` end to end (SQLite), with every default metric,
  and with `--no-heads`.

Each lensbatch document's nll_sum is checked against lm-eval's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.report import Row
from bench.timing import interleaved, median, paired_ratio, timed
from lensbatch.jobspec import JobSpec

LMEVAL = "lm-eval[hf]==0.4.13"
TORCH = "torch==2.13.0"  # first: a bare torch requirement pulls a multi-GB CUDA build
RUNNER = Path(__file__).with_name("lmeval_run.py")
REPO = Path(__file__).resolve().parent.parent


def default_venv() -> Path:
    return Path(os.environ.get("LENSBATCH_LMEVAL_VENV") or REPO / ".venv-lmeval")


def _has_lmeval(python: Path) -> bool:
    if not python.exists():
        return False
    check = subprocess.run([str(python), "-c", "import lm_eval.models.huggingface"],
                           capture_output=True)
    return check.returncode == 0


def lmeval_python(venv: Path, log: Path) -> Path | str:
    """The virtualenv's Python with lm-eval importable, set up when missing; a string
    saying why not when it cannot be (no network, no venv module)."""
    python = venv / "bin" / "python"
    if _has_lmeval(python):
        return python
    print(f"bench: setting up {LMEVAL} in {venv} (once; log: {log})", file=sys.stderr)
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "-q", TORCH],
             [str(python), "-m", "pip", "install", "-q", LMEVAL]]
    with log.open("a") as out:
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                return f"cannot set up lm-evaluation-harness: `{' '.join(step)}` failed ({log})"
    return python if _has_lmeval(python) else f"lm_eval does not import in {venv} ({log})"


@dataclass(frozen=True)
class LmEvalRun:
    seconds: float  # loglikelihood_rolling on the corpus, model loading left out
    nll_sums: list[float]  # per document, in corpus order
    peak_rss_mb: float
    version: str


def run_lmeval(python: Path, checkpoint: str, corpus: Path, out: Path) -> LmEvalRun:
    """lm-eval's loglikelihood_rolling at batch size 1, in a process of its own."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    # -P: the script's folder (bench/, whose queue.py would hide the standard library's)
    # is not put on sys.path.
    proc = subprocess.run([str(python), "-P", str(RUNNER), checkpoint, str(corpus), "1",
                           str(out)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"lm-eval exited {proc.returncode}: {proc.stderr[-800:]}")
    data = json.loads(out.read_text())
    return LmEvalRun(data["seconds"], data["nll_sums"], data["peak_rss_mb"], data["lm_eval"])


def hf_model(checkpoint: str) -> Any:
    """transformers' own model of the checkpoint, float32, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()


def hf_pass(model: Any, windows: list[list[int]], logits_to_keep: int = 0
            ) -> Callable[[], None]:
    """One forward pass of `model` per window, batch size 1: the logits of every position
    (logits_to_keep 0, as lm-eval asks), or of the last `logits_to_keep` only."""
    import torch

    inputs = [torch.tensor([w]) for w in windows]

    def run() -> None:
        with torch.inference_mode():
            for ids in inputs:
                model(input_ids=ids, logits_to_keep=logits_to_keep)

    return run


def hf_forward(checkpoint: str, windows: list[list[int]]) -> Callable[[], float]:
    """(raw) transformers' own model of the checkpoint, one window at a time, logits only."""
    run = hf_pass(hf_model(checkpoint), windows)
    run()  # warm-up
    return lambda: timed(run)


def agreement(ours: list[float], theirs: list[float]) -> tuple[float, float]:
    """Largest relative and largest absolute difference of per-document nll_sums."""
    pairs = list(zip(ours, theirs, strict=True))
    relative = max(abs(a - b) / max(abs(b), 1e-12) for a, b in pairs)
    return relative, max(abs(a - b) for a, b in pairs)


def lmeval_rows(texts: list[str], work: Path, reps: int, batch_tokens: int | None) -> list[Row]:
    from bench.checkpoints import save_gpt2
    from bench.corpus import write_jsonl
    from bench.memory import run_peak_rss_mb
    from lensbatch.store.db import ensure_schema
    from scheduler.local import run_local
    from worker.engine.evaluate import evaluate_texts, tokenize
    from worker.engine.models import RANDOM_SEED, load_model
    from worker.engine.windows import document_windows

    python = lmeval_python(default_venv(), work / "lmeval-setup.log")
    if isinstance(python, str):
        print(f"bench: row j skipped: {python}", file=sys.stderr)
        return [Row("j", "lm-eval loglikelihood_rolling", None, "tokens/s", note=python)]
    checkpoint = save_gpt2(work / "gpt2-small-random", RANDOM_SEED)
    corpus = write_jsonl(work / "lmeval.jsonl", texts)
    spec = JobSpec(model=checkpoint, windows="disjoint", batch_tokens=batch_tokens)
    behaviour = replace(spec, heads=False)
    model = load_model(checkpoint, "cpu", "float32")
    docs = tokenize(model, texts, spec.prepend_bos)
    n_tokens = sum(map(len, docs))
    windows = [w.tokens for i, d in enumerate(docs)
               for w in document_windows(i, d, int(model.cfg.n_ctx), "disjoint", 0)]
    databases = iter(range(10**6))

    def lensbatch(job: JobSpec) -> float:
        engine = ensure_schema(f"sqlite:///{work / f'lmeval-{next(databases)}.db'}")
        return timed(lambda: run_local(engine, str(corpus), job, "cpu"))

    lm_runs: list[LmEvalRun] = []

    def lmeval() -> float:
        lm_runs.append(run_lmeval(python, checkpoint, corpus, work / "lmeval-out.json"))
        return lm_runs[-1].seconds

    lensbatch(behaviour)  # warm-up: tokenizer, first-call allocations
    runs = {"lmeval": lmeval, "hf": hf_forward(checkpoint, windows),
            "lensbatch": lambda: lensbatch(spec), "behaviour": lambda: lensbatch(behaviour)}
    s = interleaved(runs, reps)
    relative, absolute = agreement([m.nll_sum for m in evaluate_texts(model, texts, spec)],
                                   lm_runs[0].nll_sums)
    rss = run_peak_rss_mb(corpus, checkpoint, work / "lmeval-rss.db", ("--windows", "disjoint"))
    lm = lm_runs[0]

    def rate(name: str) -> float:
        return n_tokens / median(s[name])

    vs_lm = {name: paired_ratio(s["lmeval"], s[name]) for name in s}
    vs_hf = {name: paired_ratio(s["hf"], s[name]) for name in s}
    corpus_note = f"{len(docs)} docs, {min(map(len, docs))}-{max(map(len, docs))} tokens"
    return [
        Row("j", "lm-eval loglikelihood_rolling, batch size 1", rate("lmeval"), "tokens/s",
            note=f"lm-eval {lm.version}; {n_tokens} tokens, {corpus_note}; "
                 f"peak RSS {lm.peak_rss_mb:,.0f} MB"),
        Row("j", "raw Hugging Face forward, same windows, batch size 1", rate("hf"),
            "tokens/s", vs_lm["hf"], note="transformers' GPT-2, logits only; "
                                          "ratio: speed / lm-eval's"),
        Row("j", "lensbatch run --windows disjoint", rate("lensbatch"), "tokens/s",
            vs_lm["lensbatch"], ">= 1.15x lm-eval", vs_lm["lensbatch"] >= 1.15,
            f"{vs_hf['lensbatch']:.2f}x the raw forward; peak RSS {rss:,.0f} MB"),
        Row("j", "lensbatch run --windows disjoint --no-heads", rate("behaviour"), "tokens/s",
            vs_lm["behaviour"], ">= 1.25x lm-eval", vs_lm["behaviour"] >= 1.25,
            f"{vs_hf['behaviour']:.2f}x the raw forward"),
        Row("j", "nll_sum vs lm-eval, largest relative difference", relative, "",
            target="<= 1e-4", met=relative <= 1e-4,
            note=f"largest absolute {absolute:.2g} nats, over {len(docs)} documents"),
    ]
