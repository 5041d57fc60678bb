"""Generated corpora: deterministic English-like text with a realistic spread of lengths.

Words are drawn from a small vocabulary with Zipf-like weights, and some sentences are
repeated inside a document, so induction candidates exist as in real text.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from "
    "at which but have an they you were her she there been one all we their has would "
    "when if so no will more out up said what its about into than them can only other "
    "time new some could these two may first then do any like my now over such our man "
    "me even most made after also did many before must through back years where much "
    "your way well down should because each just those people how too little state good "
    "very make world still own see men work long get here between both life being under "
    "never day same another know while last might us great old year off come since "
    "against go came right used take three lighthouse keeper lamp harbour induction "
    "transformer attention residual stream layer head token corpus model batch"
).split()

# Document lengths in words (~1.3 GPT-2 tokens per word): from tens to several thousand
# tokens, many short and a few long, as in web or book corpora.
SPREAD = (12, 25, 40, 60, 90, 130, 200, 320, 500, 800, 1300, 2300)


def document(rng: random.Random, n_words: int) -> str:
    weights = [1.0 / (rank + 1) for rank in range(len(WORDS))]
    sentences: list[str] = []
    count = 0
    while count < n_words:
        if sentences and rng.random() < 0.15:
            sentence = rng.choice(sentences)  # a repeat: induction material
        else:
            length = rng.randint(6, 18)
            words = rng.choices(WORDS, weights=weights, k=length)
            sentence = " ".join(words).capitalize() + "."
        sentences.append(sentence)
        count += sentence.count(" ") + 1
    return " ".join(sentences)


def spread_corpus(scale: float, per_length: int = 1, seed: int = 0) -> list[str]:
    """`per_length` documents per length in SPREAD, each length multiplied by `scale`,
    shuffled as a real corpus would be."""
    rng = random.Random(seed)
    texts = [document(rng, max(4, int(n * scale))) for n in SPREAD for _ in range(per_length)]
    rng.shuffle(texts)
    return texts


def write_jsonl(path: Path, texts: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i, text in enumerate(texts):
            out.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    return path


def write_large_jsonl(path: Path, n_docs: int, chars: int, seed: int = 0) -> Path:
    """`n_docs` documents of about `chars` characters, written as a stream."""
    rng = random.Random(seed)
    pool = [document(rng, chars // 5) for _ in range(64)]
    with path.open("w", encoding="utf-8") as out:
        for i in range(n_docs):
            # A unique prefix: every document is stored, none deduplicated away.
            text = f"Document {i}. " + pool[i % len(pool)][:chars]
            out.write(json.dumps({"id": i, "text": text}) + "\n")
    return path


def rolling_lengths(n_docs: int = 60, shortest: int = 19, longest: int = 1999) -> list[int]:
    """Token counts spread geometrically from `shortest` to `longest` (the defaults: 60
    documents, about 25,600 tokens, the longest two windows of GPT-2's context)."""
    ratio = (longest / shortest) ** (1 / max(n_docs - 1, 1))
    return [round(shortest * ratio**i) for i in range(n_docs)]


def token_corpus(lengths: list[int], encode: Callable[[str], list[int]],
                 decode: Callable[[list[int]], str], seed: int = 0) -> list[str]:
    """One document per length, cut to that many tokens of `encode` (re-encoding the
    cut text can differ by a token at the cut), shuffled."""
    rng = random.Random(seed)
    texts = [decode(encode(document(rng, n))[:n]) for n in lengths]
    rng.shuffle(texts)
    return texts
