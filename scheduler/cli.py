"""The `lensbatch` command line. Only what a command needs is imported when it runs."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console

from lensbatch.errors import UserError
from lensbatch.jobspec import JobSpec
from lensbatch.settings import Settings, mask_url

app = typer.Typer(
    help="Evaluate TransformerLens models on text corpora, on one machine or many.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()

Model = Annotated[str, typer.Option("--model", "-m", help="Built-in name, hub name or "
                                    "local checkpoint directory.")]
BatchTokens = Annotated[int | None, typer.Option(
    help="Tokens per forward pass (batch x length); default 1024 on CPU, 8192 on GPU.")]
TaskTokens = Annotated[int, typer.Option(help="Approximate tokens per queued task.")]
Stride = Annotated[int, typer.Option(help="Window stride for long documents; 0 = n_ctx/2.")]
NoBos = Annotated[bool, typer.Option("--no-bos", help="Do not prepend BOS.")]
Dtype = Annotated[str, typer.Option(help="float32, or bfloat16/float16 on accelerators.")]
Format = Annotated[str, typer.Option("--format", "-f",
                                     help="table, csv, jsonl, or parquet (needs --output).")]
Activations = Annotated[str | None, typer.Option(
    help="Hooks to summarise, comma-separated: shorthand (pattern, resid_post, mlp_post, "
         "k6) or full names (blocks.0.attn.hook_pattern).")]
Stats = Annotated[str | None, typer.Option(
    help="Statistics of each hook, comma-separated: mean, std, norm, absmax, frac_zero "
         "(default with --activations: mean,norm).")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
DEFAULT_STATS = ("mean", "norm")


def _settings() -> Settings:
    return Settings.from_env()


def _engine():  # type: ignore[no-untyped-def]
    from lensbatch.db import ensure_schema

    return ensure_schema(_settings().database_url)


Analysis = tuple[tuple[str, ...], tuple[str, ...]]  # (activations, stats)


def _analysis(activations: str | None, stats: str | None) -> Analysis:
    from lensbatch.activations import split_list

    hooks = split_list(activations)
    return hooks, split_list(stats) if stats is not None else (DEFAULT_STATS if hooks else ())


def _spec(model: str, batch_tokens: int | None, task_tokens: int, stride: int, no_bos: bool,
          dtype: str, queue: str = "cpu", analysis: Analysis = ((), ())) -> JobSpec:
    """The job's options, checked before anything is stored: model name, statistics, and
    hook names as far as the model's shape is known without loading it."""
    from lensbatch.activations import resolve_activations
    from lensbatch.models import check_model_name, model_shape

    spec = JobSpec(model=model, prepend_bos=not no_bos, batch_tokens=batch_tokens,
                   task_tokens=task_tokens, stride=stride, dtype=dtype, queue=queue,
                   activations=analysis[0], stats=analysis[1]).validate()
    check_model_name(model)
    resolve_activations(spec.activations, model_shape(model))
    return spec


@app.command()
def run(
    corpus: Annotated[str, typer.Argument(help="A .jsonl, .txt/.md, a directory, or -.")],
    model: Model = "gpt2-small-random",
    device: Device = "auto",
    batch_tokens: BatchTokens = JobSpec.batch_tokens,
    task_tokens: TaskTokens = JobSpec.task_tokens,
    stride: Stride = 0,
    no_bos: NoBos = False,
    dtype: Dtype = "float32",
    activations: Activations = None,
    stats: Stats = None,
) -> None:
    """Evaluate a corpus here, with no broker or server, and print a summary.

    Example: lensbatch run corpus/sample.jsonl --model toy-induction --activations pattern
    """
    from scheduler.local import run_local
    from scheduler.output import summary_table
    from scheduler.progress import ProgressView
    from scheduler.queries import job_probe

    spec = _spec(model, batch_tokens, task_tokens, stride, no_bos, dtype,
                 analysis=_analysis(activations, stats))
    engine = _engine()
    view = ProgressView(sys.stderr, terminal=sys.stderr.isatty())  # stdout keeps the summary
    report = run_local(engine, corpus, spec, device, view)
    job_id = report.summary.job_id
    console.print(summary_table(report.summary, report.seconds, job_probe(engine, job_id)))
    print(f"results: lensbatch results {job_id}")
    print(f"heads:   lensbatch heads {job_id}")


