"""GPT-2 checkpoints saved for the benchmark, with GPT-2's tokenizer, as a user saves one."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_gpt2(path: Path, seed: int, **config: Any) -> str:
    """A GPT-2 with seeded random weights (GPT2Config's defaults, GPT-2 small's shape,
    changed by `config`), saved as a Hugging Face checkpoint directory."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from worker.engine.tokenizer import gpt2_tokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(GPT2Config(**config)).eval()
    model.save_pretrained(path)
    gpt2_tokenizer().save_pretrained(path)
    return str(path)
