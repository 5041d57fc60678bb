"""Names of the activations and statistics a job may summarise, checked without torch.

Users name hooks as in the seed notebook: shorthand (`pattern`, `resid_post`, `k6`)
expanded by TransformerLens's own `get_act_name`, or full canonical names
(`blocks.0.attn.hook_pattern`). Shorthand without a layer means every layer that has
that hook (a hybrid has attention hooks on its attention layers only). The
scheduler checks names at submit time, before anything is stored; the worker checks
them again against the loaded model's hooks.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from types import ModuleType

from lensbatch.errors import JobSpecError

STATS = ("mean", "std", "norm", "absmax", "frac_zero")

# Canonical TransformerLens hook names inside block {layer} (the suffix after
# "blocks.{layer}."), and outside any block. Which of them a model has depends on its
# architecture (an attention-only model has no MLP hooks; no LayerNorm, no ln hooks).
BLOCK_HOOKS = (
    "hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
    "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_z",
    "attn.hook_attn_scores", "attn.hook_pattern",
    "ln1.hook_scale", "ln1.hook_normalized", "ln2.hook_scale", "ln2.hook_normalized",
    "mlp.hook_pre", "mlp.hook_post",
)
MLP_HOOKS = ("hook_resid_mid", "hook_mlp_out", "ln2.hook_scale", "ln2.hook_normalized",
             "mlp.hook_pre", "mlp.hook_post")
NORM_HOOKS = ("ln1.hook_scale", "ln1.hook_normalized", "ln2.hook_scale",
              "ln2.hook_normalized", "ln_final.hook_scale", "ln_final.hook_normalized")
GLOBAL_HOOKS = ("hook_embed", "hook_pos_embed", "ln_final.hook_scale",
                "ln_final.hook_normalized")
# Hooks whose activations are [batch, head, query, key]: summarised per head, over
# the keys each query can see.
ATTENTION_HOOKS = ("attn.hook_pattern", "attn.hook_attn_scores")
# Hooks whose activations are [batch, pos, head, d_head]: summarised per head.
HEAD_HOOKS = ("attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_z")

# Shorthand that get_act_name expands to a block hook once given a layer.
SHORTHAND = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "q", "k", "v",
             "z", "attn_scores", "pattern", "mlp_pre", "mlp_post")

_BLOCK_NAME = re.compile(r"blocks\.(\d+)\.(.+)")


@dataclass(frozen=True)
class ModelShape:
    """What decides which hooks a model has. n_layers None: not known before loading.

    has_mlp and has_norm drop whole families of hooks (MLP_HOOKS, NORM_HOOKS); `absent`
    lists the full names an architecture lacks beyond those (a rotary model's
    hook_pos_embed, a state-space model's attention hooks, a hybrid's attention hooks on
    its recurrent layers). `from_names` gives the one shape of a set of names.
    """

    n_layers: int | None
    has_mlp: bool = True
    has_norm: bool = True
    absent: frozenset[str] = frozenset()

    @classmethod
    def from_names(cls, n_layers: int, names: Iterable[str]) -> ModelShape:
        """The shape whose hook_names() are exactly the canonical names among `names`."""
        present = set(names)
        block = {h for name in present if (match := _BLOCK_NAME.fullmatch(name))
                 for h in [match.group(2)]}
        has_mlp = bool(block & set(MLP_HOOKS))
        has_norm = bool((block | present) & set(NORM_HOOKS))
        full = cls(n_layers, has_mlp, has_norm).hook_names()
        return cls(n_layers, has_mlp, has_norm, frozenset(full) - present)

    def hook_names(self) -> list[str]:
        """Every valid full hook name (block hooks only when n_layers is known)."""
        block = [h for h in BLOCK_HOOKS
                 if (self.has_mlp or h not in MLP_HOOKS) and (self.has_norm or h not in NORM_HOOKS)]
        outside = [h for h in GLOBAL_HOOKS if self.has_norm or h not in NORM_HOOKS]
        layers = range(self.n_layers or 0)
        names = [f"blocks.{layer}.{h}" for layer in layers for h in block] + outside
        return [name for name in names if name not in self.absent]

    @cached_property
    def _valid(self) -> frozenset[str]:
        return frozenset(self.hook_names())

    def allows(self, name: str) -> bool:
        if self.n_layers is not None:
            return name in self._valid
        if name in self.absent:
            return False
        match = _BLOCK_NAME.fullmatch(name)
        if match is None:
            return name in GLOBAL_HOOKS
        return match.group(2) in BLOCK_HOOKS


@lru_cache(maxsize=1)
def _components_utils() -> ModuleType:
    """TransformerLens's utilities/components_utils.py, loaded on its own.

    Importing it the usual way runs transformer_lens/__init__, which imports torch and
    takes seconds; that file itself needs only `re`, so the scheduler loads just it.
    """
    spec = importlib.util.find_spec("transformer_lens")
    if spec is None or not spec.submodule_search_locations:
        raise JobSpecError("transformer_lens is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "utilities" / "components_utils.py"
    file_spec = importlib.util.spec_from_file_location("lensbatch._tl_components_utils", path)
    if file_spec is None or file_spec.loader is None:
        raise JobSpecError(f"cannot load {path}")
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module


def get_act_name(name: str, layer: int | None = None) -> str:
    """transformer_lens.utilities.get_act_name (the seed notebook's cache["pattern", 0])."""
    function: Callable[..., str] = _components_utils().get_act_name
    return function(name, layer)


def hook_layer(name: str) -> int | None:
    """The block a full hook name belongs to, or None for hooks outside the blocks."""
    match = _BLOCK_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def hook_kind(name: str) -> str:
    """'attention' ([batch, head, q, k]), 'head' ([batch, pos, head, d]) or 'position'."""
    match = _BLOCK_NAME.fullmatch(name)
    suffix = match.group(2) if match else name
    if suffix in ATTENTION_HOOKS:
        return "attention"
    if suffix in HEAD_HOOKS:
        return "head"
    return "position"


def _valid_names_message(shape: ModelShape) -> str:
    layers = range(shape.n_layers or 1)
    where = {h: [layer for layer in layers if shape.allows(f"blocks.{layer}.{h}")]
             for h in BLOCK_HOOKS}
    everywhere = [h for h in BLOCK_HOOKS if len(where[h]) == len(layers)]
    somewhere = [h for h in BLOCK_HOOKS if 0 < len(where[h]) < len(layers)]
    span = f"0..{shape.n_layers - 1}" if shape.n_layers else "0..n_layers-1"
    outside = [h for h in GLOBAL_HOOKS if shape.allows(h)]
    shorthand = [s for s in SHORTHAND if _expand(s, shape)]
    partial = "".join(f"; blocks.L.{h} for L in {', '.join(map(str, where[h]))}"
                      for h in somewhere)
    return (f"valid names: blocks.L.{{{', '.join(everywhere)}}} for L in {span}{partial}; "
            f"{', '.join(outside)}; or shorthand for every layer that has it: "
            f"{', '.join(shorthand)} (one layer: k6, pattern0)")


def _expand(name: str, shape: ModelShape) -> list[str]:
    """One requested name as full hook names; [] when it names nothing valid."""
    single = get_act_name(name)
    if shape.allows(single):
        return [single]
    if "." in name or name.startswith("hook_") or hook_layer(single) is not None:
        return []  # a full name, or shorthand that carries its layer (k6): nothing to expand
    if shape.n_layers is None:
        # Layers unknown until the model loads: check the form, expand on the worker.
        return [name] if shape.allows(get_act_name(name, 0)) else []
    # Every layer that has the hook (a hybrid has attention on some layers only).
    per_layer = [get_act_name(name, layer) for layer in range(shape.n_layers)]
    return [n for n in per_layer if shape.allows(n)]


def resolve_activations(requested: Sequence[str], shape: ModelShape) -> list[str]:
    """Full hook names for the user's list, in order, without duplicates.

    Raises JobSpecError naming the first unknown name and listing the valid ones.
    """
    resolved: list[str] = []
    for raw in requested:
        names = _expand(raw.strip(), shape) if raw.strip() else []
        if not names:
            raise JobSpecError(f"unknown activation {raw!r}; {_valid_names_message(shape)}")
        resolved += [n for n in names if n not in resolved]
    return resolved


def check_top_hooks(names: Sequence[str]) -> None:
    """--top-activations takes hooks whose last dimension is a neuron (or a head's
    dimension): not attention patterns or scores, whose last dimension is a key."""
    for name in names:
        if hook_kind(name) == "attention":
            raise JobSpecError(f"--top-activations takes hooks with neurons, not {name!r} "
                               "(its last dimension is the attended position)")


_SHORT_WITH_LAYER = re.compile(r"([a-z_]+?)\.?(\d+)")


def one_hook(name: str) -> str:
    """One full hook name from a full name (blocks.1.mlp.hook_post, hook_embed) or
    shorthand with its layer (mlp_post1, z0, resid_post.3); JobSpecError otherwise."""
    name = name.strip()
    if _BLOCK_NAME.fullmatch(name) or name in GLOBAL_HOOKS:
        return name
    match = _SHORT_WITH_LAYER.fullmatch(name)
    if match and match.group(1) in SHORTHAND:
        return get_act_name(match.group(1), int(match.group(2)))
    raise JobSpecError(f"unknown hook {name!r}: give a full name (blocks.1.mlp.hook_post, "
                       "hook_embed) or shorthand with its layer (mlp_post1, z0)")


def split_list(value: str | None) -> tuple[str, ...]:
    """'a, b,,c' -> ('a', 'b', 'c'): the CLI's comma-separated options."""
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())
