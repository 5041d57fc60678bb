"""Document metadata: a corpus object's other fields, checked as its text is, and their
kinds worked out over the corpus so that each column's type is known before any row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lensbatch.corpus import read_corpus
from lensbatch.docmeta import MAX_FIELDS, FieldKinds, column_names, column_value
from lensbatch.errors import CorpusError
from lensbatch.store import schema
from tests.cli import count_rows, lensbatch, user_error_line


def kinds(*documents: dict[str, object]) -> list[tuple[str, str]]:
    fields = FieldKinds()
    for document in documents:
        fields.add(document, "c.jsonl:1")
    return fields.fields()


def test_kinds_follow_every_value() -> None:
    assert kinds({"a": 1, "b": True, "c": "x"}, {"a": 2.5, "b": None, "d": None}) == [
        ("a", "float"), ("b", "bool"), ("c", "string"), ("d", "string")]
    assert kinds({"a": 1}, {"a": "one"}) == [("a", "json")]  # mixed: JSON text
    assert kinds({"a": True}, {"a": 1}) == [("a", "json")]  # a bool is not a number
    assert kinds({"a": [1]}, {"a": 2**70}) == [("a", "json")]
    assert kinds({"a": 2**70}) == [("a", "float")]  # past int64
    assert column_value("json", "one") == "one" and column_value("json", 1) == "1"
    assert column_value("json", {"b": [1, 2]}) == '{"b": [1, 2]}'
    assert column_value("float", 2) == 2.0 and column_value("int", None) is None


def test_a_field_named_like_a_column_is_renamed() -> None:
    fields = [("loss", "string"), ("source", "string"), ("metadata.loss", "int")]
    assert column_names(fields, ("doc_id", "loss")) == [
        "metadata.loss", "source", "metadata.metadata.loss"]


def test_too_many_fields_is_one_error() -> None:
    fields = FieldKinds()
    fields.add({f"f{i}": i for i in range(MAX_FIELDS)}, "c.jsonl:1")
    with pytest.raises(CorpusError, match=f"c.jsonl:2: more than {MAX_FIELDS} distinct"):
        fields.add({"one more": 1}, "c.jsonl:2")


def read(tmp_path: Path, line: str) -> list[object]:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "ok", "text": "fine"}\n' + line + "\n")
    return [doc.metadata for doc in read_corpus(str(path))]


def test_corpus_objects_keep_their_other_fields(tmp_path: Path) -> None:
    assert read(tmp_path, '{"text": "t", "source": "wiki", "n": [1, {"x": null}]}') == [
        None, {"source": "wiki", "n": [1, {"x": None}]}]


@pytest.mark.parametrize(("line", "message"), [
    ('{"text": "t", "score": NaN}', "c.jsonl:2: a metadata field holds a number that is not"),
    ('{"text": "t", "score": 1e400}', "not finite"),
    ('{"text": "t", "note": "a\\u0000b"}', "c.jsonl:2: a metadata field contains a NUL"),
    ('{"text": "t", "tags": {"k\\u0000": 1}}', "contains a NUL"),
    ('{"text": "t", "note": ["\\ud800"]}', "c.jsonl:2: a metadata field is not valid Unicode"),
])
def test_bad_metadata_is_refused(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(CorpusError, match=message):
        read(tmp_path, line)


def test_run_refuses_bad_metadata_storing_nothing(tmp_path: Path) -> None:
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text(json.dumps({"id": "a", "text": "Fine.", "label": 1}) + "\n"
                      + '{"id": "b", "text": "Not fine.", "label": NaN}\n')
    url = f"sqlite:///{tmp_path / 'lensbatch.db'}"
    result = lensbatch("run", str(corpus), "--model", "toy-induction",
                       env={"LENSBATCH_DATABASE_URL": url})
    user_error_line(result, f"{corpus}:2", "not finite")
    assert count_rows(url, schema.jobs) == 0 and count_rows(url, schema.job_documents) == 0
