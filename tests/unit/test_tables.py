"""Terminal tables: `results` and `heads` fit 100 columns by default (their key columns,
numbers right-aligned), `--columns` picks columns, `--all` shows every one, `heads --top`
keeps the best heads; csv and jsonl keep every column; `jobs` names each job's corpus."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from lensbatch.store.head_queries import HEAD_COLUMNS
from lensbatch.store.queries import RESULT_COLUMNS
from scheduler.columns import HEAD_KEY_COLUMNS, RESULT_KEY_COLUMNS, TABLE_WIDTH
from tests.cli import lensbatch, user_error_line
from tests.jobdb import repeated_corpus


@pytest.fixture(scope="module", params=["toy-induction", "gpt2-small-random"])
def job(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    """A finished job of the model, run by `lensbatch run`: its environment and id."""
    path = tmp_path_factory.mktemp("tables")
    env = {"LENSBATCH_DATABASE_URL": f"sqlite:///{path / 'lensbatch.db'}"}
    corpus = repeated_corpus(path / "phrases-with-a-long-corpus-name.jsonl", 6,
                             prefix="a-document-with-a-rather-long-identifier-")
    run = lensbatch("run", str(corpus), "--model", request.param, env=env)
    assert run.returncode == 0, run.stderr
    return env, run.stdout.strip().splitlines()[-1].split()[-1]


def table_lines(out: str) -> list[str]:
    """The table's lines (those drawn with box characters)."""
    return [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]


def header(out: str) -> list[str]:
    (line,) = [line for line in out.splitlines() if line.startswith("┃")]
    return [cell.strip() for cell in line.strip("┃").split("┃")]


def cells(line: str) -> list[str]:
    return line.strip("│").split("│")


@pytest.mark.parametrize("command", ["results", "heads"])
def test_default_tables_fit_100_columns(job: tuple[dict[str, str], str], command: str) -> None:
    env, job_id = job
    shown = lensbatch(command, job_id, env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= TABLE_WIDTH, shown.stdout
    key = RESULT_KEY_COLUMNS if command == "results" else HEAD_KEY_COLUMNS
    assert header(shown.stdout) == list(key)
    rows = [line for line in table_lines(shown.stdout) if line.startswith("│")]
    assert len(rows) >= 6
    # numbers right-aligned: each number ends one space before its column's edge
    for line in rows:
        for cell in cells(line)[1:]:
            assert cell.endswith(" ") and not cell.endswith("  "), line
            assert cell.strip().replace(".", "").isdigit() or cell.strip() == "-", line


def test_every_column_with_all_and_in_csv_and_jsonl(job: tuple[dict[str, str], str]) -> None:
    env, job_id = job
    wide = lensbatch("results", job_id, "--all", env=env)
    assert header(wide.stdout) == list(RESULT_COLUMNS)
    assert max(len(line) for line in wide.stdout.splitlines()) > TABLE_WIDTH
    as_csv = lensbatch("results", job_id, "--format", "csv", env=env).stdout
    assert next(csv.reader(io.StringIO(as_csv))) == list(RESULT_COLUMNS)
    first = json.loads(lensbatch("heads", job_id, "--format", "jsonl", env=env)
                       .stdout.splitlines()[0])
    assert list(first) == list(HEAD_COLUMNS)
    assert header(lensbatch("heads", job_id, "--all", env=env).stdout) == list(HEAD_COLUMNS)


def test_columns_pick_in_order_in_every_format(job: tuple[dict[str, str], str],
                                               tmp_path: Path) -> None:
    env, job_id = job
    table = lensbatch("results", job_id, "--columns", "loss,doc_id,nll_sum", env=env)
    assert header(table.stdout) == ["loss", "doc_id", "nll_sum"]
    as_csv = lensbatch("results", job_id, "--columns", "doc_id,loss", "-f", "csv",
                       env=env).stdout
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert list(rows[0]) == ["doc_id", "loss"] and len(rows) == 6
    parquet = tmp_path / "r.parquet"
    lensbatch("results", job_id, "--columns", "doc_id,n_tokens", "-f", "parquet", "-o",
              str(parquet), env=env)
    import pyarrow.parquet as pq

    read = pq.read_table(parquet)
    assert read.column_names == ["doc_id", "n_tokens"] and read.num_rows == 6
    heads = lensbatch("heads", job_id, "--columns", "layer,head,bos_attention", env=env)
    assert header(heads.stdout) == ["layer", "head", "bos_attention"]


def test_top_heads_by_a_score(job: tuple[dict[str, str], str]) -> None:
    env, job_id = job
    every = [json.loads(line) for line in lensbatch(
        "heads", job_id, "--format", "jsonl", env=env).stdout.splitlines()]
    for by in ("induction_score", "prev_token_score"):
        best = sorted(every, key=lambda row: -row[by])[:3]
        args = ["--top", "3"] + ([] if by == "induction_score" else ["--by", by])
        top = [json.loads(line) for line in lensbatch(
            "heads", job_id, *args, "--format", "jsonl", env=env).stdout.splitlines()]
        assert [row[by] for row in top] == [row[by] for row in best]
        shown = lensbatch("heads", job_id, *args, env=env).stdout
        rows = [cells(line) for line in table_lines(shown) if line.startswith("│")]
        assert len(rows) == 3
        assert [(int(r[0]), int(r[1])) for r in rows] == [(r["layer"], r["head"]) for r in top]


@pytest.mark.parametrize("job", ["toy-induction"], indirect=True)  # heads by construction
def test_toy_induction_top_head_is_its_induction_head(
        job: tuple[dict[str, str], str]) -> None:
    env, job_id = job
    rows = [cells(line) for line in table_lines(lensbatch("heads", job_id, "--top", "1",
                                                          env=env).stdout)
            if line.startswith("│")]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [("1", "2")]


def test_jobs_lists_the_corpus(job: tuple[dict[str, str], str]) -> None:
    env, _ = job
    listed = lensbatch("jobs", env=env).stdout
    assert "corpus" in header(listed)
    assert "phrases-with-a-long-corpus-name.jsonl" in listed


@pytest.mark.parametrize(("args", "fragment"), [
    (["results", "--columns", "loss,nope"], "unknown column nope; the columns are: doc_id"),
    (["results", "--columns", "loss", "--all"], "--columns and --all"),
    (["heads", "--top", "0"], "--top must be at least 1"),
    (["heads", "--by", "layer"], "--by takes a score column"),
    (["heads", "--top", "2", "--per-document"], "leave out --per-document"),
])
def test_bad_column_options(job: tuple[dict[str, str], str], args: list[str],
                            fragment: str) -> None:
    env, job_id = job
    user_error_line(lensbatch(args[0], job_id, *args[1:], env=env), fragment)
