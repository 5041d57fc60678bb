"""Scoring a stored document again, token by token, with its job's model and settings
(`lensbatch tokens`, and the report's hardest documents)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import Engine

from lensbatch.jobspec import JobSpec
from lensbatch.tokens import TokenScore


def job_model(spec: JobSpec, device: str, cache_dir: str) -> tuple[Any, JobSpec]:
    """The job's model on `device` and the spec it is run with there: the job's dtype,
    or float32 on a CPU for a job that ran in half precision on an accelerator."""
    from worker.engine.device import pick_device
    from worker.engine.models import load_model

    torch_device = pick_device(device)
    if torch_device.type == "cpu" and spec.dtype != "float32":
        spec = replace(spec, dtype="float32")
    return load_model(spec.model, str(torch_device), spec.dtype, cache_dir), spec


def job_ablation(engine: Engine, job_id: str, spec: JobSpec, model: Any) -> Any:
    """The heads the job ablated, replaced as its workers replaced them (None for none)."""
    from worker.ablation import job_ablation as worked_out

    return worked_out(engine, job_id, spec, model)


def score_text(model: Any, text: str, spec: JobSpec, ablation: Any = None) -> list[TokenScore]:
    """Every token of `text` as the job tokenized it (BOS prepended if it was), with the
    job's `ablation` (job_ablation) on."""
    from worker.engine.ablation import ablating
    from worker.engine.evaluate import tokenize
    from worker.engine.token_view import score_tokens

    with ablating(model, ablation):
        return score_tokens(model, tokenize(model, [text], spec.prepend_bos)[0], spec)
