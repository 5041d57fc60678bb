"""A model card in words: the architecture facts and weight shapes that `inspect` prints
and the report's model section shows."""

from __future__ import annotations

from typing import Any


def _layers(layers: list[int], n_layers: int) -> str:
    return "every layer" if len(layers) == n_layers else "layers " + ", ".join(map(str, layers))


def architecture_rows(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The card's architecture facts as (label, value), for `inspect` and the report;
    [] for a card recorded before lensbatch kept them."""
    arch, n_layers = config.get("architecture") or {}, int(config.get("n_layers") or 0)
    if not arch:
        return []
    attention = arch["attention"]
    if attention == "none":
        attention = "none: no attention heads (per-head scores do not apply)"
    else:
        if arch.get("n_key_value_heads"):
            attention += (f", {config['n_heads']} query heads sharing "
                          f"{arch['n_key_value_heads']} key/value heads")
        attention += f", {_layers(arch['attention_layers'], n_layers)}"
    rows = [("Architecture", str(arch["class"])), ("Positional scheme", arch["positional"]),
            ("Attention", attention)]
    if arch.get("sliding_window"):
        rows.append(("Sliding window", f"{arch['sliding_window']} tokens, "
                                       f"{_layers(arch['sliding_window_layers'], n_layers)}"))
    experts = (f"{arch['experts']} experts, {arch['experts_per_token']} per token"
               if arch.get("experts") else "no")
    yes_no = {True: "yes", False: "no"}
    return rows + [("Gated MLP", yes_no[bool(arch["gated_mlp"])]),
                   ("Mixture of experts", experts),
                   ("Attention and MLP in parallel", yes_no[bool(arch["parallel_attn_mlp"])]),
                   ("Norm", arch["norm"]),
                   ("BOS prepended by default", yes_no[bool(arch["default_prepend_bos"])])]


def model_card_lines(card: dict[str, Any]) -> list[str]:
    """`lensbatch inspect`: the seed notebook's first section for one model card, with
    only the weights the model has."""
    cfg, shapes = card["config"], card["weight_shapes"]

    def shape(name: str) -> str:
        return " x ".join(map(str, shapes[name]))

    lines = [f"Number of layers: {cfg['n_layers']}"]
    if cfg.get("n_heads") is not None:
        lines.append(f"Number of heads per layer: {cfg['n_heads']}")
    lines.append(f"Maximum context window: {cfg['n_ctx']}")
    lines += [f"{label}: {value}" for label, value in architecture_rows(cfg)]
    lines.append(f"Shape of `embeddings` matrix: {shape('W_E')}")
    if "W_pos" in shapes:
        lines.append(f"Shape of `positional embeddings` matrix: {shape('W_pos')}")
    for name, label in (("W_Q", "query"), ("W_K", "key"), ("W_V", "value")):
        if name in shapes:
            layers, heads, d_model, d_head = shapes[name]
            lines.append(f"Shape of `{label}` matrix: {d_model} x {d_head} "
                         f"(per head; {name} is {layers} x {heads} x {d_model} x {d_head})")
    for name, label in (("W_O", "attention output"), ("W_in", "MLP input"),
                        ("W_gate", "MLP gate"), ("W_out", "MLP output")):
        if name in shapes:
            lines.append(f"Shape of `{label}` matrix ({name}): {shape(name)}")
    lines.append(f"Shape of `unembeddings` matrix: {shape('W_U')}")
    return lines
