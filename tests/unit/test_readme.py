"""The README's examples run, so they cannot rot.

Runs, in order, every `$ ` line of the README's ```console blocks (except the ones that
need a broker or Docker, listed in NEEDS_SERVICES), every ```sql block against the
resulting SQLite database, and the ```python blocks (pandas) on the exported files.
To stay cheap, `gpt2-small-random` is replaced by the tiny checkpoint; `run` uses the
built-in toy-induction model as written, so the top induction head is known (1.2). `$JOB`
is the job of the last single-model `run`, `$SWEEP` the sweep of the last sweep `run`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from lensbatch.store import schema
from tests.cli import LENSBATCH

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# Commands the test leaves out, each needing Redis, a queued job or Docker (the
# integration tests run them); nothing else is skipped.
NEEDS_SERVICES = ("lensbatch submit ", "lensbatch worker ", "lensbatch cancel ",
                  "lensbatch resume ", "docker compose ")
BUILTIN = "gpt2-small-random"


def blocks(tag: str) -> list[str]:
    return re.findall(rf"^```{tag}\n(.*?)^```", README, re.MULTILINE | re.DOTALL)


def console_commands() -> list[str]:
    return [line[2:] for block in blocks("console") for line in block.splitlines()
            if line.startswith("$ ")]


def runnable() -> list[str]:
    return [c for c in console_commands() if not c.startswith(NEEDS_SERVICES)]


def test_the_readme_lists_every_command() -> None:
    from typer.main import get_command

    from scheduler.cli import app

    names = set(get_command(app).commands)  # type: ignore[attr-defined]
    shown = {c.split()[1] for c in console_commands() if c.startswith("lensbatch ")}
    assert names <= shown, names - shown
    assert len(console_commands()) - len(runnable()) == len(NEEDS_SERVICES)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("readme")
    (path / "corpus").symlink_to(ROOT / "corpus")
    return path


def shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_readme_examples_run(workdir: Path, tiny_checkpoint: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PATH": f"{Path(LENSBATCH).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
           "LENSBATCH_DATABASE_URL": f"sqlite:///{workdir / 'lensbatch.db'}"}
    commands = runnable()
    assert any(c.startswith("lensbatch run ") for c in commands)
    for command in commands:
        result = shell(command.replace(BUILTIN, tiny_checkpoint), workdir, env)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        if command.startswith("lensbatch run "):
            last = result.stdout.strip().splitlines()[-1]  # a sweep's ends with compare:
            env["SWEEP" if last.startswith("compare:") else "JOB"] = last.split()[-1]
    job = env["JOB"]
    assert (workdir / "report.html").stat().st_size > 10_000
    assert (workdir / "sweep.html").stat().st_size > 10_000
    differences = (workdir / "differences.csv").read_text().splitlines()
    assert len(differences) == 4  # loss, accuracy, induction hit rate
    assert all(row.endswith(",True") for row in differences[1:])  # each excludes zero
    assert len((workdir / "results.csv").read_text().splitlines()) == 37  # 36 documents
    assert {p.name for p in (workdir / "export").iterdir()} >= {
        "results.parquet", "job_documents.parquet", "jobs.parquet", "documents.parquet"}
    check_pandas(workdir, check_sql(workdir, job))


def check_sql(workdir: Path, job: str) -> dict[str, object]:
    """Run the three SQL blocks, check them against plain queries, return their answers."""
    url = f"sqlite:///{workdir / 'lensbatch.db'}"
    worst, by_source, top_heads = blocks("sql")
    engine = create_engine(url)
    with engine.connect() as connection:
        r, jd = schema.results, schema.job_documents
        expected_worst = connection.execute(
            select(jd.c.doc_id).join(r, (r.c.job_id == jd.c.job_id) & (r.c.seq == jd.c.seq))
            .where(r.c.job_id == job).order_by(r.c.loss.desc()).limit(10)).scalars().all()
        worst_ids = [row.doc_id for row in connection.execute(text(worst), {"job": job})]
        assert worst_ids == expected_worst
        sources = connection.execute(text(by_source), {"job": job}).all()
        assert sum(row.candidates for row in sources) == connection.scalar(
            text("SELECT SUM(induction_candidates) FROM results WHERE job_id = :j"), {"j": job})
        heads = connection.execute(text(top_heads), {"job": job}).all()
        # toy-induction's induction head is 1.2 by construction
        assert (heads[0].layer, heads[0].head) == (1, 2)
        assert heads[0].induction_score > 0.5 > heads[1].induction_score
    engine.dispose()
    return {"worst": worst_ids,
            "hit_rate": {row.source: row.hit_rate for row in sources},
            "top_head": [heads[0].layer, heads[0].head]}


# Appended to the README's pandas code: its answers, as JSON on the last line.
DUMP = """
import json
print(json.dumps({"worst": list(worst.doc_id),
                  "hit_rate": {k: (None if v != v else v) for k, v in by_source.hit_rate.items()},
                  "top_head": [int(x) for x in top_heads.index[0]]}))
"""


def check_pandas(workdir: Path, sql_answers: dict[str, object]) -> None:
    (python,) = blocks("python")
    result = subprocess.run([sys.executable, "-c", python + DUMP], cwd=workdir,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers["worst"] == sql_answers["worst"]
    assert answers["top_head"] == sql_answers["top_head"]
    expected_rates = sql_answers["hit_rate"]
    assert isinstance(expected_rates, dict)
    assert answers["hit_rate"].keys() == expected_rates.keys()
    for source, rate in expected_rates.items():
        assert answers["hit_rate"][source] == pytest.approx(rate, nan_ok=True)


def test_every_command_help_has_an_example() -> None:
    from typing import Any

    from typer.main import get_command

    from scheduler.cli import app

    def walk(group: Any, prefix: str) -> list[tuple[str, Any]]:
        found: list[tuple[str, Any]] = []
        for name, command in group.commands.items():
            if hasattr(command, "commands"):  # a group, e.g. `db`
                found += walk(command, f"{prefix}{name} ")
            else:
                found.append((prefix + name, command))
        return found

    commands = walk(get_command(app), "")
    assert {"run", "status", "results", "report", "export", "db upgrade"} <= dict(commands).keys()
    for name, command in commands:
        example = (command.help or "").partition("Example:")[2]
        assert f"lensbatch {name}" in example, name
