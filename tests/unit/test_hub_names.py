"""Hub names: TransformerLens's aliases resolve to official names and load through the
bridge from the Hugging Face cache; offline and uncached, they fail at once, in one
line, before torch is imported and before anything is stored."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from lensbatch.models import Source, hub_name, model_source
from lensbatch.store import schema
from tests.cli import count_rows, lensbatch, run_without_torch, user_error_line
from tests.matrix import write_corpus


@pytest.mark.parametrize(("alias", "official"), [
    ("pythia-70m", "EleutherAI/pythia-70m"),
    ("gemma-2-2b", "google/gemma-2-2b"),
    ("meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-1B"),
    ("gpt2-small", "gpt2"),
])
def test_aliases_resolve_to_official_names(alias: str, official: str) -> None:
    assert hub_name(alias) == official
    assert model_source(alias) == Source.HUB


def test_offline_uncached_fails_before_torch(tmp_path: Path) -> None:
    code = ("import os\n"
            f"os.environ.update(HF_HUB_OFFLINE='1', HF_HUB_CACHE={str(tmp_path)!r})\n"
            "from lensbatch.errors import ModelUnavailable\n"
            "from lensbatch.models import check_loadable\n"
            "try:\n    check_loadable('pythia-70m')\n"
            "except ModelUnavailable as exc:\n    print(exc)\n")
    message = run_without_torch(code)
    assert "'pythia-70m' (EleutherAI/pythia-70m)" in message and "HF_HUB_OFFLINE" in message


@pytest.mark.parametrize("command", ["run", "inspect", "score"])
def test_offline_uncached_is_one_line(tmp_path: Path, command: str) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    corpus = write_corpus(tmp_path / "c.jsonl")
    args = {"run": ["run", str(corpus), "--model", "gemma-2-2b"],
            "inspect": ["inspect", "gemma-2-2b"],
            "score": ["score", "Hello", "--model", "gemma-2-2b"]}[command]
    result = lensbatch(*args, env={"HF_HUB_CACHE": str(tmp_path / "hub"),
                                   "LENSBATCH_DATABASE_URL": url})
    user_error_line(result, "'gemma-2-2b' (google/gemma-2-2b)", "not in the Hugging Face cache")
    if command == "run":
        assert count_rows(url, schema.jobs) == 0  # nothing half-written


def test_alias_loads_from_the_cache(matrix_checkpoint: Callable[[str], str],
                                    tmp_path: Path) -> None:
    """A warm cache holding a (tiny) GPT-NeoX under EleutherAI/pythia-70m: the alias
    runs offline through the bridge, and the card says what was loaded."""
    snapshot = tmp_path / "hub" / "models--EleutherAI--pythia-70m" / "snapshots" / "0"
    shutil.copytree(matrix_checkpoint("gpt-neox"), snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0")
    url = f"sqlite:///{tmp_path / 'l.db'}"
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "LENSBATCH_DATABASE_URL": url}
    result = lensbatch("run", str(write_corpus(tmp_path / "c.jsonl")), "--model",
                       "pythia-70m", env=env)
    assert result.returncode == 0, result.stderr
    engine = create_engine(url)
    with engine.connect() as connection:
        card = connection.execute(select(schema.models)).one()
    engine.dispose()
    assert (card.name, card.source) == ("pythia-70m", "hub")
    assert card.config["architecture"]["class"] == "GPTNeoXForCausalLM"
    assert "DEPRECATED" not in result.stderr  # loaded under its official name
