"""Commands that evaluate a corpus: `run` here, `submit` for workers, and `worker`.

Only what a command needs is imported when it runs, so `lensbatch --help` and `submit`
never import torch.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from lensbatch.errors import UserError
from lensbatch.hooks import split_list
from lensbatch.jobspec import JobSpec
from lensbatch.status import WORKER_LIVE_SECONDS
from scheduler.context import invocation
from scheduler.options import (
    Ablate,
    AblateEachHead,
    AblateLayers,
    Ablation,
    Activations,
    BatchTokens,
    Bos,
    Corpus,
    Device,
    Dtype,
    HeadScores,
    MaxDocumentBytes,
    Models,
    ModelsFile,
    NoHeads,
    OptionalCorpus,
    Queue,
    Resume,
    Stats,
    Stride,
    TaskTokens,
    TopActivations,
    TopK,
    Windows,
    given,
    with_document_limit,
)

if TYPE_CHECKING:

    from scheduler.local import RunReport
    from scheduler.progress import ProgressView

console = Console()


def run(
    ctx: typer.Context,
    corpus: OptionalCorpus = None,
    model: Models = None,
    models: ModelsFile = None,
    device: Device = "auto",
    batch_tokens: BatchTokens = JobSpec.batch_tokens,
    task_tokens: TaskTokens = JobSpec.task_tokens,
    stride: Stride = JobSpec.stride,
    bos: Bos = None,
    windows: Windows = JobSpec.windows,
    no_heads: NoHeads = False,
    dtype: Dtype = JobSpec.dtype,
    activations: Activations = None,
    stats: Stats = None,
    max_document_bytes: MaxDocumentBytes = None,
    head_scores: HeadScores = JobSpec.head_scores,
    ablate: Ablate = None,
    ablation: Ablation = JobSpec.ablation,
    ablate_each_head: AblateEachHead = False,
    ablate_layers: AblateLayers = None,
    top_activations: TopActivations = None,
    top_k: TopK = JobSpec.top_k,
    resume: Resume = None,
) -> None:
    """Evaluate a corpus here, with no broker or server, and print a summary.

    With several models (`--model A --model B`, or `--models FILE`), one job per model
    over the same documents, grouped under a sweep id. Ctrl-C keeps every result written
    and prints the command that continues: `lensbatch run --resume JOB`.

    Example: lensbatch run corpus/sample.jsonl --model toy-induction --activations pattern
    """
    from scheduler.local import Interrupted, run_jobs_local

    state = invocation(ctx)
    try:
        if resume is not None:
            reports = _resume(ctx, resume, device)
        elif corpus is None:
            raise UserError("give a CORPUS to evaluate, or --resume JOB to continue a job")
        else:
            from lensbatch.ablation import parse_heads
            from scheduler.sweep import ablation_choice, members

            base = JobSpec(prepend_bos=bos, batch_tokens=batch_tokens,
                           task_tokens=task_tokens, stride=stride, windows=windows,
                           heads=not no_heads, dtype=dtype, head_scores=head_scores,
                           top_activations=split_list(top_activations), top_k=top_k,
                           ablate=parse_heads(ablate), ablation=ablation)
            chosen = ablation_choice(members(model, models, base, activations, stats),
                                     ablate_each_head, ablate_layers)
            settings = with_document_limit(state.settings, max_document_bytes)
            reports = run_jobs_local(state.engine, corpus, chosen, device, _views, settings)
    except Interrupted as exc:
        from scheduler.nextsteps import prefix

        sys.stderr.write(exc.line(prefix(state.db_option)) + "\n")
        raise typer.Exit(130) from None
    _print_reports(ctx, reports, resume is None and not model and not models)


def _views() -> ProgressView:
    """`run`'s progress, on standard error (standard output keeps the summaries)."""
    from scheduler.progress import LOCAL_RUNNER, ProgressView

    return ProgressView(sys.stderr, terminal=sys.stderr.isatty(), runner=LOCAL_RUNNER)


def _resume(ctx: typer.Context, resume: str, device: str) -> list[RunReport]:
    """`run --resume JOB` (or a sweep id: each of its jobs in order): the jobs' stored
    options, so no other option than --device may be given."""
    from lensbatch.store.sweeps import sweep_jobs
    from scheduler.local import resume_jobs_local

    extra = [param.opts[0] if param.opts[0].startswith("-") else param.opts[0].upper()
             for param in ctx.command.params
             if param.name not in (None, "resume", "device") and given(ctx, param.name)]
    if extra:
        raise UserError(f"--resume continues a job with its stored options and corpus; "
                        f"leave out {', '.join(extra)}")
    state = invocation(ctx)
    job_ids = [member.job_id for member in sweep_jobs(state.engine, resume)] or [resume]
    return resume_jobs_local(state.engine, job_ids, device, _views, state.settings, resume)


