"""toy-induction: a two-layer attention-only model whose weights are set by hand.

No training: every weight is written from the construction below, so the model is
deterministic and builds in about a second. It uses GPT-2's vocabulary and tokenizer.

The residual stream (d_model 512) is cut into separate subspaces; no LayerNorm, no MLP:

    TOK   e(t_i): a fixed random unit vector per token (zero for <|endoftext|>)
    PREV  written by the previous-token head: e(t_{i-1})
    OUT   written by the induction head: e(t_j) for the j it attends to
    POS   sinusoids cos(w_m i), sin(w_m i) for 16 frequencies w_m
    FIRST 1 at position 0 only: the first position the model sees, an attention sink

Layer 0, head PREV_TOKEN_HEAD: its query is the position i rotated back by one step,
pos(i - 1) (a rotation of each (cos, sin) pair, so a linear map of pos(i)), and its key
is pos(j). The score sum_m cos(w_m (i - 1 - j)) peaks at j = i - 1 and is at least a
third lower everywhere else within the context, so scaled by BETA it is a sharp
previous-token pattern. Sinusoids keep every weight small (|w| < 7), so it works in
bfloat16 too. Its value copies TOK into PREV.

Layer 1, head INDUCTION_HEAD: its query is e(t_i) and its key the PREV part e(t_{j-1}),
so it attends to the positions right after earlier occurrences of the current token
(score MATCH), or, when there are none, to the first position (score SINK) whose value
is zero when that is BOS. Its value copies TOK into OUT, and the unembedding reads OUT
(logit KAPPA * e(v) . OUT), so it predicts the token that followed last time.

The other heads have zero weights: they attend uniformly and write nothing.

toy-induction-ablated is the same model with the induction head switched off (its
weights left at zero, like the other heads): a copy whose difference from toy-induction
is known exactly, for comparisons. It predicts nothing (uniform logits), repeated text
included.
"""

from __future__ import annotations

import math

import torch
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.sources import native

from lensbatch.settings import DEFAULT_CACHE_DIR
from worker.engine.tokenizer import gpt2_tokenizer

NAME = "toy-induction"
ABLATED_NAME = "toy-induction-ablated"  # the induction head switched off
SEED = 0
D_VOCAB = 50257
BOS_ID = 50256
N_CTX = 1024
N_LAYERS, N_HEADS, D_HEAD = 2, 4, 128
D_MODEL = N_HEADS * D_HEAD
PREV_TOKEN_HEAD = (0, 1)  # (layer, head)
INDUCTION_HEAD = (1, 2)

D_TOK = 120  # room for the sink coordinate in the induction head's D_HEAD dimensions
N_FREQ = 16
TOK = slice(0, D_TOK)
PREV = slice(D_TOK, 2 * D_TOK)
OUT = slice(2 * D_TOK, 3 * D_TOK)
POS = slice(3 * D_TOK, 3 * D_TOK + 2 * N_FREQ)
FIRST = 3 * D_TOK + 2 * N_FREQ

# Attention scores (after the division by sqrt(D_HEAD)) and the unembedding scale.
BETA = 60.0  # previous-token head: score BETA at j = i - 1, at most 0.7 * BETA elsewhere
MATCH = 30.0  # induction head: score for a key whose previous token is the query's token
SINK = 15.0  # induction head: score for the first position
KAPPA = 20.0  # logit of the copied token
DTYPE = torch.float32  # weights are made in float32, then cast to the model's dtype


def frequencies() -> torch.Tensor:
    """[N_FREQ] angular frequencies, geometric from 0.01 to 3 radians per position."""
    return torch.logspace(math.log10(0.01), math.log10(3.0), N_FREQ, dtype=torch.float64)


def positional_embedding() -> torch.Tensor:
    """[N_CTX, D_MODEL]: (cos, sin) pairs in POS, and the FIRST flag at position 0."""
    angles = torch.arange(N_CTX, dtype=torch.float64)[:, None] * frequencies()  # [pos, freq]
    w_pos = torch.zeros(N_CTX, D_MODEL, dtype=DTYPE)
    w_pos[:, POS] = torch.stack((angles.cos(), angles.sin()), dim=-1).reshape(N_CTX, -1).to(DTYPE)
    w_pos[0, FIRST] = 1.0
    return w_pos


def token_directions() -> torch.Tensor:
    """[D_VOCAB, D_TOK] seeded random unit vectors, nearly orthogonal; BOS gets zero."""
    generator = torch.Generator().manual_seed(SEED)
    directions = torch.randn(D_VOCAB, D_TOK, generator=generator, dtype=DTYPE)
    directions /= directions.norm(dim=-1, keepdim=True)
    directions[BOS_ID] = 0.0
    return directions


