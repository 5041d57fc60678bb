"""`python -m bench.llama_memory`: peak memory of `lensbatch run` on a Llama-shaped model
of about a billion parameters, against the bytes of its parameters.

The model is Llama 3.2 1B's shape (16 layers, width 2,048, 32 query heads sharing 8
key/value heads, gated MLP of 8,192, tied embeddings) with GPT-2's vocabulary (50,257):
1.08 billion parameters, seeded random weights, built from a config and saved as a
local checkpoint. Each figure is a fresh `lensbatch run` process under bench.rss (its
own peak RSS): on the big model, and on the same shape at two layers of width 32, whose
peak is what the runtime costs without weights (torch, transformers, the bridge, the
evaluation of the small corpus). On CUDA the process's peak device memory is measured
too, in-process (`--device cuda --dtype bfloat16`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.corpus import spread_corpus, write_jsonl
from bench.report import Row, print_table, write_json

# `lensbatch run` from this checkout, with or without the console script installed.
LENSBATCH_RUN = (sys.executable, "-c", "from scheduler.cli import main; main()", "run")

LLAMA_1B: dict[str, object] = {"vocab_size": 50257, "hidden_size": 2048, "intermediate_size": 8192,
            "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
            "max_position_embeddings": 8192, "tie_word_embeddings": True,
            "bos_token_id": 50256, "eos_token_id": 50256, "pad_token_id": 50256}
TINY: dict[str, object] = {**LLAMA_1B, "hidden_size": 32, "intermediate_size": 64,
                           "num_hidden_layers": 2, "num_attention_heads": 4,
                           "num_key_value_heads": 2}
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def build(config: dict[str, object], directory: Path) -> int:
    """Save a seeded random Llama of `config` with GPT-2's tokenizer; its parameters."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from worker.engine.tokenizer import gpt2_tokenizer

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**config)).eval()  # type: ignore[arg-type]
    model.save_pretrained(directory)
    gpt2_tokenizer().save_pretrained(directory)
    return sum(p.numel() for p in model.parameters())


def run_peak_rss_mb(checkpoint: Path, corpus: Path, device: str, dtype: str,
                    database: Path) -> float:
    env = {**os.environ, "LENSBATCH_DATABASE_URL": f"sqlite:///{database}"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.rss", *LENSBATCH_RUN, str(corpus), "--model",
         str(checkpoint), "--device", device, "--dtype", dtype],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"lensbatch run exited {proc.returncode}: {proc.stderr[-800:]}")
    return float(proc.stderr.rsplit("peak_rss_mb=", 1)[1])


def device_peak_mb(checkpoint: Path, corpus: Path, device: str, dtype: str,
                   database: Path) -> float:
    """Peak accelerator memory of the whole run (load, probe, evaluation), in-process."""
    import torch

    from lensbatch.jobspec import JobSpec
    from lensbatch.store.db import ensure_schema
    from scheduler.local import run_local

    torch.cuda.reset_peak_memory_stats()
    run_local(ensure_schema(f"sqlite:///{database}"), str(corpus),
              JobSpec(model=str(checkpoint), dtype=dtype).validate(), device)
    return torch.cuda.max_memory_allocated() / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.llama_memory", description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--scale", type=float, default=0.1,
                        help="corpus document lengths x this (0.1: 12 documents, ~600 words)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "bench-results")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="lensbatch-llama-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("LENSBATCH_CACHE_DIR", str(work / "cache"))
        corpus = write_jsonl(work / "corpus.jsonl", spread_corpus(args.scale))
        n_params = build(LLAMA_1B, work / "llama-1b")
        build(TINY, work / "tiny")
        param_mb = n_params * BYTES[args.dtype] / 2**20
        peak = run_peak_rss_mb(work / "llama-1b", corpus, args.device, args.dtype,
                               work / "big.db")
        base = run_peak_rss_mb(work / "tiny", corpus, args.device, args.dtype,
                               work / "tiny.db")
        rows = [
            Row("1b", "parameters (Llama-shaped, random)", n_params / 1e9, "billion"),
            Row("1b", f"parameter bytes ({args.dtype})", param_mb, "MB"),
            Row("1b", "`lensbatch run` peak RSS", peak, "MB", peak / param_mb,
                note="ratio: to the parameter bytes"),
            Row("1b", "the same run on a 2-layer, width-32 Llama", base, "MB",
                note="the runtime without weights"),
            Row("1b", "peak RSS beyond the runtime", peak - base, "MB", (peak - base) / param_mb,
                "<= 1.1x parameter bytes", (peak - base) <= 1.1 * param_mb,
                "one copy of the weights"),
        ]
        if args.device.startswith("cuda"):
            device_mb = device_peak_mb(work / "llama-1b", corpus, args.device, args.dtype,
                                       work / "device.db")
            rows.append(Row("1b", "peak device memory of the run", device_mb, "MB",
                            device_mb / param_mb, note="ratio: to the parameter bytes"))
    print_table(rows)
    meta = {"device": args.device, "dtype": args.dtype, "scale": args.scale,
            "config": LLAMA_1B}
    print(f"written to {write_json(Path(args.out), rows, meta)}")


if __name__ == "__main__":
    main()
