"""One database setting: --db beside LENSBATCH_DATABASE_URL (--db wins); a command that
only reads never creates a SQLite file, and names the database it did not find, or the
one it read when a job is not in it; --version."""

from __future__ import annotations

import json
import os
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from lensbatch.store import schema
from tests.cli import LENSBATCH, count_rows, lensbatch, user_error_line

# Every command that only reads (or changes a job it must find), with its arguments.
READERS = [["jobs"], ["status"], ["status", "abcd1234"], ["results", "abcd1234"],
           ["heads", "abcd1234"], ["report", "abcd1234"], ["export", "abcd1234", "out"],
           ["compare", "abcd1234", "ef567890"], ["tokens", "abcd1234", "doc"],
           ["workers"], ["cancel", "abcd1234"], ["resume", "abcd1234"]]


@pytest.mark.parametrize("args", READERS, ids=lambda a: a[0])
@pytest.mark.parametrize("how", ["env", "--db"])
def test_a_reader_creates_no_database(args: list[str], how: str, tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    url = f"sqlite:///{missing}"
    result = (lensbatch(*args, env={"LENSBATCH_DATABASE_URL": url}, cwd=str(tmp_path))
              if how == "env" else lensbatch("--db", url, *args, cwd=str(tmp_path)))
    user_error_line(result, f"no database at {missing}", "set --db or LENSBATCH_DATABASE_URL")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no file, no out/ either


def test_the_default_database_is_named_too(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LENSBATCH_DATABASE_URL"}
    result = subprocess.run([LENSBATCH, "jobs"], env=env, cwd=tmp_path, capture_output=True,
                            text=True)
    user_error_line(result, "no database at lensbatch.db (set --db or LENSBATCH_DATABASE_URL)")
    assert not (tmp_path / "lensbatch.db").exists()


def test_db_option_wins_and_no_job_names_the_database(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": "a", "text": "One two. One two."}) + "\n")
    env_url, db_url = f"sqlite:///{tmp_path / 'env.db'}", f"sqlite:///{tmp_path / 'db.db'}"
    env = {"LENSBATCH_DATABASE_URL": env_url}
    ran = lensbatch("--db", db_url, "run", str(corpus), "--model", "toy-induction",
                    "--no-heads", env=env)
    assert ran.returncode == 0, ran.stderr
    job = ran.stdout.strip().splitlines()[-1].split()[-1]
    assert not (tmp_path / "env.db").exists()  # --db beat the environment
    assert count_rows(db_url, schema.jobs) == 1
    assert job in lensbatch("--db", db_url, "jobs", env=env).stdout
    assert lensbatch("db", "upgrade", env=env).returncode == 0  # env.db: empty
    for args in (["results", job], ["heads", job], ["status", job], ["tokens", job, "a"]):
        user_error_line(lensbatch(*args, env=env), f"in database {env_url}")
    line = user_error_line(lensbatch("--db", db_url, "results", "nosuchjob", env=env))
    assert line.endswith(f"no job 'nosuchjob' in database {db_url}")


def test_no_job_names_a_postgres_url_without_its_password() -> None:
    from scheduler.database import not_found_line

    line = not_found_line("no job 'x'", "postgresql://me:s3cret@db.example:5432/lens")
    assert line == "no job 'x' in database postgresql://me:***@db.example:5432/lens"


def test_version() -> None:
    result = lensbatch("--version")
    assert result.returncode == 0
    assert result.stdout == f"lensbatch {version('lensbatch')}\n"
