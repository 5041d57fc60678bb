"""Storing a corpus with flat memory: tasks held as runs of seqs, and duplicate ids caught
by the database's unique constraint, named by file and line, with nothing stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from lensbatch.planning import TaskPlanner, estimate_tokens
from lensbatch.store import schema
from lensbatch.store.jobs import INSERT_CHUNK
from tests.cli import count_rows, lensbatch, user_error_line
from tests.jobdb import write_duplicate_corpus


def naive_plan(lengths: list[tuple[int, int]], budget: int) -> list[list[int]]:
    """What the planner did before it held runs: a list of seqs per task."""
    tasks: list[list[int]] = []
    tokens = 0
    for seq, n_chars in lengths:
        if not tasks or tokens + estimate_tokens(n_chars) > budget:
            tasks.append([])
            tokens = 0
        tasks[-1].append(seq)
        tokens += estimate_tokens(n_chars)
    return tasks


@pytest.mark.parametrize("seqs", [range(50), [0, 1, 2, 5, 6, 9, 20, 21, 22, 23, 40]])
def test_planned_tasks_are_the_same_lists(seqs: range | list[int]) -> None:
    lengths = [(seq, 40 + 37 * seq % 200) for seq in seqs]  # consecutive, or gaps (resume)
    planner = TaskPlanner(60)
    for seq, n_chars in lengths:
        planner.add(seq, n_chars)
    expected = naive_plan(lengths, 60)
    assert len(expected) > 3
    assert list(planner.tasks) == expected
    assert len(planner.tasks) == len(expected) and planner.tasks[-1] == expected[-1]
    assert planner.tasks[1:3] == expected[1:3]


def test_a_million_documents_plan_into_a_run_per_task() -> None:
    planner = TaskPlanner(16384)
    for seq in range(1_000_000):
        planner.add(seq, 60)
    tasks = planner.tasks
    assert len(tasks) == -(-1_000_000 // (16384 // estimate_tokens(60)))
    assert all(len(runs) == 1 for runs in tasks._runs)  # one (start, stop) per task
    assert tasks[0] == list(range(16384 // estimate_tokens(60)))


DUPLICATES = [(3, 7), (5, INSERT_CHUNK + 3)]  # within one chunk, across two


def check_duplicate_is_one_line(url: str, duplicate: tuple[int, int], tmp_path: Path) -> None:
    """`lensbatch run` of a corpus whose line duplicate[1] + 1 reuses an earlier id: one
    line naming that line, exit 2, and no job, document or job document stored."""
    corpus = write_duplicate_corpus(tmp_path / "dup.jsonl", max(duplicate) + 5, duplicate)
    result = lensbatch("run", str(corpus), "--model", "toy-induction",
                       env={"LENSBATCH_DATABASE_URL": url})
    user_error_line(result, f"dup.jsonl:{duplicate[1] + 1}: duplicate document id "
                            f"'doc-{duplicate[0]}'")
    for table in (schema.jobs, schema.documents, schema.job_documents):
        assert count_rows(url, table) == 0


@pytest.mark.parametrize("duplicate", DUPLICATES, ids=["same-chunk", "across-chunks"])
def test_duplicate_id_is_one_line_and_stores_nothing(duplicate: tuple[int, int],
                                                     tmp_path: Path, sqlite_url: str) -> None:
    check_duplicate_is_one_line(sqlite_url, duplicate, tmp_path)
