"""The commands on architectures beyond GPT-2, as users run them: inspect tells each
model's truth, a model without attention (Mamba) gets the behavioural metrics and a
plain word that it has no heads, and a hook a model lacks is refused at submit time."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.cli import lensbatch, user_error_line
from tests.matrix import TEXTS, write_corpus


def test_inspect_rotary_grouped_query(matrix_checkpoint: Callable[[str], str]) -> None:
    out = lensbatch("inspect", matrix_checkpoint("qwen2"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "Positional scheme: rotary" in lines
    assert ("Attention: grouped-query, 4 query heads sharing 2 key/value heads, every layer"
            in lines)
    assert "Sliding window: 16 tokens, layers 1" in lines
    assert "BOS prepended by default: no" in lines
    assert "Shape of `key` matrix: 32 x 8 (per head; W_K is 2 x 2 x 32 x 8)" in lines
    assert not any("positional embeddings" in line for line in lines)  # no W_pos


def test_inspect_mixture_of_experts(matrix_checkpoint: Callable[[str], str]) -> None:
    lines = lensbatch("inspect", matrix_checkpoint("mixtral")).stdout.splitlines()
    assert "Mixture of experts: 4 experts, 2 per token" in lines
    assert "Gated MLP: yes" in lines and "Norm: RMSNorm" in lines


def test_state_space_model_end_to_end(matrix_checkpoint: Callable[[str], str],
                                      tmp_path: Path) -> None:
    mamba = matrix_checkpoint("mamba")
    inspect = lensbatch("inspect", mamba).stdout.splitlines()
    assert "Attention: none: no attention heads (per-head scores do not apply)" in inspect
    assert "Positional scheme: none" in inspect
    assert not any("heads per layer" in line or "`query`" in line for line in inspect)
    url = f"sqlite:///{tmp_path / 'l.db'}"
    env = {"LENSBATCH_DATABASE_URL": url}
    corpus = write_corpus(tmp_path / "c.jsonl")
    refused = lensbatch("submit", str(corpus), "--model", mamba, "--activations", "pattern",
                        env=env)
    line = user_error_line(refused, "unknown activation 'pattern'", "valid names")
    assert "resid_post" in line and "attn.hook_pattern" not in line
    assert not (tmp_path / "l.db").exists()  # refused before anything was stored
    run = lensbatch("run", str(corpus), "--model", mamba, "--activations", "resid_post",
                    env=env)
    assert run.returncode == 0, run.stderr
    job = run.stdout.strip().splitlines()[-1].split()[-1]
    results = lensbatch("results", job, "--format", "jsonl", env=env).stdout.splitlines()
    assert [json.loads(row)["loss"] > 0 for row in results] == [True] * len(TEXTS)
    heads = lensbatch("heads", job, env=env)
    assert heads.returncode == 0, heads.stderr
    assert f"{mamba} has no attention heads" in heads.stdout
    assert "induction probe" in heads.stdout and "layer" not in heads.stdout  # no table
    rows = lensbatch("heads", job, "--format", "jsonl", env=env)
    assert rows.stdout == "" and "no attention heads" in rows.stderr
    report = lensbatch("report", job, "--output", str(tmp_path / "r.html"), env=env)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r.html").read_text()
    assert 'id="no-heads"' in page and "no attention heads" in page
    assert 'id="induction-heads"' not in page and 'id="probe"' in page
