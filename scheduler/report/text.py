"""Highlighting induction-hit tokens inside a document's text, for the report.

Hits are stored as token positions (lensbatch/store/packing.py). To find them in the
text, the document is re-tokenized with the job's tokenizer to get each token's
character span, and so its text (hits_at). highlight() uses a span only when its text
matches the hit's token; otherwise the token is searched for in the text after the
previous highlight. Where no tokenizer can be had offline, no hit can be placed.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

Span = tuple[int, int]  # [start, end) character offsets of one token


@dataclass(frozen=True)
class Hit:
    position: int  # token position in the evaluated sequence (BOS included when prepended)
    token: str
    novel: bool


def load_tokenizer(model: str, cache_dir: str) -> Any | None:
    """The job's tokenizer if it can be had without the network, else None."""
    try:
        from worker.engine.tokenizer import load_tokenizer as engine_tokenizer

        return engine_tokenizer(model, cache_dir)
    except Exception:  # noqa: BLE001 - any failure means: highlight by search instead
        return None


def token_spans(tokenizer: Any | None, text: str) -> list[Span] | None:
    """Character span of each text token (no BOS), or None without a fast tokenizer."""
    if tokenizer is None or not getattr(tokenizer, "is_fast", False):
        return None
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return [(int(a), int(b)) for a, b in encoded["offset_mapping"]]


def hits_at(text: str, stored: list[tuple[int, bool]], spans: list[Span] | None,
            bos: bool) -> list[Hit]:
    """Stored hits, (position, novel), as Hits with their token's text from `spans`
    (None: no tokenizer, so no text); a position outside the text is dropped."""
    if spans is None:
        return []
    offset = 1 if bos else 0
    return [Hit(position, text[spans[position - offset][0]:spans[position - offset][1]], novel)
            for position, novel in stored if 0 <= position - offset < len(spans)]


def _span_for(text: str, hit: Hit, spans: list[Span] | None, bos: bool, cursor: int) -> Span:
    """Where `hit` is in `text` at or after `cursor`, or (-1, -1)."""
    needle = hit.token.strip()
    if not needle:
        return (-1, -1)
    if spans is not None:
        index = hit.position - (1 if bos else 0)
        if 0 <= index < len(spans):
            start, end = spans[index]
            if start >= cursor and text[start:end].strip() == needle:
                # mark from the first non-space so leading spaces stay unmarked
                return (start + (len(text[start:end]) - len(text[start:end].lstrip())), end)
    found = text.find(needle, cursor)
    return (found, found + len(needle)) if found >= 0 else (-1, -1)


def highlight(text: str, hits: list[Hit], spans: list[Span] | None = None,
              bos: bool = True) -> str:
    """`text` HTML-escaped, with each hit wrapped in <mark> (class "novel" for novel
    hits). Hits are taken in position order; one that cannot be placed is skipped."""
    out: list[str] = []
    cursor = 0
    for hit in sorted(hits, key=lambda h: h.position):
        start, end = _span_for(text, hit, spans, bos, cursor)
        if start < 0:
            continue
        css = ' class="novel"' if hit.novel else ""
        out.append(html.escape(text[cursor:start]))
        out.append(f"<mark{css}>{html.escape(text[start:end])}</mark>")
        cursor = end
    out.append(html.escape(text[cursor:]))
    return "".join(out)