@app.command()
def submit(
    corpus: Annotated[str, typer.Argument(help="A .jsonl, .txt/.md, a directory, or -.")],
    model: Model = "gpt2-small-random",
    queue: Annotated[str, typer.Option(help="Queue to send tasks to (cpu or gpu).")] = "cpu",
    batch_tokens: BatchTokens = JobSpec.batch_tokens,
    task_tokens: TaskTokens = JobSpec.task_tokens,
    stride: Stride = 0,
    no_bos: NoBos = False,
    dtype: Dtype = "float32",
    activations: Activations = None,
    stats: Stats = None,
) -> None:
    """Store a corpus as a job and queue it for workers; prints the job id.

    Example: lensbatch submit corpus/sample.jsonl --model gpt2-small-random --queue cpu
    """
    from scheduler.enqueue import check_broker, enqueue
    from scheduler.jobs import create_job

    settings = _settings()
    spec = _spec(model, batch_tokens, task_tokens, stride, no_bos, dtype, queue,
                 analysis=_analysis(activations, stats))
    check_broker(settings)
    job = create_job(_engine(), corpus, spec)
    enqueue(settings, job.job_id, job.tasks, spec.queue)
    print(job.job_id)


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume.")] = "cpu",
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    device: Device = "auto",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Start a Celery worker that evaluates queued tasks.

    Example: LENSBATCH_BROKER_URL=redis://host:6379/0 lensbatch worker --queues gpu
    """
    if concurrency < 1:
        raise typer.BadParameter("--concurrency must be at least 1")
    os.environ["LENSBATCH_DEVICE"] = device
    os.environ["LENSBATCH_WORKER_QUEUES"] = queues
    from worker.tasks import app as celery_app

    settings = _settings()
    console.print(f"broker {mask_url(settings.broker_url)} · database "
                  f"{mask_url(settings.database_url)} · queues {queues} · device {device}",
                  highlight=False)
    celery_app.worker_main([
        "worker", "--queues", queues, "--concurrency", str(concurrency),
        "--loglevel", loglevel, "--hostname", f"lensbatch-{os.getpid()}@%h",
        "--without-gossip", "--without-mingle",
    ])


@app.command()
def status(
    job: Annotated[str | None, typer.Argument(help="Job id; default: recent jobs.")] = None,
    watch: Annotated[bool, typer.Option(help="Live progress until the job finishes: "
                                        "documents, tokens, tokens/s, ETA, failed "
                                        "documents, active workers. Plain lines when "
                                        "stdout is not a terminal.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
) -> None:
    """Show a job's progress, counted from results in the database.

    Example: lensbatch status 3f2a9c1e0b7d4e21 --watch
    """
    from scheduler.cli_jobs import print_failed_documents, print_workers
    from scheduler.output import summary_table
    from scheduler.queries import job_summary

    engine = _engine()
    if job is None:
        jobs()
        print_workers(engine)
        return
    if watch:
        from scheduler.progress import ProgressView
        from scheduler.progress import watch as watch_job

        with ProgressView(sys.stdout, terminal=sys.stdout.isatty()) as view:
            watch_job(engine, job, view, interval)
    console.print(summary_table(job_summary(engine, job)))
    print_failed_documents(engine, job)


@app.command()
def jobs() -> None:
    """List recent jobs. Example: lensbatch jobs"""
    from scheduler.output import write_rows
    from scheduler.queries import list_jobs

    rows = [{"job": s.job_id, "model": s.model, "status": s.status,
             "documents": f"{s.n_done}/{s.n_documents}", "loss": s.loss,
             "created": s.created_at.strftime("%Y-%m-%d %H:%M") if s.created_at else "-"}
            for s in list_jobs(_engine())]
    write_rows(rows, ("job", "model", "status", "documents", "loss", "created"), "table",
               sys.stdout)


@app.command()
def results(
    job: Annotated[str, typer.Argument(help="Job id.")],
    fmt: Format = "table",
    output: Annotated[str | None, typer.Option("--output", "-o", help="File to write.")] = None,
) -> None:
    """Per-document metrics of a job.

    Example: lensbatch results 3f2a9c1e0b7d4e21 --format parquet --output results.parquet
    """
    from lensbatch import schema
    from scheduler.output import emit_rows
    from scheduler.queries import RESULT_COLUMNS, job_summary, result_rows

    engine = _engine()
    job_summary(engine, job)  # raises JobNotFound for a wrong id
    emit_rows(result_rows(engine, job), RESULT_COLUMNS, fmt, output, types=schema.results)


@app.command()
def heads(
    job: Annotated[str, typer.Argument(help="Job id.")],
    fmt: Format = "table",
    output: Annotated[str | None, typer.Option("--output", "-o", help="File to write.")] = None,
) -> None:
    """Per-head attention summaries averaged over a job's documents, with its induction probe.

    Example: lensbatch heads 3f2a9c1e0b7d4e21 --format parquet --output heads.parquet
    """
    from scheduler.output import emit_rows, probe_lines
    from scheduler.queries import HEAD_COLUMNS, head_rows, job_probe, job_summary

    engine = _engine()
    job_summary(engine, job)  # raises JobNotFound for a wrong id
    rows = head_rows(engine, job)
    emit_rows(rows, HEAD_COLUMNS, fmt, output, header=probe_lines(job_probe(engine, job), rows))


@app.command()
def score(
    text: Annotated[str, typer.Argument(help="The text to score (or @FILE to read one).")],
    model: Model = "gpt2-small-random",
    device: Device = "auto",
    no_bos: NoBos = False,
    activations: Activations = None,
    stats: Stats = None,
) -> None:
    """One text, as the seed notebook scores it: its tokens (with BOS), loss, accuracy,
    induction hits and head summaries, and the selected activations' statistics.

    Example: lensbatch score "Hello TransformerLens! Hello TransformerLens!" -m toy-induction
    """
    from scheduler.output import score_report
    from worker.device import pick_device
    from worker.evaluate import analyse_tokens, tokenize
    from worker.models import load_model

    if text.startswith("@"):
        from pathlib import Path

        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {text[1:]}: {exc}") from None
    if not text:
        raise UserError("the text is empty")
    spec = _spec(model, JobSpec.batch_tokens, JobSpec.task_tokens, 0, no_bos, "float32",
                 analysis=_analysis(activations, stats))
    bridge = load_model(model, str(pick_device(device)), "float32")
    tokens = tokenize(bridge, [text], spec.prepend_bos)[0]
    (evaluation,) = analyse_tokens(bridge, [tokens], spec)
    str_tokens = [str(bridge.tokenizer.decode([t])) for t in tokens]
    for line in score_report(str_tokens, evaluation):
        print(line)


@app.command()
def inspect(model: Annotated[str, typer.Argument(help="Model name or directory.")]) -> None:
    """Print a model's layers, heads, context and weight shapes, as the seed notebook does.

    Example: lensbatch inspect gpt2-small-random
    """
    from worker.device import pick_device
    from worker.models import load_model, model_card

    card = model_card(load_model(model, str(pick_device("cpu")), "float32"))
    cfg, shapes = card["config"], card["weight_shapes"]
    print(f"Number of layers: {cfg['n_layers']}")
    print(f"Number of heads per layer: {cfg['n_heads']}")
    print(f"Maximum context window: {cfg['n_ctx']}")
    print(f"Shape of `embeddings` matrix: {' x '.join(map(str, shapes['W_E']))}")
    print(f"Shape of `positional embeddings` matrix: {' x '.join(map(str, shapes['W_pos']))}")
    for name, label in (("W_Q", "query"), ("W_K", "key"), ("W_V", "value")):
        layers, heads, d_model, d_head = shapes[name]
        print(f"Shape of `{label}` matrix: {d_model} x {d_head} "
              f"(per head; {name} is {layers} x {heads} x {d_model} x {d_head})")
    print(f"Shape of `unembeddings` matrix: {' x '.join(map(str, shapes['W_U']))}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (alembic upgrade head). Example: lensbatch db upgrade"""
    from lensbatch.db import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    print(f"database {mask_url(settings.database_url)} is at the newest schema")


def main() -> None:
    try:
        app()
    except UserError as exc:
        from scheduler.output import print_error

        print_error(str(exc))
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)

from scheduler import cli_jobs, cli_report  # noqa: E402,F401
