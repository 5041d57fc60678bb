"""Reading corpora as streams of documents, with errors that name the file and line.

CORPUS is a .jsonl file (one object per line: `text` required, `id` optional), a .txt
or .md file (one document), a directory of .txt/.md files (one document each, sorted
by path), or `-` for JSONL on standard input. Nothing is evaluated or executed: a path
is only ever opened and read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lensbatch.errors import CorpusError

TEXT_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class Doc:
    doc_id: str
    text: str
    source: str  # the file it came from
    where: str  # file and line, for messages


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{where}: not valid UTF-8 (byte {exc.start})") from None


def _jsonl_docs(stream: BinaryIO, name: str) -> Iterator[Doc]:
    stem = Path(name).stem if name != "<stdin>" else "stdin"
    for lineno, raw in enumerate(stream, start=1):
        where = f"{name}:{lineno}"
        line = _decode(raw, where).strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise CorpusError(f"{where}: expected a JSON object with a 'text' field")
        text = obj.get("text")
        if not isinstance(text, str):
            raise CorpusError(f"{where}: 'text' is missing or not a string")
        if not text.strip():
            raise CorpusError(f"{where}: 'text' is empty")
        raw_id = obj.get("id", f"{stem}:{lineno}")
        if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
            raise CorpusError(f"{where}: 'id' must be a string or an integer")
        yield Doc(str(raw_id), text, name, where)


def _text_doc(path: Path, doc_id: str) -> Doc:
    text = _decode(path.read_bytes(), str(path))
    if not text.strip():
        raise CorpusError(f"{path}: file is empty")
    return Doc(doc_id, text, str(path), str(path))


def _directory_docs(root: Path) -> Iterator[Doc]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
    for path in files:
        yield _text_doc(path, str(path.relative_to(root)))


def _raw_docs(corpus: str) -> Iterator[Doc]:
    if corpus == "-":
        yield from _jsonl_docs(sys.stdin.buffer, "<stdin>")
        return
    path = Path(corpus)
    if path.is_dir():
        yield from _directory_docs(path)
    elif not path.exists():
        raise CorpusError(f"{corpus}: no such file or directory")
    elif path.suffix == ".jsonl":
        with path.open("rb") as stream:
            yield from _jsonl_docs(stream, str(path))
    elif path.suffix in TEXT_SUFFIXES:
        yield _text_doc(path, path.name)
    else:
        raise CorpusError(f"{corpus}: unsupported corpus type (use .jsonl, .txt, .md, a "
                          "directory, or - for JSONL on stdin)")


def read_corpus(corpus: str) -> Iterator[Doc]:
    """Documents in corpus order; raises CorpusError on the first problem found. A
    duplicate id is found by the store, against the ids it has stored (a set of every
    id would grow with the corpus): lensbatch/store/jobs.py."""
    count = 0
    for doc in _raw_docs(corpus):
        count += 1
        yield doc
    if count == 0:
        raise CorpusError(f"{corpus}: corpus is empty (no documents)")


def chunked(docs: Iterable[Doc], size: int) -> Iterator[list[Doc]]:
    chunk: list[Doc] = []
    for doc in docs:
        chunk.append(doc)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
