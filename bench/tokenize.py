"""`python -m bench.tokenize [--megabytes 50]`: tokenizing one huge document, whole (as
lensbatch did before worker/engine/streaming.py) and streamed in pieces; prints seconds,
peak RSS and the tokens of each, and whether the ids are identical.

Each way runs in a fresh process under bench.rss, so its peak RSS is its own: the
interpreter, the tokenizer, the text (read from a file) and the tokenization. The text
is the benchmark corpus's English-like prose, documents joined by blank lines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

from bench.corpus import document

WAYS = ("whole", "streamed")


def write_text(path: Path, megabytes: float, seed: int = 0) -> Path:
    """About `megabytes` MB of prose: 64 distinct documents of ~100 KB, repeated."""
    rng = random.Random(seed)
    pool = [document(rng, 20_000) for _ in range(64)]
    target = int(megabytes * 1e6)
    with path.open("w", encoding="utf-8") as out:
        written, i = 0, 0
        while written < target:
            part = f"Part {i}. {pool[i % len(pool)]}\n\n"[:target - written]
            out.write(part)
            written += len(part)
            i += 1
    return path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_one(way: str, text_path: Path) -> dict[str, object]:
    """In this process: tokenize the file's text one way; seconds, tokens, a digest."""
    from worker.engine.streaming import streamed_ids
    from worker.engine.tokenizer import gpt2_tokenizer

    tokenizer = gpt2_tokenizer()
    tokenizer("warm up", add_special_tokens=False)
    text = text_path.read_text(encoding="utf-8")
    before = rss_mb()
    started = time.perf_counter()
    if way == "whole":
        ids = tokenizer([text], add_special_tokens=False)["input_ids"][0]
    else:
        ids = streamed_ids(tokenizer, text, [])
    seconds = time.perf_counter() - started
    digest = hashlib.sha256(array("i", ids).tobytes()).hexdigest()[:16]
    return {"way": way, "seconds": round(seconds, 1), "tokens": len(ids),
            "rss_before_mb": round(before, 1), "digest": digest}


def run_one(way: str, text_path: Path) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.rss", sys.executable, "-m", "bench.tokenize",
         "--one", way, "--text", str(text_path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{way} exited {proc.returncode}: {proc.stderr[-800:]}")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    found["peak_rss_mb"] = float(proc.stderr.rsplit("peak_rss_mb=", 1)[1])
    return dict(found)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tokenize", description=__doc__)
    parser.add_argument("--megabytes", type=float, default=50.0)
    parser.add_argument("--ways", default=",".join(WAYS), help="whole,streamed")
    parser.add_argument("--one", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--text", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.one, args.text)))
        return
    with tempfile.TemporaryDirectory(prefix="lensbatch-tokenize-") as tmp:
        text_path = write_text(Path(tmp) / "huge.txt", args.megabytes)
        size = text_path.stat().st_size / 1e6
        runs = [run_one(way, text_path) for way in args.ways.split(",")]
    print(f"one document of {size:.1f} MB, GPT-2 tokenizer")
    print("| way | seconds | peak RSS (MB) | RSS before tokenizing (MB) | tokens | ids sha256 |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for r in runs:
        print(f"| {r['way']} | {r['seconds']} | {r['peak_rss_mb']:.0f} | {r['rss_before_mb']:.0f} "
              f"| {r['tokens']:,} | {r['digest']} |")
    print("identical ids" if len({r["digest"] for r in runs}) == 1 else "IDS DIFFER")


if __name__ == "__main__":
    main()
