"""The examples of the README and of the command reference (docs/cli.md) run, so they
cannot rot.

Runs, in order and each once, every `$ ` line of the two pages' ```console blocks (the
README's first: the newcomer's loop; then docs/cli.md's, which show every command;
except the lines that need a broker or Docker, listed in NEEDS_SERVICES), every
```python block of the README, docs/cli.md's ```sql blocks against the resulting SQLite
database and its ```python block (pandas) on the exported files; and checks that the
figures the pages show from `run` and `compare` are the ones those commands print. To
stay cheap, `gpt2-small-random` is replaced by the tiny checkpoint; `run` uses the
built-in toy-induction model as written, so the top induction head is known (1.2).
`$JOB` is the job of the last single-model `run`, `$SWEEP` the sweep of the last sweep
`run`. docs/cli.md also names every option of every command, in its command's section.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from lensbatch.store import schema
from tests.cli import LENSBATCH

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CLI_PAGE = ROOT / "docs" / "cli.md"
PAGES = (README, CLI_PAGE)  # in the order their commands run
# Commands the test leaves out, each needing Redis, a queued job or Docker (the
# integration tests run them); nothing else is skipped.
NEEDS_SERVICES = ("lensbatch submit ", "lensbatch worker ", "lensbatch cancel ",
                  "lensbatch resume ", "docker compose ")
BUILTIN = "gpt2-small-random"


def fenced(page: Path) -> list[tuple[str, str]]:
    """The page's fenced blocks at the start of a line, as (language tag, text)."""
    found: list[tuple[str, str]] = []
    tag: str | None = None
    lines: list[str] = []
    for line in page.read_text(encoding="utf-8").splitlines(keepends=True):
        if tag is None and line.startswith("```"):
            tag, lines = line[3:].strip(), []
        elif tag is not None and line.rstrip() == "```":
            found.append((tag, "".join(lines)))
            tag = None
        elif tag is not None:
            lines.append(line)
    return found


def blocks(tag: str, *pages: Path) -> list[str]:
    return [text for page in pages or PAGES for t, text in fenced(page) if t == tag]


def console_commands(*pages: Path) -> list[str]:
    return [line[2:] for block in blocks("console", *pages) for line in block.splitlines()
            if line.startswith("$ ")]


def runnable() -> list[str]:
    """The lines to run, each once (docs/cli.md repeats some of the README's)."""
    return list(dict.fromkeys(c for c in console_commands() if not c.startswith(NEEDS_SERVICES)))


def shown(*pages: Path) -> set[str]:
    return {c.split()[1] for c in console_commands(*pages) if c.startswith("lensbatch ")}


def test_every_command_is_shown() -> None:
    from typer.main import get_command

    from scheduler.cli import app

    names = set(get_command(app).commands)  # type: ignore[attr-defined]
    assert names <= shown(CLI_PAGE), names - shown(CLI_PAGE)
    # the README's own loop: one run, its results, heads and report
    assert {"run", "results", "heads", "report"} <= shown(README)
    # every line left out needs its service, and every service's line is still there
    skipped = [c for c in console_commands() if c.startswith(NEEDS_SERVICES)]
    assert {p for p in NEEDS_SERVICES if any(c.startswith(p) for c in skipped)} == set(
        NEEDS_SERVICES)


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
    printed: dict[str, str] = {}
    for command in commands:
        result = shell(command.replace(BUILTIN, tiny_checkpoint), workdir, env)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        printed[command] = result.stdout
        if command.startswith("lensbatch run "):
            last = result.stdout.strip().splitlines()[-1]  # a sweep's ends with compare:
            env["SWEEP" if last.startswith("compare:") else "JOB"] = last.split()[-1]
    rescores = 0
    for code in blocks("python", README):
        result = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{code}\n{result.stderr}"
        rescored = re.search(r"stored (\S+)  TransformerLens (\S+)", result.stdout)
        if rescored:  # the Python API's example: a stored loss, scored again in TL
            stored, again = map(float, rescored.groups())
            assert abs(stored - again) <= 1e-5 * abs(stored), result.stdout
            rescores += 1
    assert rescores == 1  # the README's Python API example ran and printed both losses
    readme_run = next(c for c in console_commands(README) if c.startswith("lensbatch run "))
    check_example(README, "│ loss", printed[readme_run])
    check_example(CLI_PAGE, "Paired differences", printed["lensbatch compare $SWEEP"])
    check_example(CLI_PAGE, "4 heads of toy-induction ablated",
                  printed["lensbatch ablations $SWEEP"])
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
    worst, by_source, top_heads = blocks("sql", CLI_PAGE)
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


