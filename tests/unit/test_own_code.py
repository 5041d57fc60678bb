"""A checkpoint that needs its own Python code (config.json's auto_map, a model_type
transformers lacks) is refused by `submit` exactly as by `run`: one line, before the
broker is tried or anything is stored; lensbatch never runs a checkpoint's code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lensbatch.errors import ModelUnavailable
from lensbatch.models import Source, model_source
from lensbatch.store import schema
from tests.cli import count_rows, lensbatch, user_error_line

AUTO_MAP = {"AutoConfig": "configuration_mine.MineConfig",
            "AutoModelForCausalLM": "modeling_mine.MineForCausalLM"}


def with_config(source: str, target: Path, **changes: object) -> str:
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, **changes}))
    return str(target)


def test_submit_refuses_what_run_refuses(tmp_path: Path, tiny_checkpoint: str,
                                         sqlite_url: str) -> None:
    model = with_config(tiny_checkpoint, tmp_path / "mine", auto_map=AUTO_MAP,
                        model_type="mine", architectures=["MineForCausalLM"])
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "One document."}\n')
    # no broker listens here: a refusal that came after queueing would name the broker
    env = {"LENSBATCH_DATABASE_URL": sqlite_url, "LENSBATCH_BROKER_URL": "redis://127.0.0.1:9/0"}
    lines = [user_error_line(lensbatch(command, str(corpus), "--model", model, env=env),
                             f"cannot load model {model!r}: it needs its own code",
                             "auto_map", "'mine'", "trust_remote_code")
             for command in ("submit", "run")]
    assert lines[0] == lines[1]
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists() or count_rows(
        sqlite_url, schema.jobs) == 0


def test_an_auto_map_over_a_known_model_type_is_no_own_code(tmp_path: Path,
                                                            tiny_checkpoint: str) -> None:
    # transformers loads its own GPT-2 code for model_type gpt2, auto_map or not
    known = with_config(tiny_checkpoint, tmp_path / "gpt2", auto_map=AUTO_MAP)
    assert model_source(known) == Source.LOCAL
    unknown = with_config(tiny_checkpoint, tmp_path / "other", auto_map=AUTO_MAP,
                          model_type="mine")
    with pytest.raises(ModelUnavailable, match="needs its own code"):
        model_source(unknown)
