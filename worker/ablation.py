"""The head ablation a job runs with, worked out once per process and job: zeros, or
each ablated head's mean output over the job's first documents (read from the store,
tokenized as the job tokenizes, each run alone), so that every worker replaces the
head with the same values."""

from __future__ import annotations

import functools

from sqlalchemy import Engine
from transformer_lens.model_bridge import TransformerBridge

from lensbatch.ablation import REFERENCE_DOCUMENTS
from lensbatch.jobspec import Head, JobSpec
from lensbatch.store.ablations import reference_texts
from worker.engine.ablation import HeadAblation, reference_means
from worker.engine.evaluate import tokenize


@functools.lru_cache(maxsize=8)
def _mean_ablation(engine: Engine, job_id: str, model: TransformerBridge,
                   heads: tuple[Head, ...], prepend_bos: bool | None) -> HeadAblation:
    texts = reference_texts(engine, job_id, REFERENCE_DOCUMENTS)
    means = reference_means(model, tokenize(model, texts, prepend_bos), heads)
    return HeadAblation(heads, means)


def job_ablation(engine: Engine, job_id: str, spec: JobSpec,
                 model: TransformerBridge) -> HeadAblation | None:
    """None for a job that ablates nothing."""
    if not spec.ablate:
        return None
    if spec.ablation == "zero":
        return HeadAblation(spec.ablate)
    return _mean_ablation(engine, job_id, model, spec.ablate, spec.prepend_bos)