def rotate_back_one_step() -> torch.Tensor:
    """[2 N_FREQ, 2 N_FREQ] R with R @ pos(i) = pos(i - 1), one 2x2 rotation per frequency."""
    rotation = torch.zeros(2 * N_FREQ, 2 * N_FREQ, dtype=DTYPE)
    for m, w in enumerate(frequencies().tolist()):
        c, s = math.cos(w), math.sin(w)
        # cos(a - w) = cos a cos w + sin a sin w;  sin(a - w) = sin a cos w - cos a sin w
        rotation[2 * m:2 * m + 2, 2 * m:2 * m + 2] = torch.tensor([[c, s], [-s, c]])
    return rotation


def _head_rows(head: int) -> slice:
    return slice(head * D_HEAD, (head + 1) * D_HEAD)


def plain_weights(induction_head: bool = True) -> dict[str, torch.Tensor]:
    """Weights of the native model, by plain parameter name (nn.Linear is [out, in]);
    without `induction_head`, that head's weights stay zero."""
    e = token_directions()
    identity = torch.eye(D_TOK, dtype=DTYPE)
    w: dict[str, torch.Tensor] = {
        "tok_embed.weight": torch.zeros(D_VOCAB, D_MODEL, dtype=DTYPE),
        "pos.weight": positional_embedding(),
        "head.weight": torch.zeros(D_VOCAB, D_MODEL, dtype=DTYPE),
    }
    w["tok_embed.weight"][:, TOK] = e
    w["head.weight"][:, OUT] = KAPPA * e
    for layer in range(N_LAYERS):
        for part in ("q", "k", "v", "o"):
            w[f"layers.{layer}.attn.{part}.weight"] = torch.zeros(D_MODEL, D_MODEL,
                                                                  dtype=DTYPE)
            w[f"layers.{layer}.attn.{part}.bias"] = torch.zeros(D_MODEL, dtype=DTYPE)
    root_d_head = math.sqrt(D_HEAD)

    layer, head = PREV_TOKEN_HEAD
    rows = _head_rows(head)
    qk = math.sqrt(BETA * root_d_head / N_FREQ)  # q.k = qk^2 * N_FREQ at the peak
    n_pos = 2 * N_FREQ
    w[f"layers.{layer}.attn.q.weight"][rows][:n_pos, POS] = qk * rotate_back_one_step()
    w[f"layers.{layer}.attn.k.weight"][rows][:n_pos, POS] = qk * torch.eye(n_pos, dtype=DTYPE)
    w[f"layers.{layer}.attn.v.weight"][rows][:D_TOK, TOK] = identity
    w[f"layers.{layer}.attn.o.weight"][PREV, rows.start:rows.start + D_TOK] = identity

    if not induction_head:
        return w
    layer, head = INDUCTION_HEAD
    rows = _head_rows(head)
    match = math.sqrt(MATCH * root_d_head)
    sink = math.sqrt(SINK * root_d_head)
    w[f"layers.{layer}.attn.q.weight"][rows][:D_TOK, TOK] = match * identity
    w[f"layers.{layer}.attn.k.weight"][rows][:D_TOK, PREV] = match * identity
    w[f"layers.{layer}.attn.q.bias"][rows][D_TOK] = sink
    w[f"layers.{layer}.attn.k.weight"][rows][D_TOK, FIRST] = sink
    w[f"layers.{layer}.attn.v.weight"][rows][:D_TOK, TOK] = identity
    w[f"layers.{layer}.attn.o.weight"][OUT, rows.start:rows.start + D_TOK] = identity
    return w


def config(name: str = NAME) -> TransformerBridgeConfig:
    return TransformerBridgeConfig(
        d_model=D_MODEL, d_head=D_HEAD, n_layers=N_LAYERS, n_heads=N_HEADS, n_ctx=N_CTX,
        d_vocab=D_VOCAB, attn_only=True, normalization_type=None,
        positional_embedding_type="standard", init_weights=False, model_name=name,
    )


def build(device: torch.device, dtype: torch.dtype, cache_dir: str = DEFAULT_CACHE_DIR,
          induction_head: bool = True) -> TransformerBridge:
    """The bridge, with every weight set through the wrapped native module.

    A bridge's W_Q, W_E, ... are derived tensors: writing into them would be lost, so
    the weights go into model.original_model's state dict, whose keys are the plain
    names with the bridge's `._original_component` wrappers in between.
    """
    # native.boot is TransformerBridge.boot_native (which it attaches at import).
    name = NAME if induction_head else ABLATED_NAME
    model = native.boot(config(name), tokenizer=gpt2_tokenizer(cache_dir), device=device,
                        dtype=dtype, model_name=name)
    weights = plain_weights(induction_head)
    wrapped = model.original_model
    # Anything not named above (the unembedding's bias) is zero.
    state = {key: weights.get(key.replace("._original_component", ""), torch.zeros(()))
             .expand_as(value).to(dtype)
             for key, value in wrapped.state_dict().items()}
    with torch.no_grad():
        wrapped.load_state_dict(state)
    return model.eval()


def build_ablated(device: torch.device, dtype: torch.dtype,
                  cache_dir: str = DEFAULT_CACHE_DIR) -> TransformerBridge:
    """toy-induction with its induction head (INDUCTION_HEAD) switched off."""
    return build(device, dtype, cache_dir, induction_head=False)
