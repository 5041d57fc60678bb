"""The options several commands share, and the job spec they add up to.

A job's options are checked here, before anything is stored or queued: its numbers,
its model name, and its hook names as far as the model's shape is known without
loading it (the worker checks them again against the loaded model).
"""

from __future__ import annotations

from typing import Annotated

import typer

from lensbatch.errors import JobSpecError
from lensbatch.jobspec import JobSpec
from lensbatch.settings import Settings
from scheduler.jobref import job_argument, job_or_sweep_argument

Corpus = Annotated[str, typer.Argument(help="A .jsonl, .txt/.md, a directory, or -.")]
OptionalCorpus = Annotated[str | None, typer.Argument(
    help="A .jsonl, .txt/.md, a directory, or -; none with --resume.")]
Resume = Annotated[str | None, typer.Option(
    "--resume", metavar="JOB", help="Continue a stored job (or a sweep's jobs) here: "
    "evaluate its documents without a result, with the job's own options and corpus, "
    "and finish it. Only --device may be given with it.", callback=job_or_sweep_argument)]
Model = Annotated[str, typer.Option("--model", "-m", help="Built-in name, hub name or "
                                    "local checkpoint directory.")]
Models = Annotated[list[str] | None, typer.Option(
    "--model", "-m", help="Built-in name, hub name or local checkpoint directory; give it "
    "again for a sweep (one job per model over the same documents, compared with "
    "`lensbatch compare SWEEP`). Default: gpt2-small-random.")]
ModelsFile = Annotated[str | None, typer.Option(
    "--models", help="A file listing the models of a sweep in order, one a line (such as "
    "training checkpoints); `MODEL STEP` gives a checkpoint's training step.")]
BatchTokens = Annotated[int | None, typer.Option(
    help="Tokens per forward pass (batch x length); default 1024 on CPU, 8192 on GPU.")]
TaskTokens = Annotated[int, typer.Option(help="Approximate tokens per queued task.")]
Stride = Annotated[int, typer.Option(help="Window stride for long documents; 0 = n_ctx/2.")]
Bos = Annotated[bool | None, typer.Option(
    "--bos/--no-bos", help="Prepend BOS, or not; default: as TransformerLens does for the "
    "model (its default_prepend_bos: yes for GPT-2 and Llama, no for Qwen or Phi).")]
Windows = Annotated[str, typer.Option(
    help="Windows for long documents: sliding (--stride apart, every prediction with as "
         "much context as fits) or disjoint (lm-evaluation-harness's rolling windows).")]
NoHeads = Annotated[bool, typer.Option(
    "--no-heads", help="Behaviour only: loss, accuracy and induction hits, without the "
                       "per-head attention summaries and the probe.")]
Dtype = Annotated[str, typer.Option(help="float32, or bfloat16/float16 on accelerators.")]
Queue = Annotated[str, typer.Option(help="Queue to send tasks to (cpu or gpu).")]
Format = Annotated[str, typer.Option("--format", "-f",
                                     help="table, csv, jsonl, or parquet (needs --output).")]
Output = Annotated[str | None, typer.Option("--output", "-o", help="File to write.")]
JobId = Annotated[str, typer.Argument(help="Job id, or its first characters (4 or more).",
                                      callback=job_argument)]
Activations = Annotated[str | None, typer.Option(
    help="Hooks to summarise, comma-separated: shorthand (pattern, resid_post, mlp_post, "
         "k6) or full names (blocks.0.attn.hook_pattern).")]
Stats = Annotated[str | None, typer.Option(
    help="Statistics of each hook, comma-separated: mean, std, norm, absmax, frac_zero "
         "(default with --activations: mean,norm).")]
TopActivations = Annotated[str | None, typer.Option(
    help="Hooks whose neurons get their --top-k highest activations over the corpus, "
         "with document and position (`lensbatch top`, `lensbatch neurons`), "
         "comma-separated as --activations: mlp_post, resid_post, blocks.1.mlp.hook_post; "
         "per head for hook_z and the other head hooks.")]
TopK = Annotated[int, typer.Option(help="Activations kept per neuron (--top-activations).")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
MaxDocumentBytes = Annotated[int | None, typer.Option(
    help="Largest document accepted, in bytes of UTF-8; a larger one is refused with its "
         "file and line, before anything is stored (default 10000000, or "
         "LENSBATCH_MAX_DOCUMENT_BYTES).")]
HeadScores = Annotated[str, typer.Option(
    help="Per-head scores to keep: job (sums over documents: `heads` and the report) or "
         "document (also every document's scores, packed: `heads --per-document`).")]
Ablate = Annotated[str | None, typer.Option(
    help="Heads to ablate, LAYER.HEAD comma-separated (1.2,0.1): their output "
         "(blocks.L.attn.hook_z) is replaced while every number is measured.")]
Ablation = Annotated[str, typer.Option(
    help="What an ablated head's output becomes: zero, or mean (its mean over the "
         "positions of the corpus's first 16 documents, each run alone).")]
AblateEachHead = Annotated[bool, typer.Option(
    "--ablate-each-head", help="A sweep: the unablated model, then one job per head of "
    "--ablate-layers with that head ablated, over the same documents (ranked by "
    "`lensbatch ablations SWEEP`).")]
AblateLayers = Annotated[str | None, typer.Option(
    help="The layers whose heads --ablate-each-head ablates, comma-separated (default: "
         "every layer).")]
DEFAULT_STATS = ("mean", "norm")


def job_spec(spec: JobSpec, activations: str | None = None,
             stats: str | None = None) -> JobSpec:
    """`spec` with the --activations and --stats lists, checked before anything is
    stored: numbers, model name, statistics and hook names."""
    from dataclasses import replace

    from lensbatch.hooks import check_top_hooks, resolve_activations, split_list
    from lensbatch.models import model_context, model_heads, model_shape, model_source

    hooks = split_list(activations)
    chosen = split_list(stats) if stats is not None else (DEFAULT_STATS if hooks else ())
    spec = replace(spec, activations=hooks, stats=chosen).validate()
    model_source(spec.model)
    resolve_activations(spec.activations, model_shape(spec.model))
    heads = model_heads(spec.model)  # None for a hub model: the worker checks the heads
    if heads is not None:
        spec.check_heads(*heads)
    check_top_hooks(resolve_activations(spec.top_activations, model_shape(spec.model)))
    n_ctx = model_context(spec.model)  # None for a hub model: the worker checks it
    return spec if n_ctx is None else spec.check_stride(n_ctx)


def with_document_limit(settings: Settings, max_document_bytes: int | None) -> Settings:
    """`settings` with --max-document-bytes, when given, in place of the environment's."""
    from dataclasses import replace

    if max_document_bytes is None:
        return settings
    if max_document_bytes <= 0:
        raise JobSpecError(f"--max-document-bytes must be positive, got {max_document_bytes}")
    return replace(settings, max_document_bytes=max_document_bytes)


def given(ctx: typer.Context, name: str) -> bool:
    """Whether the parameter `name` was given (on the command line or in the
    environment), not left at its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
