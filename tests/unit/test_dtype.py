"""--dtype: bfloat16 is for accelerators; a CPU worker fails such a job, clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from lensbatch.errors import DeviceError
from lensbatch.jobspec import JobSpec
from lensbatch.store.db import ensure_schema
from lensbatch.store.jobs import create_job
from lensbatch.store.queries import job_summary
from worker.engine.device import pick_dtype
from worker.service import Runtime, process_task


def test_bfloat16_on_cpu_is_refused() -> None:
    import torch

    with pytest.raises(DeviceError, match="bfloat16"):
        pick_dtype("bfloat16", torch.device("cpu"))


def test_cpu_worker_fails_a_bfloat16_job(tiny_checkpoint: str, tmp_path: Path,
                                         sqlite_url: str) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "The lamp is lit."}\n')
    engine = ensure_schema(sqlite_url)
    job = create_job(engine, str(corpus), JobSpec(model=tiny_checkpoint, dtype="bfloat16"))
    assert process_task(engine, job.job_id, job.tasks[0], Runtime(device="cpu")).written == 0
    summary = job_summary(engine, job.job_id)
    assert summary.status == "failed"
    assert summary.error is not None and "bfloat16" in summary.error
