"""Where lensbatch's time goes against the raw Hugging Face forward, on identical work.

    python -m bench.profile [--scale 0.5] [--reps 3] [--top 15]

Row j's checkpoint (GPT-2 small's shape, seeded random weights) and corpus (60
documents of 19 to 1,999 tokens, disjoint windows as lm-evaluation-harness cuts them).
Timed side by side, on the same windows, one window per forward pass as lm-eval runs
them at batch size 1:

- hf: transformers' own model, logits of every position (what lm-eval's forward does);
- hf-final: the same, the final residual stream only (`logits_to_keep=1`);
- bridge: the TransformerBridge's forward, the final residual stream only, no hook;
- engine: lensbatch's evaluation of the tokens (worker.engine.evaluate.analyse_tokens),
  with every default metric and with --no-heads.

Then a cProfile of the engine, its top functions by own time. Prints seconds and
tokens/s; nothing is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from bench.checkpoints import save_gpt2
from bench.corpus import rolling_lengths, token_corpus
from bench.lmeval import hf_model, hf_pass
from bench.timing import median, side_by_side
from lensbatch.jobspec import JobSpec
from worker.engine.evaluate import analyse_tokens, tokenize
from worker.engine.models import RANDOM_SEED, load_model
from worker.engine.tokenizer import gpt2_tokenizer
from worker.engine.windows import document_windows


def hf_runs(checkpoint: str, windows: list[list[int]]) -> dict[str, Callable[[], object]]:
    model = hf_model(checkpoint)
    return {"hf": hf_pass(model, windows), "hf-final": hf_pass(model, windows, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--scale", type=float, default=1.0, help="document lengths x this")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)

    tokenizer = gpt2_tokenizer()
    lengths = [max(2, int(n * args.scale)) for n in rolling_lengths()]
    texts = token_corpus(lengths, tokenizer.encode, tokenizer.decode)
    work = Path(tempfile.mkdtemp(prefix="lensbatch-profile-"))
    checkpoint = save_gpt2(work / "gpt2-small-random", RANDOM_SEED)
    model = load_model(checkpoint, "cpu", "float32")
    spec = JobSpec(model=checkpoint, windows="disjoint")
    behaviour = replace(spec, heads=False)
    docs = tokenize(model, texts, spec.prepend_bos)
    n_ctx = int(model.cfg.n_ctx)
    windows = [w.tokens for i, d in enumerate(docs)
               for w in document_windows(i, d, n_ctx, "disjoint", 0)]
    n_tokens = sum(map(len, docs))
    inputs = [torch.tensor([w]) for w in windows]

    def bridge() -> None:
        with torch.inference_mode():
            for ids in inputs:
                model(ids, return_type=None, logits_to_keep=1)

    runs: dict[str, Callable[[], object]] = {
        **hf_runs(checkpoint, windows), "bridge": bridge,
        "engine": lambda: analyse_tokens(model, docs, spec),
        "engine --no-heads": lambda: analyse_tokens(model, docs, behaviour),
    }
    for run in runs.values():  # warm-up
        run()
    seconds = side_by_side(runs, args.reps)
    print(f"{len(docs)} documents, {n_tokens:,} tokens, {len(windows)} windows; "
          f"torch threads {torch.get_num_threads()}; median of {args.reps}")
    base = median(seconds["hf"])
    for name, values in seconds.items():
        print(f"  {name:<18} {median(values):7.2f} s  {n_tokens / median(values):7.0f} "
              f"tokens/s  {base / median(values):.2f}x hf")
    for name, job in (("engine", spec), ("engine --no-heads", behaviour)):
        profiler = cProfile.Profile()
        profiler.runcall(analyse_tokens, model, docs, job)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
        print(f"\ncProfile of {name}, top {args.top} by own time:")
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


if __name__ == "__main__":
    main()
