"""Long documents are tokenized in pieces (worker/engine/streaming.py) with exactly the
ids of the whole text, on real text with GPT-2's real tokenizer: at every cut point the
rule allows, and on texts built to put whitespace, contractions, digits, combining
marks and special-token text next to the cuts."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from tokenizers import normalizers, pre_tokenizers

from worker.engine.streaming import CHUNK_CHARS, pieces, stream_safe, token_ids
from worker.engine.tokenizer import gpt2_tokenizer

REPO = Path(__file__).resolve().parents[2]
EDGES = [" ", "  ", "   ", "\t", "\n", "\n\n", " \n ", "\r\n", "\u00a0", "\u3000", "\u2009",
         "'s", "'ll", " 's", "'t ", "it's", "They'll", "12345", " 678", "3.14", " 1 2 3",
         "é", "e\u0301", " \u0301", "naïve", "日本語", " 日本", "🙂", " 🙂", "--", " -", "...",
         " ,", "(x)", "<|endoftext|>", " <|endoftext|>", "a", " b", "Zyx", " q", "\x1f",
         " \x1c", "\ufeff", "ß", " İ", "²", " ½", "_", " __init__", "http://x.io/a b"]


def real_text() -> str:
    docs = [json.loads(line)["text"] for line in
            (REPO / "corpus" / "sample.jsonl").read_text().splitlines()]
    return "\n\n".join(docs) + "\n" + (REPO / "README.md").read_text()


def whole(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.fixture(scope="module")
def gpt2() -> Any:
    return gpt2_tokenizer()


def test_pieces_join_into_the_text_and_start_where_a_word_must(gpt2: Any) -> None:
    text = real_text()
    for size in (1, 50, 4096):
        parts = list(pieces(text, size))
        assert "".join(parts) == text
        assert len(parts) > 1
        assert all(p[0] == " " and p[1].isalnum() for p in parts[1:])
    assert list(pieces("abc -def  ghi -jkl", 5)) == ["abc -def ", " ghi -jkl"]
    assert list(pieces("", 5)) == []


@pytest.mark.parametrize("size", [1, 7, 100, 3000])
def test_real_text_in_pieces_has_the_ids_of_the_whole(gpt2: Any, size: int) -> None:
    """size 1 cuts at every cut point the rule allows: thousands of boundaries."""
    text = real_text()
    assert stream_safe(gpt2)
    assert token_ids(gpt2, [text], [], size) == [whole(gpt2, text)]
    bos = gpt2.bos_token_id
    assert token_ids(gpt2, ["short", text], [bos], size) == [
        [bos, *whole(gpt2, "short")], [bos, *whole(gpt2, text)]]


def test_texts_built_around_the_cuts_have_the_ids_of_the_whole(gpt2: Any) -> None:
    rng = random.Random(13)
    for _ in range(300):
        text = "".join(rng.choice(EDGES) for _ in range(rng.randint(1, 40)))
        expected = whole(gpt2, text)
        for size in (1, rng.randint(2, 30)):
            assert token_ids(gpt2, [text], [], size) == [expected], repr(text)


def test_only_tokenizers_that_split_like_gpt2_are_streamed(gpt2: Any) -> None:
    """Another rule would cut differently: those get the whole text at once."""
    prefix_space = gpt2_tokenizer.__wrapped__()  # a fresh copy to change
    prefix_space.backend_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=True)
    lowercase = gpt2_tokenizer.__wrapped__()
    lowercase.backend_tokenizer.normalizer = normalizers.Lowercase()
    nfc = gpt2_tokenizer.__wrapped__()
    nfc.backend_tokenizer.normalizer = normalizers.NFC()
    assert not stream_safe(prefix_space) and not stream_safe(lowercase)
    assert not stream_safe(object())
    text = "Cafe\u0301 naïve e\u0301 \u0301x Ame\u0301lie " * 40
    long = [t for t in token_ids(prefix_space, [text], [], 10)]
    assert long == [whole(prefix_space, text)]  # not streamed: the whole text, as before
    assert stream_safe(nfc)  # NFC never composes across a space
    assert token_ids(nfc, [text], [], 1) == [whole(nfc, text)]


def test_a_long_document_is_streamed_by_default(gpt2: Any) -> None:
    text = real_text()
    text = (text + " ") * (CHUNK_CHARS // len(text) + 2)
    assert len(list(pieces(text))) >= 2
    assert token_ids(gpt2, [text], []) == [whole(gpt2, text)]


def test_the_worker_streams_a_long_document_through_a_checkpoints_tokenizer(
    gpt2: Any, tiny_checkpoint: str
) -> None:
    """The tokenizer a local checkpoint loads with (AutoTokenizer, through
    TransformerLens) is streamed too, and the worker's tokenize keeps the ids."""
    from worker.engine.evaluate import tokenize
    from worker.engine.models import load_model

    model = load_model(tiny_checkpoint, "cpu", "float32")
    text = real_text()
    text = (text + "\n") * (CHUNK_CHARS // len(text) + 2)
    assert stream_safe(model.tokenizer)
    bos = model.tokenizer.bos_token_id
    assert tokenize(model, ["Hi.", text], True) == [[bos, *whole(gpt2, "Hi.")],
                                                     [bos, *whole(gpt2, text)]]
