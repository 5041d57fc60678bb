"""A document's metadata: the fields of its JSONL object besides `id` and `text`.

A corpus line `{"id": "a", "text": "...", "source": "wiki", "label": 3}` keeps
{"source": "wiki", "label": 3} with the job's document (job_documents.metadata), and
each field becomes a column of `lensbatch results`, of the API's results() and of
v_results' `metadata`. The job records its fields in first-seen order with one kind
each (jobs.metadata_fields), worked out as the corpus is stored, so that a column's type
is known before any row is read: bool, int (fits int64), float (any number), string,
or json (nested, or mixed kinds: a string stays itself, anything else its JSON text).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from lensbatch.errors import CorpusError

RESERVED = ("id", "text")  # the fields a document is made of, never metadata
MAX_FIELDS = 256  # distinct metadata fields in one corpus
INT64 = (-(2**63), 2**63 - 1)
KINDS = ("bool", "int", "float", "string", "json")
Fields = list[tuple[str, str]]  # (field, kind) in first-seen order
# One encoder for every document (json.dumps with options would build one per call).
ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def _check_strings(value: Any, where: str) -> None:
    """Every key and string of `value` holds no NUL (as the text)."""
    if isinstance(value, str):
        if "\0" in value:
            raise CorpusError(f"{where}: a metadata field contains a NUL character "
                              "(U+0000); remove it (PostgreSQL cannot store one)")
        return
    items: Iterable[Any] = ()
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    for item in items:
        _check_strings(item, where)


def document_metadata(obj: Mapping[str, Any], where: str) -> tuple[dict[str, Any], str] | None:
    """The fields of a corpus object besides id and text, checked, and their JSON text
    (as stored); None if it has none. One serialization checks them all: a number that
    is not finite, a lone surrogate, and (where the text shows an escaped one) a NUL."""
    extra = {key: value for key, value in obj.items() if key not in RESERVED}
    if not extra:
        return None
    try:
        serialized = ENCODER.encode(extra)
    except ValueError:
        raise CorpusError(f"{where}: a metadata field holds a number that is not finite "
                          "(NaN or Infinity)") from None
    try:
        serialized.encode("utf-8")
    except UnicodeEncodeError:
        raise CorpusError(f"{where}: a metadata field is not valid Unicode (lone "
                          "surrogate)") from None
    if "\\u0000" in serialized:  # a NUL, or a backslash before "u0000": look closer
        _check_strings(extra, where)
    return extra, serialized


def value_kind(value: Any) -> str | None:
    """The kind of one JSON value; None for null (it fits any kind)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if INT64[0] <= value <= INT64[1] else "float"
    if isinstance(value, float):
        return "float"
    return "string" if isinstance(value, str) else "json"


def merged_kind(old: str | None, new: str | None) -> str | None:
    if old is None or old == new:
        return new if old is None else old
    if new is None:
        return old
    return "float" if {old, new} == {"int", "float"} else "json"


class FieldKinds:
    """The fields of a corpus's documents and their kinds, collected as they are stored
    (memory grows with the distinct fields, at most MAX_FIELDS, never with documents)."""

    def __init__(self) -> None:
        self._kinds: dict[str, str | None] = {}

    def add(self, metadata: Mapping[str, Any] | None, where: str) -> None:
        for key, value in (metadata or {}).items():
            if key not in self._kinds and len(self._kinds) == MAX_FIELDS:
                raise CorpusError(f"{where}: more than {MAX_FIELDS} distinct metadata "
                                  f"fields in the corpus (field {key!r})")
            self._kinds[key] = merged_kind(self._kinds.get(key), value_kind(value))

    def fields(self) -> Fields:
        """(field, kind) in first-seen order; a field that is always null is a string."""
        return [(key, kind or "string") for key, kind in self._kinds.items()]


def stored_fields(value: Any) -> Fields:
    """jobs.metadata_fields as read back (null for a job stored before it existed)."""
    if isinstance(value, str):
        value = json.loads(value)
    return [(str(name), str(kind)) for name, kind in value or []]


def column_value(kind: str, value: Any) -> Any:
    """A field's value as its column holds it (see the module's docstring)."""
    if value is None:
        return None
    if kind == "float":
        return float(value)
    if kind == "json" and not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # as PostgreSQL's ->> gives it
    return value


def column_names(fields: Fields, taken: Iterable[str]) -> list[str]:
    """Each field's column name: the field's own, or `metadata.FIELD` where that is a
    column already (a field named `loss`)."""
    used = set(taken)
    names = []
    for name, _ in fields:
        column = name if name not in used else f"metadata.{name}"
        while column in used:
            column = f"metadata.{column}"
        used.add(column)
        names.append(column)
    return names