# Appended to docs/cli.md's pandas code: its answers, as JSON on the last line.
DUMP = """
import json
print(json.dumps({"worst": list(worst.doc_id),
                  "hit_rate": {k: (None if v != v else v) for k, v in by_source.hit_rate.items()},
                  "top_head": [int(x) for x in top_heads.index[0]]}))
"""


def check_pandas(workdir: Path, sql_answers: dict[str, object]) -> None:
    (python,) = blocks("python", CLI_PAGE)
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


def walk(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every command of a click group, by its full name (`db upgrade`)."""
    found: list[tuple[str, Any]] = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group, e.g. `db`
            found += walk(command, f"{prefix}{name} ")
        else:
            found.append((prefix + name, command))
    return found


def root_command() -> Any:
    from typer.main import get_command

    from scheduler.cli import app

    return get_command(app)


def test_every_command_help_has_an_example() -> None:
    commands = walk(root_command())
    assert {"run", "status", "results", "report", "export", "db upgrade"} <= dict(commands).keys()
    for name, command in commands:
        example = (command.help or "").partition("Example:")[2]
        assert f"lensbatch {name}" in example, name


def names(param: Any) -> list[str]:
    """How a parameter is written: an option's flags, an argument's name in capitals."""
    if param.param_type_name == "argument":
        return [param.name.upper()]
    return [*param.opts, *param.secondary_opts]


def test_the_command_reference_gives_every_option() -> None:
    """docs/cli.md has a section per command naming each of its arguments and options;
    the app's own options (beside --help) appear on the page."""
    text = CLI_PAGE.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^### (.+?)\n(.*?)(?=^##|\Z)", text, re.MULTILINE | re.DOTALL))
    root = root_command()
    for name, command in walk(root):
        assert name in sections, f"docs/cli.md has no section ### {name}"
        for param in command.params:
            if "--help" not in names(param):
                missing = [n for n in names(param) if n not in sections[name]]
                assert not missing, f"{name}: {missing} not in its section of docs/cli.md"
    for param in root.params:
        assert all(n in text for n in names(param)), names(param)


# an interval, `4.3395 [4.0549, 4.6183]`, or a change, `1.000 -> 0.041 (-0.959)`
FIGURES = re.compile(r"-?\d+\.\d+ \[-?\d+\.\d+, -?\d+\.\d+\]"
                     r"|\d+\.\d+ -> \d+\.\d+(?: \([+-]\d+\.\d+\))?")


# toy-induction's hand-set weights leave the top two logits within 1e-4 of each other at
# about one position in seven (its induction head attends equally to two earlier copies),
# so which of them argmax picks, and with it accuracy and the hit rate, follows the CPU's
# rounding: a few positions in a thousand. Shown figures may differ by this much from the
# printed ones; a stale figure (another model, another corpus, a changed metric) is off by
# more.
TIE_TOLERANCE = 0.025


def numbers(figures: list[str]) -> list[float]:
    return [float(n) for figure in figures for n in re.findall(r"-?\d+\.\d+", figure)]


def printed_as(figures: list[str], rows: list[list[str]]) -> bool:
    """Whether some printed row shows these figures, to within TIE_TOLERANCE."""
    shown = numbers(figures)
    return any(len(numbers(row)) == len(shown)
               and all(abs(a - b) <= TIE_TOLERANCE
                       for a, b in zip(numbers(row), shown, strict=True))
               for row in rows if row)


def check_example(page: Path, start: str, printed: str) -> None:
    """Each line of figures (intervals, `a -> b`) of the page's plain block that begins
    with `start` is a line of figures the command printed."""
    (example,) = [b for b in blocks("", page) if b.startswith(start)]
    shown = [FIGURES.findall(line) for line in example.splitlines()]
    rows = [FIGURES.findall(line) for line in printed.splitlines()]
    assert sum(1 for figures in shown if figures) >= 3
    for figures in shown:
        assert not figures or printed_as(figures, rows), \
            f"{figures} is not what the command prints"
