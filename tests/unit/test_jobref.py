"""JOB and SWEEP arguments: unique prefixes everywhere, an ambiguous one named with its
count, a sweep id refused (with its jobs listed) by the commands that read one job,
and `heads` of a --no-heads job saying so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pytest
from sqlalchemy import create_engine, insert, select

from lensbatch.store import schema
from tests.cli import lensbatch, user_error_line

TEXTS = ["The lighthouse keeper climbed the stairs. The lighthouse keeper climbed the stairs.",
         "Mira signed the ledger and sealed the crates."]


class Jobs(NamedTuple):
    env: dict[str, str]
    url: str
    job: str  # toy-induction, with heads
    sweep: str  # two --no-heads jobs
    members: list[str]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Jobs:
    tmp = tmp_path_factory.mktemp("jobref")
    corpus = tmp / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                              for i, t in enumerate(TEXTS)))
    url = f"sqlite:///{tmp / 'lensbatch.db'}"
    env = {"LENSBATCH_DATABASE_URL": url}
    one = lensbatch("run", str(corpus), "--model", "toy-induction", env=env)
    assert one.returncode == 0, one.stderr
    many = lensbatch("run", str(corpus), "--model", "toy-induction", "--model",
                     "toy-induction-ablated", "--no-heads", env=env)
    assert many.returncode == 0, many.stderr
    sweep = many.stdout.strip().splitlines()[-1].split()[-1]
    engine = create_engine(url)
    with engine.connect() as connection:
        members = list(connection.scalars(select(schema.jobs.c.id).where(
            schema.jobs.c.sweep_id == sweep).order_by(schema.jobs.c.sweep_index)))
    engine.dispose()
    return Jobs(env, url, one.stdout.strip().splitlines()[-1].split()[-1], sweep, members)


def test_a_prefix_names_the_job(jobs: Jobs) -> None:
    heads = lensbatch("heads", jobs.job[:6], env=jobs.env)
    assert heads.returncode == 0, heads.stderr
    assert "top induction heads (probe): 1.2 (1.000)" in heads.stdout
    results = lensbatch("results", jobs.job[:8], "--format", "jsonl", env=jobs.env)
    assert [json.loads(line)["doc_id"] for line in results.stdout.splitlines()] == ["d0", "d1"]
    tokens = lensbatch("tokens", jobs.job[:10], "d0", env=jobs.env)
    assert tokens.returncode == 0, tokens.stderr
    status = lensbatch("status", jobs.job[:6], env=jobs.env)
    assert f"job {jobs.job}" in status.stdout


def test_a_sweep_prefix_names_the_sweep(jobs: Jobs) -> None:
    status = lensbatch("status", jobs.sweep[:6], env=jobs.env)
    assert status.stdout.startswith(f"sweep {jobs.sweep}: 2 jobs"), status.stderr
    compare = lensbatch("compare", jobs.sweep[:6], "--part", "corpus", env=jobs.env)
    assert compare.returncode == 0, compare.stderr
    assert all(member in compare.stdout for member in jobs.members)


def test_too_short_or_unknown(jobs: Jobs) -> None:
    user_error_line(lensbatch("heads", jobs.job[:3], env=jobs.env), f"no job {jobs.job[:3]!r}")
    user_error_line(lensbatch("results", "%%%%", env=jobs.env), "no job '%%%%'")
    user_error_line(lensbatch("report", "____", env=jobs.env), "no job or sweep '____'")


@pytest.mark.parametrize("args", [["results"], ["heads"], ["tokens", "d0"],
                                  ["export", "out"]], ids=lambda a: a[0])
def test_one_job_commands_refuse_a_sweep(jobs: Jobs, args: list[str],
                                         tmp_path: Path) -> None:
    for given in (jobs.sweep, jobs.sweep[:7]):
        line = user_error_line(lensbatch(args[0], given, *args[1:], env=jobs.env,
                                         cwd=str(tmp_path)),
                               f"{jobs.sweep} is a sweep of 2 jobs", f"`{args[0]}` reads one job",
                               f"lensbatch compare {jobs.sweep}",
                               f"lensbatch report {jobs.sweep}", ", ".join(jobs.members))
        assert "Traceback" not in line
    assert not (tmp_path / "out").exists()


def test_a_refused_sweep_names_commands_with_the_same_db(jobs: Jobs) -> None:
    """The commands the line names can be pasted: the program as started, the --db given."""
    line = user_error_line(lensbatch("--db", jobs.url, "results", jobs.sweep))
    for command in ("compare", "report"):
        assert f"lensbatch --db {jobs.url} {command} {jobs.sweep}`" in line, line


def test_heads_of_a_no_heads_job(jobs: Jobs) -> None:
    for fmt in ("table", "csv"):
        user_error_line(lensbatch("heads", jobs.members[0], "--format", fmt, env=jobs.env),
                        f"job {jobs.members[0]} was run with --no-heads")


def test_an_ambiguous_prefix_counts_its_candidates(jobs: Jobs) -> None:
    twin = jobs.job[:8] + ("f" if jobs.job[8] != "f" else "e") + "0" * 7  # 8 shared
    engine = create_engine(jobs.url)
    with engine.begin() as connection:
        row = dict(connection.execute(select(schema.jobs).where(
            schema.jobs.c.id == jobs.job)).one()._mapping)
        connection.execute(insert(schema.jobs).values({**row, "id": twin}))
    try:
        user_error_line(lensbatch("heads", jobs.job[:6], env=jobs.env),
                        f"{jobs.job[:6]!r} starts 2 job and sweep ids")
        whole = lensbatch("heads", jobs.job, env=jobs.env)  # a whole id is never ambiguous
        assert whole.returncode == 0, whole.stderr
        assert lensbatch("results", jobs.job[:9], env=jobs.env).returncode == 0
    finally:
        with engine.begin() as connection:
            connection.execute(schema.jobs.delete().where(schema.jobs.c.id == twin))
        engine.dispose()
