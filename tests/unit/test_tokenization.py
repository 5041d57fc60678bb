"""Tokens exactly as TransformerLens makes them, for tokenizers that add their own BOS
(Llama, Gemma), that have none (Qwen, T5), and for models that want none (--bos and
--no-bos override the model's rule)."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast

from lensbatch.jobspec import JobSpec
from tests.cli import lensbatch
from tests.matrix import TEXTS, write_corpus
from worker.engine.evaluate import analyse_texts, tokenize
from worker.engine.models import load_model
from worker.engine.probe import run_probe
from worker.engine.tokenizer import BOS_TOKEN, gpt2_tokenizer

BOS = 50256  # GPT-2's <|endoftext|>


def with_tokenizer(checkpoint: str, target: Path, adds_bos: bool) -> str:
    """`checkpoint`'s model beside a tokenizer built from GPT-2's vocabulary: one whose
    post-processor adds BOS itself (Llama-style), or one with no BOS token at all."""
    target.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(checkpoint) / name, target / name)
    backend = copy.deepcopy(gpt2_tokenizer().backend_tokenizer)
    options: dict[str, object] = {"eos_token": BOS_TOKEN, "pad_token": BOS_TOKEN}
    if adds_bos:
        backend.post_processor = TemplateProcessing(
            single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A $B",
            special_tokens=[(BOS_TOKEN, BOS)])
        options.update(bos_token=BOS_TOKEN, add_bos_token=True)
    PreTrainedTokenizerFast(tokenizer_object=backend, **options).save_pretrained(target)
    return str(target)


@pytest.mark.parametrize("adds_bos", [True, False], ids=["adds-its-own-bos", "no-bos-token"])
def test_tokens_equal_to_tokens(matrix_checkpoint: Callable[[str], str], tmp_path: Path,
                                adds_bos: bool) -> None:
    path = with_tokenizer(matrix_checkpoint("llama"), tmp_path / "ckpt", adds_bos)
    model = load_model(path, "cpu", "float32")
    raw = model.tokenizer("Hi there")["input_ids"]
    assert (raw[0] == BOS) == adds_bos  # the tokenizer really adds BOS itself, or not
    for prepend in (None, True, False):
        ids = tokenize(model, TEXTS, prepend)
        assert ids == [model.to_tokens(t, prepend_bos=prepend, truncate=False)[0].tolist()
                       for t in TEXTS]
        for row in ids:  # one BOS with it (never two), none without
            assert row[0] == BOS if prepend is not False else row[0] != BOS
            assert row[1] != BOS
    evaluation = analyse_texts(model, TEXTS, JobSpec())[0]
    assert evaluation.metrics.n_tokens == len(tokenize(model, TEXTS[:1], None)[0])
    assert run_probe(model).n_tokens == 63  # (n_ctx 128 - 2) // 2 random tokens per copy


def test_bos_follows_the_model_unless_the_job_says(matrix_checkpoint: Callable[[str], str],
                                                   tmp_path: Path) -> None:
    """Qwen2 wants no BOS (default_prepend_bos False), Llama wants one; --bos and
    --no-bos override either, end to end through `lensbatch run`."""
    corpus = write_corpus(tmp_path / "c.jsonl")
    tokens: dict[tuple[str, str], int] = {}
    for arch in ("qwen2", "llama"):
        for flag in ("", "--bos", "--no-bos"):
            env = {"LENSBATCH_DATABASE_URL": f"sqlite:///{tmp_path / f'{arch}{flag}.db'}"}
            args = ["run", str(corpus), "--model", matrix_checkpoint(arch)]
            out = lensbatch(*args, *([flag] if flag else []), env=env)
            assert out.returncode == 0, out.stderr
            job = out.stdout.strip().splitlines()[-2].split()[-1]
            rows = lensbatch("results", job, "--format", "csv", env=env).stdout.splitlines()
            column = rows[0].split(",").index("n_tokens")
            tokens[arch, flag] = sum(int(r.split(",")[column]) for r in rows[1:])
    n_docs = len(TEXTS)
    assert tokens["qwen2", "--bos"] == tokens["qwen2", ""] + n_docs
    assert tokens["qwen2", "--no-bos"] == tokens["qwen2", ""]
    assert tokens["llama", ""] == tokens["llama", "--bos"] == tokens["llama", "--no-bos"] + n_docs
