"""Reading corpora as streams of documents, with errors that name the file and line.

CORPUS is a .jsonl file (one object per line: `text` required, `id` optional, any other
field kept as the document's metadata, lensbatch/docmeta.py), a .txt
or .md file (one document), a directory of .txt/.md files (one document each, sorted
by path), or `-` for JSONL on standard input. Nothing is evaluated or executed: a path
is only ever opened and read.

Every document is checked before anything is stored: at most `max_document_bytes` of
UTF-8 (default DEFAULT_MAX_DOCUMENT_BYTES, 10 MB; a larger one is refused before it is
read whole), valid Unicode, and no NUL character (PostgreSQL cannot store one, so it is
refused on every database alike).
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from lensbatch.docmeta import document_metadata
from lensbatch.errors import CorpusError

TEXT_SUFFIXES = (".txt", ".md")
DEFAULT_MAX_DOCUMENT_BYTES = 10_000_000
# A JSON string is at most 6 bytes per byte of its text (\u0001 for U+0001), so a JSONL
# line longer than this holds a text over the limit; it is refused before it is read whole.
JSON_BYTES_PER_TEXT_BYTE = 6
JSON_LINE_SLACK = 1 << 20  # the id and any other fields
MAX_ID_CHARS = 512  # the job_documents.doc_id column's length
LIMIT_HINT = "raise it with --max-document-bytes or LENSBATCH_MAX_DOCUMENT_BYTES"


@dataclass(frozen=True)
class Doc:
    doc_id: str
    text: str
    source: str  # the file it came from
    where: str  # file and line, for messages
    # the JSONL object's other fields (lensbatch/docmeta.py) and their JSON text; None
    # when it has none
    metadata: dict[str, Any] | None = None
    metadata_json: str | None = None


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{where}: not valid UTF-8 (byte {exc.start})") from None


def _too_large(where: str, size: int, limit: int) -> CorpusError:
    return CorpusError(f"{where}: document is {size:,} bytes of UTF-8, over the limit of "
                       f"{limit:,} ({LIMIT_HINT})")


def _utf8_size(value: str, field: str, where: str) -> int:
    """Bytes of UTF-8 of a value that is valid Unicode and holds no NUL."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise CorpusError(f"{where}: {field} is not valid Unicode (lone surrogate "
                          f"U+{ord(value[exc.start]):04X} at character {exc.start})") from None
    nul = value.find("\0")
    if nul >= 0:
        raise _has_nul(where, f"{field} contains", f"character {nul}")
    return size


def _has_nul(where: str, what: str, position: str) -> CorpusError:
    return CorpusError(f"{where}: {what} a NUL character (U+0000) at {position}; remove it "
                       "(PostgreSQL cannot store one, so no database takes it)")


def _lines(stream: BinaryIO, cap: int) -> Iterator[tuple[int, bytes]]:
    """Numbered lines, none read past `cap` bytes: a longer one returns what was read,
    without its newline, for the caller to refuse."""
    lineno = 0
    while raw := stream.readline(cap + 1):
        lineno += 1
        yield lineno, raw


def _jsonl_docs(stream: BinaryIO, name: str, limit: int) -> Iterator[Doc]:
    stem = Path(name).stem if name != "<stdin>" else "stdin"
    cap = limit * JSON_BYTES_PER_TEXT_BYTE + JSON_LINE_SLACK
    for lineno, raw in _lines(stream, cap):
        where = f"{name}:{lineno}"
        if len(raw) > cap:
            raise CorpusError(f"{where}: line is over {cap:,} bytes, longer than a document "
                              f"within the limit of {limit:,} bytes can be ({LIMIT_HINT})")
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
        size = _utf8_size(text, "'text'", where)
        if size > limit:
            raise _too_large(where, size, limit)
        _utf8_size(str(raw_id), "'id'", where)
        metadata = document_metadata(obj, where)
        yield Doc(str(raw_id), text, name, where, *(metadata or (None, None)))


def _text_doc(path: Path, doc_id: str, limit: int) -> Doc:
    size = path.stat().st_size
    if size > limit:  # refused before it is read
        raise _too_large(str(path), size, limit)
    text = _decode(path.read_bytes(), str(path))
    if not text.strip():
        raise CorpusError(f"{path}: file is empty")
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        column = nul - text.rfind("\n", 0, nul)
        raise _has_nul(f"{path}:{line}", "the file has", f"column {column}")
    return Doc(doc_id, text, str(path), str(path))


def _directory_docs(root: Path, limit: int) -> Iterator[Doc]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
    for path in files:
        yield _text_doc(path, str(path.relative_to(root)), limit)


@functools.cache
def _stdin_copy() -> BinaryIO:
    """Standard input, copied once to a temporary file, so that a corpus read from it can
    be read again (a transaction retried after a deadlock reads its corpus again)."""
    copy = tempfile.TemporaryFile()
    shutil.copyfileobj(sys.stdin.buffer, copy)
    return copy


def _raw_docs(corpus: str, limit: int) -> Iterator[Doc]:
    if corpus == "-":
        stream = _stdin_copy()
        stream.seek(0)
        yield from _jsonl_docs(stream, "<stdin>", limit)
        return
    path = Path(corpus)
    if path.is_dir():
        yield from _directory_docs(path, limit)
    elif not path.exists():
        raise CorpusError(f"{corpus}: no such file or directory")
    elif path.suffix == ".jsonl":
        with path.open("rb") as stream:
            yield from _jsonl_docs(stream, str(path), limit)
    elif path.suffix in TEXT_SUFFIXES:
        yield _text_doc(path, path.name, limit)
    else:
        raise CorpusError(f"{corpus}: unsupported corpus type (use .jsonl, .txt, .md, a "
                          "directory, or - for JSONL on stdin)")


def read_corpus(corpus: str,
                max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> Iterator[Doc]:
    """Documents in corpus order; raises CorpusError on the first problem found. A
    duplicate id is found by the store, against the ids it has stored (a set of every
    id would grow with the corpus): lensbatch/store/ingest.py."""
    count = 0
    for doc in _raw_docs(corpus, max_document_bytes):
        if len(doc.doc_id) > MAX_ID_CHARS:
            raise CorpusError(f"{doc.where}: document id is {len(doc.doc_id):,} characters, "
                              f"over the limit of {MAX_ID_CHARS}")
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
