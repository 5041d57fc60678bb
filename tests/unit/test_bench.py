"""The benchmark's own pieces: its corpus, its ratios and its JSON table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.corpus import rolling_lengths, spread_corpus, token_corpus, write_large_jsonl
from bench.lmeval import agreement
from bench.report import Row, print_table, write_json
from bench.timing import interleaved, paired_ratio, side_by_side


def test_spread_corpus_is_deterministic_and_spread() -> None:
    texts = spread_corpus(1.0, per_length=2)
    assert texts == spread_corpus(1.0, per_length=2)
    words = sorted(len(t.split()) for t in texts)
    assert len(texts) == 24
    assert words[0] < 40 and words[-1] > 2000  # tens to thousands of tokens


def test_large_corpus_has_unique_documents(tmp_path: Path) -> None:
    path = write_large_jsonl(tmp_path / "big.jsonl", 300, 200)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 300 and len({r["text"] for r in rows}) == 300


def test_side_by_side_alternates_and_ratio_is_paired() -> None:
    order: list[str] = []
    runs = {"x": lambda: order.append("x"), "y": lambda: order.append("y")}
    seconds = side_by_side(runs, 3)
    assert order == ["x", "y", "y", "x", "x", "y"]
    assert all(len(v) == 3 for v in seconds.values())
    assert paired_ratio([2.0, 4.0, 9.0], [1.0, 1.0, 3.0]) == pytest.approx(3.0)


def test_table_is_printed_and_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [Row("b", "worker evaluation", 64.1, "tokens/s", 0.98, ">= 0.90", True),
            Row("g", "peak RSS with activations", None, "MB", note="pending summaries")]
    print_table(rows)
    out = capsys.readouterr().out
    assert "0.98" in out and "pending summaries" in out
    path = write_json(tmp_path / "results", rows, {"device": "cuda:0", "dtype": "bfloat16"})
    data = json.loads(path.read_text())
    assert path.name.startswith("bench-cuda0-bfloat16-")
    assert data["rows"][0]["ratio"] == 0.98 and data["rows"][1]["value"] is None


def test_interval_row_times_a_small_job(tmp_path: Path) -> None:
    from bench.intervals import interval_times, summary

    times = interval_times(tmp_path, 200, 2)
    assert times.n_docs == 200 and len(times.one_job_s) == len(times.two_jobs_s) == 2
    assert all(value > 0 for value in summary(times).values())


def test_rolling_corpus_has_the_lengths_asked_for() -> None:
    from worker.engine.tokenizer import gpt2_tokenizer

    lengths = rolling_lengths()
    assert (len(lengths), lengths[0], lengths[-1]) == (60, 19, 1999)
    assert 25_000 < sum(lengths) < 27_000 and lengths == sorted(lengths)
    tokenizer = gpt2_tokenizer()
    texts = token_corpus(lengths[:8], tokenizer.encode, tokenizer.decode)
    found = sorted(len(tokenizer.encode(t)) for t in texts)
    assert all(abs(a - b) <= 1 for a, b in zip(found, lengths[:8], strict=True))
    assert texts == token_corpus(lengths[:8], tokenizer.encode, tokenizer.decode)


def test_interleaved_runs_report_their_own_seconds() -> None:
    order: list[str] = []

    def run(name: str, seconds: float) -> float:
        order.append(name)
        return seconds

    found = interleaved({"x": lambda: run("x", 2.0), "y": lambda: run("y", 5.0)}, 2)
    assert order == ["x", "y", "y", "x"]
    assert found == {"x": [2.0, 2.0], "y": [5.0, 5.0]}


def test_agreement_is_the_largest_difference() -> None:
    relative, absolute = agreement([100.0, 10.5, 3.0], [100.2, 10.0, 3.0])
    assert absolute == pytest.approx(0.5)
    assert relative == pytest.approx(0.05)
