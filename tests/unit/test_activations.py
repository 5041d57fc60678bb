"""Naming activations and statistics: shorthand through TransformerLens's get_act_name,
full names, and one clear error listing the valid names, all without torch."""

from __future__ import annotations

import pytest

from lensbatch.errors import JobSpecError
from lensbatch.hooks import ModelShape, get_act_name, hook_layer, resolve_activations
from lensbatch.jobspec import JobSpec
from lensbatch.models import BUILTINS, model_shape
from tests.cli import run_without_torch

GPT2 = ModelShape(n_layers=12)
TOY = BUILTINS["toy-induction"].shape


def test_get_act_name_is_transformer_lens_own() -> None:
    from transformer_lens import utilities as utils

    for args in [("pattern", 0), ("resid_post", 3), ("k6", None), ("mlp_post", 2),
                 ("embed", None), ("scale", None), ("blocks.0.attn.hook_pattern", None)]:
        assert get_act_name(*args) == utils.get_act_name(*args)


def test_shorthand_and_full_names() -> None:
    # As in the seed notebook: cache["pattern", 0] is cache["blocks.0.attn.hook_pattern"].
    assert resolve_activations(["pattern0"], GPT2) == ["blocks.0.attn.hook_pattern"]
    assert resolve_activations(["blocks.0.attn.hook_pattern"], GPT2) == [
        "blocks.0.attn.hook_pattern"]
    every = resolve_activations(["resid_post"], GPT2)
    assert every == [f"blocks.{layer}.hook_resid_post" for layer in range(12)]
    assert resolve_activations(["mlp_post", "blocks.3.attn.hook_z", "embed"], GPT2)[-2:] == [
        "blocks.3.attn.hook_z", "hook_embed"]
    assert resolve_activations(["pattern", "pattern1"], TOY) == [
        "blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"]
    assert hook_layer("blocks.11.mlp.hook_post") == 11 and hook_layer("hook_embed") is None


@pytest.mark.parametrize(("names", "shape"), [
    (["resid_postt"], GPT2), (["blocks.12.hook_resid_post"], GPT2), (["mlp_post"], TOY),
    (["blocks.0.ln1.hook_scale"], TOY), (["blocks.0.attn.hook_nothing"], ModelShape(None)),
])
def test_unknown_names_are_rejected_with_the_valid_ones(names: list[str],
                                                        shape: ModelShape) -> None:
    with pytest.raises(JobSpecError) as error:
        resolve_activations(names, shape)
    message = str(error.value)
    assert repr(names[0]) in message and "valid names" in message
    assert "attn.hook_pattern" in message and "resid_post" in message


def test_statistics_are_checked() -> None:
    JobSpec(activations=("pattern",), stats=("mean", "std", "norm", "absmax",
                                             "frac_zero")).validate()
    with pytest.raises(JobSpecError, match="median.*mean, std, norm, absmax, frac_zero"):
        JobSpec(activations=("pattern",), stats=("median",)).validate()
    with pytest.raises(JobSpecError, match="--activations"):
        JobSpec(stats=("mean",)).validate()


def test_local_checkpoint_shape_is_read_from_its_config(tiny_checkpoint: str) -> None:
    assert model_shape(tiny_checkpoint).n_layers == 2
    assert model_shape("gpt2").n_layers is None  # a hub model: known once loaded


def test_builtin_shapes_are_the_loaded_models_hooks() -> None:
    from worker.engine.models import load_model, loaded_shape

    toy = load_model("toy-induction", "cpu", "float32")
    assert loaded_shape(toy) == TOY
    assert all(name in toy.hook_dict for name in TOY.hook_names())


def test_checking_names_imports_no_torch() -> None:
    code = ("from lensbatch.hooks import resolve_activations\n"
            "from lensbatch.models import model_shape\n"
            "print(resolve_activations(['pattern', 'k6'], model_shape('gpt2-small-random'))[0])\n")
    assert run_without_torch(code).strip() == "blocks.0.attn.hook_pattern"
