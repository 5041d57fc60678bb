"""bench.tokenize measures the two ways of tokenizing a huge document on the same ids."""

from __future__ import annotations

from pathlib import Path


def test_tokenize_bench_measures_both_ways_on_the_same_ids(tmp_path: Path) -> None:
    from bench.tokenize import measure_one, write_text

    path = write_text(tmp_path / "huge.txt", 0.4)
    assert abs(path.stat().st_size - 400_000) < 1000
    whole, streamed = (measure_one(way, path) for way in ("whole", "streamed"))
    assert whole["digest"] == streamed["digest"] and whole["tokens"] == streamed["tokens"]
    assert int(str(whole["tokens"])) > 50_000
