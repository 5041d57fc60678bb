"""The newcomer's path: `make demo`'s command, then each next command it prints, pasted
as printed into the same shell (no activated .venv, no LENSBATCH_DATABASE_URL), each
reading the demo's job from the one default database."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from scheduler.nextsteps import program
from tests.cli import LENSBATCH

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(LENSBATCH).parent.parent
NEXT = re.compile(r"^(jobs|results|report|heads|compare): +(\S.*)$")


def demo_commands() -> list[str]:
    """The commands `make demo` runs, setup left out (make -n, the virtualenv taken as
    made)."""
    result = subprocess.run(["make", "-s", "-n", "-o", "setup", "-o",
                             ".venv/.lensbatch-installed", "demo"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if line.strip()]


def fresh_shell() -> dict[str, str]:
    """A newcomer's environment: no lensbatch on PATH, no database setting."""
    path = [d for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if d and not (Path(d) / "lensbatch").exists()]
    env = {k: v for k, v in os.environ.items() if k != "LENSBATCH_DATABASE_URL"}
    return {**env, "PATH": os.pathsep.join(path), "HF_HUB_OFFLINE": "1"}


def next_steps(stdout: str) -> dict[str, str]:
    """The next commands `run` printed, by label (`heads: CMD`)."""
    return {m.group(1): m.group(2) for line in stdout.splitlines() if (m := NEXT.match(line))}


def shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_demo_then_its_next_commands_as_printed(tmp_path: Path) -> None:
    (tmp_path / "corpus").symlink_to(ROOT / "corpus")
    (tmp_path / ".venv").symlink_to(VENV)  # a clone's own .venv
    env = fresh_shell()
    (demo,) = demo_commands()
    assert demo.startswith(".venv/bin/lensbatch run corpus/sample.jsonl")
    ran = shell(demo, tmp_path, env)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "lensbatch.db").is_file() and not (tmp_path / "demo.db").exists()
    steps = next_steps(ran.stdout)
    assert set(steps) == {"jobs", "results", "report", "heads"}, ran.stdout
    assert all(c.startswith(".venv/bin/lensbatch ") for c in steps.values()), steps
    job = steps["heads"].split()[-1]
    outputs = {}
    for name, command in steps.items():
        result = shell(command, tmp_path, env)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        outputs[name] = result.stdout
    assert job in outputs["jobs"] and "toy-induction" in outputs["jobs"]
    assert "induction-heads-explained" in outputs["results"]
    assert "top induction heads (probe): 1.2 (1.000)" in outputs["heads"]
    assert outputs["report"].startswith("wrote report.html")
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_the_program_is_named_as_it_can_be_called_again(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{Path(LENSBATCH).parent}{os.pathsep}/usr/bin:/bin")
    assert program(LENSBATCH) == "lensbatch"  # on PATH: the short name
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert program(LENSBATCH) == LENSBATCH  # elsewhere: its whole path
    (tmp_path / ".venv").symlink_to(VENV)
    assert program(".venv/bin/lensbatch") == ".venv/bin/lensbatch"  # below here: relative
    assert program("/usr/bin/python3") == "lensbatch"  # not started as the script


def test_run_with_db_prints_commands_that_read_that_database(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "text": "Hello there. Hello there."}\n')
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    ran = shell(f"{LENSBATCH} --db {url} run {corpus} --model toy-induction --no-heads",
                tmp_path, fresh_shell())
    assert ran.returncode == 0, ran.stderr
    steps = next_steps(ran.stdout)
    assert set(steps) == {"jobs", "results", "report"}  # --no-heads: no heads to show
    assert steps["jobs"] == f"{LENSBATCH} --db {url} jobs"
    listed = shell(steps["jobs"], tmp_path, fresh_shell())
    assert steps["report"].split()[-1] in listed.stdout
    assert not (tmp_path / "lensbatch.db").exists()
