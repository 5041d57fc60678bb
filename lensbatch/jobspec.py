"""Job options: everything a worker needs to evaluate a job, stored with the job as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lensbatch.errors import JobSpecError
from lensbatch.hooks import STATS

DTYPES = ("float32", "bfloat16", "float16")
PADDING_SIDES = ("right", "left")
# How documents longer than the context are cut (worker/engine/windows.py): sliding
# windows of `stride`, or lm-evaluation-harness's disjoint rolling windows.
WINDOWS = ("sliding", "disjoint")
# The queues workers consume: `--queues cpu` or `--queues gpu` (or both).
QUEUES = ("cpu", "gpu")
MAX_MODEL_CHARS = 255  # the jobs.model column's length
# What a job keeps of the per-head scores: job-level totals only, or also every
# document's values (lensbatch/store/packing.py).
HEAD_SCORE_STORAGE = ("job", "document")
# What an ablated head's output (hook_z) is replaced with: zeros, or its mean over the
# positions of the job's first documents (worker/engine/ablation.py).
ABLATIONS = ("zero", "mean")
Head = tuple[int, int]  # (layer, head)
# Activations kept per neuron by --top-activations (lensbatch/top.py), by default and at most.
DEFAULT_TOP_K = 20
MAX_TOP_K = 1000


@dataclass(frozen=True)
class JobSpec:
    model: str = "gpt2-small-random"
    # Prepend BOS to every document: None does as TransformerLens does for the model
    # (its bridge's cfg.default_prepend_bos); True or False (--bos, --no-bos) overrides.
    prepend_bos: bool | None = None
    # Tokens (batch size x padded length) per forward pass; None lets each worker pick
    # for its device (worker.engine.batching.batch_budget).
    batch_tokens: int | None = None
    # Approximate tokens per queued task (estimated at submit from characters).
    task_tokens: int = 16384
    # Window stride for documents longer than the context; 0 means half the context.
    stride: int = 0
    windows: str = "sliding"
    # Per-head attention summaries (and the job's induction probe); without them a job
    # keeps the behaviour only: loss, accuracy, induction hits.
    heads: bool = True
    dtype: str = "float32"
    padding_side: str = "right"
    queue: str = "cpu"
    # Hooks to summarise, as the user named them (shorthand is expanded per model), and
    # the statistics to keep for each (lensbatch.hooks.STATS).
    activations: tuple[str, ...] = field(default_factory=tuple)
    stats: tuple[str, ...] = field(default_factory=tuple)
    # "job": per-head sums over documents (what `heads` and the report show); "document":
    # also each document's per-head scores (`heads --per-document`).
    head_scores: str = "job"
    # Heads whose output (blocks.L.attn.hook_z) is replaced while every number is
    # measured, and with what (ABLATIONS).
    ablate: tuple[Head, ...] = field(default_factory=tuple)
    ablation: str = "zero"
    # Hooks whose neurons get their top_k highest activations over the corpus, with
    # document and position, a histogram and the share above zero (lensbatch/top.py).
    top_activations: tuple[str, ...] = field(default_factory=tuple)
    top_k: int = DEFAULT_TOP_K

    def validate(self) -> JobSpec:
        if not self.model.strip():
            raise JobSpecError("model name is empty")
        if len(self.model) > MAX_MODEL_CHARS:
            raise JobSpecError(f"model name is {len(self.model)} characters, over the limit "
                               f"of {MAX_MODEL_CHARS}")
        if self.batch_tokens is not None and self.batch_tokens <= 0:
            raise JobSpecError(f"--batch-tokens must be positive, got {self.batch_tokens}")
        if self.task_tokens <= 0:
            raise JobSpecError(f"--task-tokens must be positive, got {self.task_tokens}")
        if self.stride < 0:
            raise JobSpecError(f"--stride must be zero or positive, got {self.stride}")
        if self.windows not in WINDOWS:
            raise JobSpecError(f"--windows must be one of {', '.join(WINDOWS)}, "
                               f"got {self.windows}")
        if self.windows == "disjoint" and self.stride:
            raise JobSpecError("--stride applies to sliding windows, not --windows disjoint")
        if self.dtype not in DTYPES:
            raise JobSpecError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype}")
        if self.padding_side not in PADDING_SIDES:
            raise JobSpecError(f"padding side must be right or left, got {self.padding_side}")
        if self.queue not in QUEUES:
            raise JobSpecError(f"--queue must be one of {', '.join(QUEUES)}, got {self.queue}")
        if self.head_scores not in HEAD_SCORE_STORAGE:
            raise JobSpecError(f"--head-scores must be one of {', '.join(HEAD_SCORE_STORAGE)}, "
                               f"got {self.head_scores}")
        if self.ablation not in ABLATIONS:
            raise JobSpecError(f"--ablation must be one of {', '.join(ABLATIONS)}, "
                               f"got {self.ablation}")
        if len(set(self.ablate)) != len(self.ablate):
            raise JobSpecError("--ablate names a head twice")
        if any(layer < 0 or head < 0 for layer, head in self.ablate):
            raise JobSpecError("--ablate takes layer and head numbers from 0")
        for stat in self.stats:
            if stat not in STATS:
                raise JobSpecError(f"unknown statistic {stat!r}; valid: {', '.join(STATS)}")
        if self.stats and not self.activations:
            raise JobSpecError("--stats needs --activations (the hooks to summarise)")
        if self.activations and not self.stats:
            raise JobSpecError(f"--activations needs --stats (any of {', '.join(STATS)})")
        if not 1 <= self.top_k <= MAX_TOP_K:
            raise JobSpecError(f"--top-k must be 1 to {MAX_TOP_K}, got {self.top_k}")
        return self

    def check_stride(self, n_ctx: int) -> JobSpec:
        """The stride against the model's context: windows start at most n_ctx - 1
        tokens apart (worker/engine/windows.py). 0 (half the context) always fits."""
        if self.stride > n_ctx - 1:
            raise JobSpecError(
                f"--stride {self.stride} is too large for {self.model}: its context is "
                f"{n_ctx} tokens (use 1 to {n_ctx - 1}, or 0 for half the context)")
        return self

    def check_heads(self, n_layers: int, n_heads: int) -> JobSpec:
        """The ablated heads against the model's layers and heads per layer."""
        for layer, head in self.ablate:
            if layer >= n_layers:
                raise JobSpecError(
                    f"--ablate {layer}.{head}: {self.model} has {n_layers} layers "
                    f"(0 to {n_layers - 1})")
            if head >= n_heads:
                raise JobSpecError(
                    f"--ablate {layer}.{head}: {self.model} has {n_heads} heads per layer "
                    f"(0 to {n_heads - 1})")
        return self

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["activations"] = list(self.activations)
        data["stats"] = list(self.stats)
        data["ablate"] = [list(head) for head in self.ablate]
        data["top_activations"] = list(self.top_activations)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("activations", "stats", "top_activations"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        if "ablate" in kwargs:
            kwargs["ablate"] = tuple((int(layer), int(head)) for layer, head in kwargs["ablate"])
        return cls(**kwargs)
