"""Head ablations with known answers, as users run them: on toy-induction, zeroing the
induction head (1.2) is exactly toy-induction-ablated (the same weights with that head
left at zero) and raises the loss on repeated text with an interval that excludes 0;
ablating a head whose weights are zero (it writes nothing) changes no number at all."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, select

from lensbatch.ablation import job_label, parse_heads, parse_layers
from lensbatch.bootstrap import normal_interval
from lensbatch.errors import JobSpecError
from lensbatch.jobspec import JobSpec
from lensbatch.store import schema
from tests.cli import count_rows, lensbatch, user_error_line
from tests.faults import REPO

CORPUS = str(REPO / "corpus" / "repeated.jsonl")
Setup = tuple[dict[str, str], str, dict[str, str]]  # env, sweep id, job id per label


def jsonl(*args: str, env: dict[str, str]) -> list[dict[str, Any]]:
    result = lensbatch(*args, "--format", "jsonl", env=env)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def last_id(stdout: str) -> str:
    return stdout.strip().splitlines()[-1].split()[-1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """One database: the ablation sweep of toy-induction's layer 1, toy-induction-ablated,
    and a mean ablation of the zero head 1.0."""
    tmp = tmp_path_factory.mktemp("ablation")
    env = {"LENSBATCH_DATABASE_URL": f"sqlite:///{tmp / 'lensbatch.db'}"}
    swept = lensbatch("run", CORPUS, "--model", "toy-induction", "--ablate-each-head",
                      "--ablate-layers", "1", env=env)
    assert swept.returncode == 0, swept.stderr
    lines = swept.stdout.strip().splitlines()
    # the commands as they can be pasted: the program as it was started
    assert re.fullmatch(r"compare: \S*lensbatch compare \w+", lines[-1]), lines[-1]
    sweep_id = last_id(swept.stdout)
    assert any(re.fullmatch(rf"ablations: \S*lensbatch ablations {sweep_id}", line)
               for line in lines), lines
    assert swept.stdout.count("[low, high]: 95% interval") == 1  # the unablated job's
    jobs = {}
    for label, args in (("ablated-model", ("--model", "toy-induction-ablated")),
                        ("mean-1.0", ("--model", "toy-induction", "--ablate", "1.0",
                                      "--ablation", "mean")),
                        ("mean-1.2", ("--model", "toy-induction", "--ablate", "1.2",
                                      "--ablation", "mean"))):
        result = lensbatch("run", CORPUS, *args, env=env)
        assert result.returncode == 0, result.stderr
        jobs[label] = result.stdout.strip().splitlines()[-1].split()[-1]
    engine = create_engine(env["LENSBATCH_DATABASE_URL"])
    with engine.connect() as connection:
        rows = connection.execute(select(schema.jobs.c.id, schema.jobs.c.settings).where(
            schema.jobs.c.sweep_id == sweep_id).order_by(schema.jobs.c.sweep_index)).all()
    engine.dispose()
    for row in rows:
        heads = JobSpec.from_json(row.settings).ablate
        jobs["baseline" if not heads else ".".join(map(str, heads[0]))] = row.id
    return env, sweep_id, jobs


def results_of(env: dict[str, str], job: str) -> list[dict[str, Any]]:
    return jsonl("results", job, env=env)


def test_the_sweep_is_the_unablated_model_then_one_job_per_head(setup: Setup) -> None:
    env, sweep_id, jobs = setup
    assert {label for label in jobs if label[0].isdigit()} >= {"1.0", "1.1", "1.2", "1.3"}
    status = lensbatch("status", sweep_id, env=env).stdout
    assert f"sweep {sweep_id}: 5 jobs" in status
    assert count_rows(env["LENSBATCH_DATABASE_URL"], schema.documents) == 12  # stored once


def test_ablating_the_induction_head_raises_the_loss(setup: Setup) -> None:
    env, sweep_id, jobs = setup
    ranked = jsonl("ablations", sweep_id, env=env)
    assert [row["rank"] for row in ranked] == [1, 2, 3, 4]
    top = ranked[0]
    assert (top["head"], top["job"], top["documents"]) == ("1.2", jobs["1.2"], 12)
    assert top["loss_difference"] > 1 and top["loss_low"] > 0 and top["loss_excludes_zero"]
    assert top["accuracy_high"] < 0 and top["induction_hit_rate_high"] < 0
    # the difference is the two jobs' token-weighted losses apart, and its interval the
    # normal approximation over the per-document paired differences
    base, ablated = results_of(env, jobs["baseline"]), results_of(env, jobs["1.2"])
    d = np.array([a["nll_sum"] - b["nll_sum"] for a, b in zip(ablated, base, strict=True)])
    n = np.array([b["n_predictions"] for b in base], dtype=np.float64)
    expected = normal_interval(len(d), (d.sum(), n.sum()),
                               ((d * d).sum(), (d * n).sum(), (n * n).sum()))
    assert top["loss_difference"] == pytest.approx(
        sum(a["nll_sum"] for a in ablated) / n.sum() - sum(b["nll_sum"] for b in base) / n.sum())
    assert (top["loss_low"], top["loss_high"]) == pytest.approx((expected.low, expected.high))
    # compare's paired bootstrap agrees that it excludes 0
    diffs = jsonl("compare", jobs["baseline"], jobs["1.2"], "--part", "differences", env=env)
    loss = next(row for row in diffs if row["metric"] == "loss")
    assert loss["difference"] == pytest.approx(top["loss_difference"])
    assert loss["excludes_zero"] and loss["low"] > 0
    table = lensbatch("ablations", sweep_id, env=env).stdout
    assert "1.2" in table and " *" in table


def test_zeroing_the_induction_head_is_toy_induction_ablated(setup: Setup) -> None:
    env, _, jobs = setup
    assert results_of(env, jobs["1.2"]) == results_of(env, jobs["ablated-model"])


@pytest.mark.parametrize("label", ["1.0", "1.1", "1.3", "mean-1.0"])
def test_ablating_a_head_that_writes_nothing_changes_no_number(setup: Setup, label: str) -> None:
    env, sweep_id, jobs = setup
    assert results_of(env, jobs[label]) == results_of(env, jobs["baseline"])
    assert jsonl("heads", jobs[label], env=env) == jsonl("heads", jobs["baseline"], env=env)
    if not label.startswith("mean"):
        row = next(r for r in jsonl("ablations", sweep_id, env=env) if r["head"] == label)
        assert row["loss_difference"] == row["loss_low"] == row["loss_high"] == 0.0
        assert not row["loss_excludes_zero"]


def test_mean_ablation_of_the_induction_head_raises_the_loss(setup: Setup) -> None:
    env, _, jobs = setup
    base, mean = results_of(env, jobs["baseline"]), results_of(env, jobs["mean-1.2"])
    zero = results_of(env, jobs["1.2"])
    total = [sum(row["nll_sum"] for row in rows) for rows in (base, mean, zero)]
    assert total[0] < total[1] and total[1] != total[2]
    # tokens scores the document again with the same mean: its sums are the stored ones
    tokens = jsonl("tokens", jobs["mean-1.2"], "keeper", env=env)
    keeper = next(row for row in mean if row["doc_id"] == "keeper")
    assert sum(t["loss"] for t in tokens[1:]) == pytest.approx(keeper["nll_sum"], rel=1e-6)


def test_bad_ablations_are_one_line_and_store_nothing(tmp_path: Path) -> None:
    env = {"LENSBATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'lensbatch.db'}"}
    for args, fragment in (
            (("--ablate", "2.0"), "toy-induction has 2 layers (0 to 1)"),
            (("--ablate", "1.4"), "toy-induction has 4 heads per layer (0 to 3)"),
            (("--ablate", "1-2"), "--ablate takes LAYER.HEAD"),
            (("--ablate", "1.2", "--ablation", "half"), "--ablation must be one of zero, mean"),
            (("--ablate", "1.2,1.2"), "names a head twice"),
            (("--ablate-layers", "1"), "--ablate-layers goes with --ablate-each-head"),
            (("--ablate-each-head", "--ablate-layers", "2"), "the model has 2 layers"),
            (("--ablate-each-head", "--ablate", "1.2"), "not both")):
        for command in ("run", "submit"):
            result = lensbatch(command, CORPUS, "--model", "toy-induction", *args, env=env)
            user_error_line(result, fragment)
    assert not (tmp_path / "lensbatch.db").exists() or count_rows(
        env["LENSBATCH_DATABASE_URL"], schema.jobs) == 0


def test_ablations_of_what_is_not_an_ablation_sweep(setup: Setup) -> None:
    env, sweep_id, jobs = setup
    user_error_line(lensbatch("ablations", "0123456789abcdef", env=env), "no sweep")
    user_error_line(lensbatch("ablations", jobs["mean-1.2"], env=env),
                    f"{jobs['mean-1.2']} is a job, not an ablation sweep")
    # a sweep's first characters are the sweep
    assert jsonl("ablations", sweep_id[:6], env=env) == jsonl("ablations", sweep_id, env=env)


@pytest.mark.parametrize("label", ["baseline", "1.2"])
def test_ablations_of_a_job_of_the_sweep_gives_the_command(setup: Setup, label: str) -> None:
    """The one line names the job's sweep and the command to paste, with the same --db."""
    env, sweep_id, jobs = setup
    url = env["LENSBATCH_DATABASE_URL"]
    for given in (jobs[label], jobs[label][:6]):
        line = user_error_line(lensbatch("--db", url, "ablations", given),
                               f"{jobs[label]} is a job of the ablation sweep {sweep_id}")
        command = line.rsplit(": ", 1)[1]
        assert command.endswith(f"lensbatch --db {url} ablations {sweep_id}"), line
        pasted = subprocess.run(shlex.split(command), capture_output=True, text=True,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"})
        assert pasted.returncode == 0, pasted.stderr
        assert pasted.stdout.startswith("4 heads of toy-induction ablated (zero)")


def test_an_ablated_job_is_labelled_by_its_ablation(setup: Setup) -> None:
    """Wherever jobs are listed side by side, an ablated job reads `MODEL -L.H (how)`
    and an unablated one its model alone."""
    env, sweep_id, jobs = setup
    labels = {jobs["baseline"]: "toy-induction", jobs["1.2"]: "toy-induction -1.2 (zero)",
              jobs["1.0"]: "toy-induction -1.0 (zero)",
              jobs["mean-1.2"]: "toy-induction -1.2 (mean)",
              jobs["ablated-model"]: "toy-induction-ablated"}

    def cells(stdout: str, job: str) -> list[str]:
        row = next(line for line in stdout.splitlines() if job in line and "│" in line)
        return [cell.strip() for cell in re.split(r"[│┃|]", row)]

    listed = lensbatch("jobs", env=env).stdout
    for job, label in labels.items():
        assert label in cells(listed, job), cells(listed, job)
    status = lensbatch("status", sweep_id, env=env).stdout
    for job in (jobs["baseline"], jobs["1.2"], jobs["1.0"]):
        assert labels[job] in cells(status, job)
    assert f"· {labels[jobs['mean-1.2']]} ·" in lensbatch("status", jobs["mean-1.2"],
                                                         env=env).stdout
    # compare of the unablated job and an ablated one says which is which
    compared = lensbatch("compare", jobs["baseline"], jobs["mean-1.2"], "--part", "corpus",
                         env=env).stdout
    assert "toy-induction" in cells(compared, jobs["baseline"])
    assert "toy-induction -1.2 (mean)" in cells(compared, jobs["mean-1.2"])
    rows = jsonl("compare", jobs["baseline"], jobs["mean-1.2"], "--part", "differences",
                 env=env)
    assert {(row["model"], row["ablate"], row["ablation"]) for row in rows} == {
        ("toy-induction", "1.2", "mean")}
    rows = jsonl("compare", sweep_id, "--part", "corpus", env=env)
    assert [(row["ablate"], row["ablation"]) for row in rows[:2]] == [(None, None),
                                                                     ("1.0", "zero")]


def test_the_sweep_report_labels_its_jobs_by_ablation(setup: Setup, tmp_path: Path) -> None:
    env, sweep_id, jobs = setup
    out = tmp_path / "sweep.html"
    assert lensbatch("report", sweep_id, "--output", str(out), env=env).returncode == 0
    page = out.read_text(encoding="utf-8")
    jobs_table = page.split('id="sweep-jobs"')[1].split("</table>")[0]
    row = jobs_table.split(jobs["1.2"])[1].split("</tr>")[0]
    assert "toy-induction -1.2 (zero)" in row
    assert "toy-induction -1.3 (zero)" not in row and "5 jobs" in page
    one = tmp_path / "job.html"
    assert lensbatch("report", jobs["mean-1.2"], "--output", str(one), "--no-tokens",
                     env=env).returncode == 0
    assert (f"<h1>lensbatch report: job {jobs['mean-1.2']} · toy-induction -1.2 (mean)</h1>"
            in one.read_text(encoding="utf-8"))


def test_job_label() -> None:
    assert job_label("gpt2", (), "zero") == "gpt2"
    assert job_label("gpt2", ((1, 2), (0, 11)), "mean") == "gpt2 -1.2,0.11 (mean)"


def test_heads_and_layers_parse() -> None:
    assert parse_heads("1.2, 0.1") == ((1, 2), (0, 1))
    assert parse_heads(None) == ()
    assert parse_layers(None, 3) == (0, 1, 2)
    assert parse_layers("1,0,1", 3) == (1, 0)
    for bad in ("1", "1.x", "", "a.b"):
        with pytest.raises(JobSpecError):
            parse_heads(bad)
    with pytest.raises(JobSpecError):
        parse_layers("3", 3)
    spec = JobSpec(model="toy-induction", ablate=((1, 2), (0, 1)), ablation="mean").validate()
    assert JobSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert JobSpec.from_json({"model": "toy-induction"}).ablate == ()  # older jobs
