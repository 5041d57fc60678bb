"""Commands that evaluate: `run` here, `submit` for workers, `worker`, `score`, `inspect`.

Only what a command needs is imported when it runs, so `lensbatch --help` and `submit`
never import torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lensbatch.errors import UserError
from lensbatch.jobspec import JobSpec
from scheduler.context import invocation
from scheduler.options import (
    Activations,
    BatchTokens,
    Corpus,
    Device,
    Dtype,
    HeadScores,
    Model,
    NoBos,
    Queue,
    Stats,
    Stride,
    TaskTokens,
    job_spec,
)

console = Console()


def run(
    ctx: typer.Context,
    corpus: Corpus,
    model: Model = JobSpec.model,
    device: Device = "auto",
    batch_tokens: BatchTokens = JobSpec.batch_tokens,
    task_tokens: TaskTokens = JobSpec.task_tokens,
    stride: Stride = JobSpec.stride,
    no_bos: NoBos = False,
    dtype: Dtype = JobSpec.dtype,
    activations: Activations = None,
    stats: Stats = None,
    head_scores: HeadScores = JobSpec.head_scores,
) -> None:
    """Evaluate a corpus here, with no broker or server, and print a summary.

    Example: lensbatch run corpus/sample.jsonl --model toy-induction --activations pattern
    """
    from lensbatch.store.queries import job_probe
    from scheduler.local import run_local
    from scheduler.output import summary_table
    from scheduler.progress import ProgressView

    spec = job_spec(JobSpec(model=model, prepend_bos=not no_bos, batch_tokens=batch_tokens,
                            task_tokens=task_tokens, stride=stride, dtype=dtype,
                            head_scores=head_scores),
                    activations, stats)
    state = invocation(ctx)
    view = ProgressView(sys.stderr, terminal=sys.stderr.isatty())  # stdout keeps the summary
    report = run_local(state.engine, corpus, spec, device, view,
                       cache_dir=state.settings.cache_dir)
    job_id = report.summary.job_id
    console.print(summary_table(report.summary, report.seconds,
                                job_probe(state.engine, job_id)))
    print(f"results: lensbatch results {job_id}")
    print(f"heads:   lensbatch heads {job_id}")


def submit(
    ctx: typer.Context,
    corpus: Corpus,
    model: Model = JobSpec.model,
    queue: Queue = JobSpec.queue,
    batch_tokens: BatchTokens = JobSpec.batch_tokens,
    task_tokens: TaskTokens = JobSpec.task_tokens,
    stride: Stride = JobSpec.stride,
    no_bos: NoBos = False,
    dtype: Dtype = JobSpec.dtype,
    activations: Activations = None,
    stats: Stats = None,
    head_scores: HeadScores = JobSpec.head_scores,
) -> None:
    """Store a corpus as a job and queue it for workers; prints the job id.

    Example: lensbatch submit corpus/sample.jsonl --model gpt2-small-random --queue cpu
    """
    from lensbatch.store.jobs import create_job
    from scheduler.enqueue import check_broker, enqueue

    state = invocation(ctx)
    spec = job_spec(JobSpec(model=model, prepend_bos=not no_bos, batch_tokens=batch_tokens,
                            task_tokens=task_tokens, stride=stride, dtype=dtype, queue=queue,
                            head_scores=head_scores),
                    activations, stats)
    check_broker(state.settings)
    job = create_job(state.engine, corpus, spec)
    enqueue(state.settings, job.job_id, job.tasks, spec.queue)
    print(job.job_id)


def worker(
    ctx: typer.Context,
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume.")] = "cpu",
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    device: Device = "auto",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    gpus: Annotated[str | None, typer.Option(
        help="CUDA devices for the pool processes, comma-separated (0,1,2,3): process i "
             "takes the i-th (round-robin). Without it, --device cuda gives process i "
             "cuda:i of the node's GPUs.")] = None,
) -> None:
    """Start a Celery worker that evaluates queued tasks.

    Example: LENSBATCH_BROKER_URL=redis://host:6379/0 lensbatch worker --queues gpu
    --device cuda --concurrency 4 (one pool process per GPU of a 4-GPU node)
    """
    import os

    from lensbatch.hooks import split_list
    from lensbatch.jobspec import QUEUES
    from lensbatch.settings import mask_url
    from worker.tasks import create_worker

    if concurrency < 1:
        raise typer.BadParameter("--concurrency must be at least 1")
    unknown = [q for q in split_list(queues) if q not in QUEUES]
    if unknown or not split_list(queues):
        raise UserError(f"--queues takes {', '.join(QUEUES)} (comma-separated), got {queues}")
    devices = gpu_list(gpus, device)
    settings = invocation(ctx).settings
    shown = f"gpus {','.join(map(str, devices))}" if devices else f"device {device}"
    console.print(f"broker {mask_url(settings.broker_url)} · database "
                  f"{mask_url(settings.database_url)} · queues {queues} · {shown}",
                  highlight=False)
    create_worker(settings, queues, device, devices).worker_main([
        "worker", "--queues", queues, "--concurrency", str(concurrency),
        "--loglevel", loglevel, "--hostname", f"lensbatch-{os.getpid()}@%h",
        "--without-gossip", "--without-mingle",
    ])


def gpu_list(gpus: str | None, device: str) -> tuple[int, ...]:
    """`--gpus 0,1,2`: CUDA device numbers, for --device auto or cuda only."""
    if gpus is None:
        return ()
    from lensbatch.hooks import split_list

    items = split_list(gpus)
    if not items or not all(item.isdigit() for item in items):
        raise UserError(f"--gpus takes CUDA device numbers, comma-separated (0,1,2), got {gpus}")
    if device not in ("auto", "cuda"):
        raise UserError(f"--gpus needs --device cuda (or auto), got --device {device}")
    return tuple(int(item) for item in items)


def score(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="The text to score (or @FILE to read one).")],
    model: Model = JobSpec.model,
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
    from worker.engine.device import pick_device
    from worker.engine.evaluate import analyse_tokens, tokenize
    from worker.engine.models import load_model

    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {text[1:]}: {exc}") from None
    if not text:
        raise UserError("the text is empty")
    spec = job_spec(JobSpec(model=model, prepend_bos=not no_bos), activations, stats)
    bridge = load_model(model, str(pick_device(device)), "float32",
                        invocation(ctx).settings.cache_dir)
    tokens = tokenize(bridge, [text], spec.prepend_bos)[0]
    (evaluation,) = analyse_tokens(bridge, [tokens], spec)
    str_tokens = [str(bridge.tokenizer.decode([t])) for t in tokens]
    for line in score_report(str_tokens, evaluation):
        print(line)


def inspect(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name or directory.")],
) -> None:
    """Print a model's layers, heads, context and weight shapes, as the seed notebook does.

    Example: lensbatch inspect gpt2-small-random
    """
    from scheduler.output import model_card_lines
    from worker.engine.device import pick_device
    from worker.engine.models import load_model, model_card

    bridge = load_model(model, str(pick_device("cpu")), "float32",
                        invocation(ctx).settings.cache_dir)
    for line in model_card_lines(model_card(bridge)):
        print(line)