def _print_reports(ctx: typer.Context, reports: list[RunReport], chose_default: bool) -> None:
    """Each job's summary, then the commands that read it further."""
    from lensbatch.store.head_queries import job_probe
    from scheduler.ablation_view import is_ablation_sweep
    from scheduler.compare_view import job_intervals
    from scheduler.jobref import has_heads
    from scheduler.model_notes import say_default_model, weights_line
    from scheduler.nextsteps import job_lines, prefix, sweep_lines
    from scheduler.output import summary_table

    engine = invocation(ctx).engine
    sweep = reports[0].summary.sweep
    heads_swept = sweep is not None and is_ablation_sweep(engine, sweep.sweep_id)
    # An ablation sweep shows its unablated job; `ablations SWEEP` shows the rest.
    for report in reports[:1] if heads_swept else reports:
        job_id = report.summary.job_id
        console.print(summary_table(report.summary, report.seconds,
                                    job_probe(engine, job_id),
                                    job_intervals(engine, report.summary)))
        if (note := weights_line(report.summary.model)) is not None:
            print(note)
    if chose_default:
        say_default_model(None, None, sys.stdout)
    db_option = invocation(ctx).db_option
    if sweep is None:
        print("\n".join(job_lines(job_id, has_heads(engine, job_id), db_option)))
        return
    if heads_swept:
        print(f"{len(reports) - 1} heads ablated, one job each, evaluated in "
              f"{sum(r.seconds for r in reports):.1f} s")
        print(f"ablations: {prefix(db_option)} ablations {sweep.sweep_id}")
    print("\n".join(sweep_lines(sweep.sweep_id, db_option)))


def submit(
    ctx: typer.Context,
    corpus: Corpus,
    model: Models = None,
    models: ModelsFile = None,
    queue: Queue = JobSpec.queue,
    batch_tokens: BatchTokens = JobSpec.batch_tokens,
    task_tokens: TaskTokens = JobSpec.task_tokens,
    stride: Stride = JobSpec.stride,
    bos: Bos = None,
    windows: Windows = JobSpec.windows,
    no_heads: NoHeads = False,
    dtype: Dtype = JobSpec.dtype,
    activations: Activations = None,
    stats: Stats = None,
    max_document_bytes: MaxDocumentBytes = None,
    head_scores: HeadScores = JobSpec.head_scores,
    ablate: Ablate = None,
    ablation: Ablation = JobSpec.ablation,
    ablate_each_head: AblateEachHead = False,
    ablate_layers: AblateLayers = None,
    top_activations: TopActivations = None,
    top_k: TopK = JobSpec.top_k,
) -> None:
    """Store a corpus as a job and queue it for workers; prints the job id, and warns
    on standard error when no live worker consumes the queue.

    With several models (`--model A --model B`, or `--models FILE`), one job per model
    over the same documents: prints the sweep id (`lensbatch status SWEEP` lists its
    jobs).

    Example: lensbatch submit corpus/sample.jsonl --model gpt2-small-random --queue cpu
    """
    from lensbatch.ablation import head_label, parse_heads
    from lensbatch.store.consumers import live_queues
    from lensbatch.store.jobs import create_jobs
    from scheduler.enqueue import check_broker, enqueue
    from scheduler.model_notes import say_default_model
    from scheduler.output import print_warning
    from scheduler.sweep import ablation_choice, members

    state = invocation(ctx)
    base = JobSpec(prepend_bos=bos, batch_tokens=batch_tokens,
                   task_tokens=task_tokens, stride=stride, windows=windows,
                   heads=not no_heads, dtype=dtype, queue=queue,
                   head_scores=head_scores, top_activations=split_list(top_activations),
                   top_k=top_k,
                   ablate=parse_heads(ablate), ablation=ablation)
    chosen = ablation_choice(members(model, models, base, activations, stats),
                             ablate_each_head, ablate_layers)
    settings = with_document_limit(state.settings, max_document_bytes)
    check_broker(settings)
    created = create_jobs(state.engine, corpus, chosen, settings.max_document_bytes)
    for job, member in zip(created.jobs, chosen, strict=True):
        enqueue(settings, job.job_id, job.tasks, member.spec.queue)
        if created.sweep_id is not None:
            ablated = ",".join(map(head_label, member.spec.ablate))
            sys.stderr.write(f"job {job.job_id}: {member.spec.model}"
                             f"{f' ablating {ablated}' if ablated else ''}\n")
    print(created.sweep_id or created.jobs[0].job_id)
    say_default_model(model, models, sys.stderr)  # stdout is the id alone, for scripts
    if queue not in live_queues(state.engine):
        print_warning(f"no live worker consumes queue {queue} (none has sent a "
                      f"heartbeat in the last {WORKER_LIVE_SECONDS:.0f} s); the job waits "
                      f"for one: lensbatch worker --queues {queue}")


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
    from scheduler.enqueue import check_broker_url
    from worker.tasks import create_worker

    if concurrency < 1:
        raise typer.BadParameter("--concurrency must be at least 1")
    unknown = [q for q in split_list(queues) if q not in QUEUES]
    if unknown or not split_list(queues):
        raise UserError(f"--queues takes {', '.join(QUEUES)} (comma-separated), got {queues}")
    devices = gpu_list(gpus, device)
    settings = invocation(ctx).settings
    check_broker_url(settings)  # kombu's own error would quote a piece of the password
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
