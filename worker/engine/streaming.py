"""Token ids of long documents in bounded memory.

A fast tokenizer handed one 50 MB string keeps, besides the ids, every token's text and
offsets and an alignment per byte of the whole string: 83 s and 7 GB of RSS for 11.6 M
tokens in the issue that asked for this. Here a long text goes through the tokenizer in
pieces of about CHUNK_CHARS characters, so the tokenizer's working memory is that of
one piece, and only the ids accumulate.

The pieces are cut where the ids cannot change: before a plain space that is followed
by a letter or digit. GPT-2's pre-tokenizer (byte-level BPE, the regex
`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`) always
starts a word there: no alternative puts a space after the first character of a word
except the whitespace runs, and a run followed by a letter or digit leaves its last
space to that word. BPE merges never cross words, so the ids of the pieces, joined, are
those of the whole text. Only tokenizers known to split this way are streamed
(stream_safe); the others get the whole text at once, as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tokenizers import normalizers, pre_tokenizers

# Characters per piece. One whole text costs about 140 bytes of RSS per character
# (bench/tokenize.py: 7.3 GB for 50 MB), so a piece's tokenization takes some 35 MB.
CHUNK_CHARS = 256 * 1024


def stream_safe(tokenizer: Any) -> bool:
    """Whether cutting before " <letter or digit>" keeps this tokenizer's ids: GPT-2's
    byte-level pre-tokenizer with its regex and no prefix space, no normalizer or NFC
    (which never composes across a space), and no added token that swallows the
    whitespace around it."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    split = backend.pre_tokenizer
    normalizer = backend.normalizer
    if not isinstance(split, pre_tokenizers.ByteLevel) or split.add_prefix_space:
        return False
    if not split.use_regex or not (normalizer is None or isinstance(normalizer,
                                                                     normalizers.NFC)):
        return False
    added = getattr(tokenizer, "added_tokens_decoder", {}).values()
    return not any(token.lstrip or token.rstrip for token in added)


def cut_before(text: str, start: int, size: int) -> int:
    """The cut point of the piece starting at `start`: the last space followed by a
    letter or digit within `size` characters, or the first one after that (a long run
    without one stays whole); len(text) when the rest fits or has none."""
    if len(text) - start <= size:
        return len(text)
    limit = start + size
    cut = text.rfind(" ", start + 1, limit)
    while cut > start and not text[cut + 1].isalnum():
        cut = text.rfind(" ", start + 1, cut)
    if cut > start:
        return cut
    cut = text.find(" ", limit)
    while cut != -1 and not (cut + 1 < len(text) and text[cut + 1].isalnum()):
        cut = text.find(" ", cut + 1)
    return len(text) if cut == -1 else cut


def pieces(text: str, size: int = CHUNK_CHARS) -> Iterator[str]:
    """`text` in consecutive pieces of about `size` characters, cut by cut_before."""
    start = 0
    while start < len(text):
        end = cut_before(text, start, size)
        yield text[start:end]
        start = end


def streamed_ids(tokenizer: Any, text: str, prefix: list[int],
                 size: int = CHUNK_CHARS) -> list[int]:
    """`prefix` followed by the ids of `text`, tokenized piece by piece (stream_safe
    tokenizers only): the same ids as the whole text at once."""
    ids = list(prefix)
    for piece in pieces(text, size):
        ids.extend(tokenizer(piece, add_special_tokens=False)["input_ids"])
    return ids


def token_ids(tokenizer: Any, texts: list[str], prefix: list[int],
              size: int = CHUNK_CHARS) -> list[list[int]]:
    """`prefix` + ids of each text, never truncated. Texts longer than `size` are
    streamed when the tokenizer allows it; the others are tokenized in one batch."""
    streamed = stream_safe(tokenizer)
    long = {i for i, text in enumerate(texts) if len(text) > size and streamed}
    short = [text for i, text in enumerate(texts) if i not in long]
    batch: list[list[int]] = (tokenizer(short, add_special_tokens=False)["input_ids"]
                              if short else [])
    rows = iter(batch)
    return [streamed_ids(tokenizer, text, prefix, size) if i in long
            else [*prefix, *next(rows)] for i, text in enumerate(texts)]
