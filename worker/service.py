"""What a task does, as plain functions: claim, evaluate, write results.

Celery's task (worker/tasks.py) and `lensbatch run` both call process_task, and tests
call it directly. The database work is lensbatch/store's transactions, each retried
with backoff (worker/dbretry.py); the tensor work is worker/engine's. A task claims its
documents together, counting one attempt each; a task that comes back with attempts
counted and no result (its process died, or a document failed) claims and evaluates
them one at a time, so that a document that kills the process is found and bounded
(lensbatch/store/attempts.py). Documents that fail are isolated (worker/isolate.py).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from functools import partial

from sqlalchemy import Engine
from transformer_lens.model_bridge import TransformerBridge

from lensbatch.errors import DeviceError, JobSpecError, ModelUnavailable
from lensbatch.jobspec import JobSpec
from lensbatch.settings import DEFAULT_CACHE_DIR
from lensbatch.store.attempts import Claimed, Claimer, claim_alone
from lensbatch.store.jobs import fail_job
from lensbatch.store.tasks import Outcome, PartialWrite, Written, claim, write_task
from worker.ablation import job_ablation
from worker.dbretry import retry_db
from worker.engine.ablation import HeadAblation, ablating, check_heads
from worker.engine.models import load_model, model_record, resolve_hooks, resolve_top_hooks
from worker.engine.probe import probe_model, run_probe
from worker.isolate import DocumentsFailed
from worker.topeval import evaluate_task

log = logging.getLogger("lensbatch.worker")


@dataclass(frozen=True)
class Runtime:
    """Where this process evaluates: its device and the name it writes into results."""

    device: str
    name: str = f"{socket.gethostname()}:{os.getpid()}"
    # Attempts per document before it is recorded as failed for good.
    max_attempts: int = 3
    cache_dir: str = DEFAULT_CACHE_DIR  # built-in models' tokenizer files

    @property
    def claimer(self) -> Claimer:
        return Claimer(self.name, self.max_attempts)


@dataclass(frozen=True)
class TaskDone:
    """What one attempt at a task committed (nothing, for a task redelivered after its
    results were written)."""

    written: int  # documents
    tokens: int  # their tokens

    def __add__(self, other: TaskDone) -> TaskDone:
        return TaskDone(self.written + other.written, self.tokens + other.tokens)


NOTHING = TaskDone(0, 0)


@dataclass
class TaskRun:
    """One task of a job, its model loaded: evaluates claimed documents and writes them."""

    engine: Engine
    job_id: str
    spec: JobSpec
    model: TransformerBridge
    runtime: Runtime
    probed: bool  # the job has its probe (this run writes it with its first documents)
    ablation: HeadAblation | None = None  # heads switched off for every number, probe too

    def write(self, claimed: Claimed) -> tuple[TaskDone, list[int]]:
        """Evaluate the claimed documents and commit them; return what was written and
        the failed documents with attempts left."""
        for seq, reason in claimed.given_up:
            log.warning("job %s document %d recorded failed: %s", self.job_id, seq, reason)
        if not claimed.todo:
            return NOTHING, []
        todo = claimed.todo
        while True:
            outcome, written = self._evaluate(todo)
            try:
                retry = retry_db(partial(write_task, self.engine, self.job_id, written,
                                         self.runtime.claimer), "writing results")
            except PartialWrite as exc:  # nothing written: the rest again, without the
                again = set(exc.seqs) | {seq for seq, _ in outcome.failed}  # others' results
                todo = [(seq, text) for seq, text in todo if seq in again]
                continue
            self.probed = True
            return TaskDone(len(outcome.done),
                            sum(e.metrics.n_tokens for _, e in outcome.done)), retry

    def _evaluate(self, todo: list[tuple[int, str]]) -> tuple[Outcome, Written]:
        spec, runtime = self.spec, self.runtime
        with ablating(self.model, self.ablation):
            outcome, tops = evaluate_task(self.model, spec, todo)
            # The probe is a per-head summary too: a behaviour-only job (--no-heads) has
            # none. An ablated model's probe is its own (not the model's cached one).
            probe = None if self.probed or not spec.heads else (
                run_probe(self.model) if self.ablation is not None else probe_model(
                    spec.model, runtime.device, spec.dtype, runtime.cache_dir))
        for seq, error in outcome.failed:
            log.warning("job %s document %d failed: %s", self.job_id, seq, error)
        return outcome, Written(outcome, probe, spec.model,
                                model_record(spec.model, runtime.device, spec.dtype,
                                             runtime.cache_dir),
                                per_document_heads=spec.head_scores == "document",
                                tops=tuple(tops),
                                top_covers=frozenset(seq for seq, _ in outcome.done),
                                top_k=spec.top_k)


@dataclass(frozen=True)
class Loaded:
    model: TransformerBridge
    ablation: HeadAblation | None


def _load(engine: Engine, job_id: str, spec: JobSpec, runtime: Runtime) -> Loaded | None:
    """The job's model and ablation, or None when it cannot run here (the job is then
    failed)."""
    try:
        model = load_model(spec.model, runtime.device, spec.dtype, runtime.cache_dir)
        resolve_hooks(model, spec.activations)  # a hook this model lacks fails the job
        resolve_top_hooks(model, spec.top_activations)
        spec.check_stride(int(model.cfg.n_ctx))  # a hub model's context is known only here
        check_heads(model, spec)  # so are its heads
        ablation = retry_db(lambda: job_ablation(engine, job_id, spec, model),
                            "reading the ablation's reference documents")
    except (ModelUnavailable, DeviceError, JobSpecError) as exc:  # e.g. bfloat16 on a CPU
        message = str(exc)
        retry_db(lambda: fail_job(engine, job_id, message), "failing the job")
        log.error("job %s failed: %s", job_id, message)
        return None
    return Loaded(model, ablation)


def process_task(engine: Engine, job_id: str, seqs: list[int], runtime: Runtime) -> TaskDone:
    """Evaluate the job's documents `seqs` that lack results; say what was written.

    Raises DocumentsFailed when some documents failed and have attempts left (after the
    others' results are committed), so that the caller retries the task.
    """
    claimed = retry_db(lambda: claim(engine, job_id, seqs, runtime.claimer), "claiming the task")
    if claimed.job is None or claimed.dropped:
        log.info("dropping task of job %s: job is %s", job_id,
                 "unknown" if claimed.job is None else claimed.job.status)
        return NOTHING
    if not claimed.todo and not claimed.returning:
        return NOTHING
    spec = JobSpec.from_json(claimed.job.settings)
    loaded = _load(engine, job_id, spec, runtime)
    if loaded is None:
        return NOTHING
    run = TaskRun(engine, job_id, spec, loaded.model, runtime, claimed.probed,
                  loaded.ablation)
    done, retry = run.write(Claimed(claimed.todo))
    if claimed.returning:
        log.info("job %s: task %d-%d came back; its %d documents one at a time", job_id,
                 seqs[0], seqs[-1], len(claimed.returning))
    for seq in claimed.returning:
        alone = partial(claim_alone, engine, job_id, seq, runtime.claimer)
        part, failed = run.write(retry_db(alone, "claiming a document"))
        done, retry = done + part, retry + failed
    if retry:
        raise DocumentsFailed(job_id, retry, done.written)
    return done


def process_task_settled(engine: Engine, job_id: str, seqs: list[int], runtime: Runtime) -> int:
    """process_task, retried in place until no document has attempts left (for `run`)."""
    written = 0
    for _ in range(runtime.max_attempts):
        try:
            return written + process_task(engine, job_id, seqs, runtime).written
        except DocumentsFailed as exc:
            written += exc.written
    return written
