"""`python -m bench`: run the suite, print the table, write it as JSON."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench.fused import fused_rows
from bench.report import Row, print_table, write_json
from bench.rows import (
    Options,
    ablation_rows,
    forward_rows,
    interval_rows,
    lmeval_group,
    memory_rows,
    queue_rows,
    submit_rows,
    top_group,
)

ALL_ROWS = "abcdefghijknr"


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--model", default="gpt2-small-random")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="document lengths x this (1.0: 14 to ~2,500 tokens)")
    parser.add_argument("--per-length", type=int, default=1,
                        help="documents per length (more: larger batches on a GPU)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch-tokens", type=int, default=None,
                        help="tokens per forward pass (default: the worker's for the device)")
    parser.add_argument("--submit-docs", type=int, default=100_000)
    parser.add_argument("--interval-docs", type=int, default=100_000,
                        help="documents per job for row i (intervals, compare)")
    parser.add_argument("--rows", default=ALL_ROWS, help="which rows to run, e.g. abcd")
    parser.add_argument("--lmeval-corpus", choices=("spread", "rolling"), default="spread",
                        help="row j's corpus: the one of rows a-d, or 60 documents of "
                             "19 to 1,999 tokens (x --scale)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "bench-results")
    args = parser.parse_args(argv)
    return Options(model=args.model, device=args.device, dtype=args.dtype, scale=args.scale,
                   per_length=args.per_length,
                   reps=args.reps, batch_tokens=args.batch_tokens,
                   submit_docs=args.submit_docs, rows=args.rows, out=Path(args.out),
                   interval_docs=args.interval_docs, lmeval_corpus=args.lmeval_corpus)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    options = parse(argv)
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="lensbatch-bench-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("LENSBATCH_CACHE_DIR", str(work / "cache"))
        for letters, group in (("abcd", forward_rows), ("egh", queue_rows),
                               ("f", submit_rows), ("g", memory_rows), ("i", interval_rows),
                               ("j", lmeval_group), ("k", fused_rows), ("n", top_group),
                               ("r", ablation_rows)):
            if set(letters) & set(options.rows):
                print(f"bench: rows {letters} ({time.perf_counter() - started:.0f} s)",
                      file=sys.stderr, flush=True)
                found = group(options, work)
                print_table(found, sys.stderr)  # as it comes: a later group may fail
                rows += found
    seconds = time.perf_counter() - started
    print_table(rows)
    meta = {"model": options.model, "device": options.device, "dtype": options.dtype,
            "scale": options.scale, "lmeval_corpus": options.lmeval_corpus,
            "per_length": options.per_length, "reps": options.reps, "seconds": round(seconds, 1),
            "cpus": os.cpu_count(), "machine": platform.platform(),
            "load_average": os.getloadavg()}
    path = write_json(options.out, rows, meta)
    print(f"{seconds:.0f} s; written to {path}")


if __name__ == "__main__":
    main()
