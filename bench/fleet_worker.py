"""The consumers of `python -m bench.fleet`: the real task path with the model replaced.

`celery -A bench.fleet_worker worker -P threads -c N` runs N consumers in one process.
Each task claims its documents and writes them with the store's real functions
(lensbatch/store/tasks.py `claim` and `write_task`, inside worker/dbretry's retries) and
keeps the workers table as a real worker does; instead of a model it sleeps a fixed
time (FLEET_TASK_SECONDS) and returns rows of GPT-2 small's sizes: 12 x 12 heads, the
metrics, FLEET_HITS induction hits per document, the probe with the job's first task.

Each task appends one line to FLEET_LOG: start, claim, write and end times.
"""

from __future__ import annotations

import os
import random
import threading
import time
from functools import partial
from typing import Any

from sqlalchemy import create_engine

from lensbatch.evaluation import DocEvaluation, DocMetrics, InductionHit, ProbeResult
from lensbatch.metrics import HEAD_SCORE_NAMES
from lensbatch.queue import EVALUATE_TASK, make_celery
from lensbatch.settings import Settings
from lensbatch.store.attempts import Claimer, claim_alone
from lensbatch.store.tasks import Outcome, Written, claim, write_task
from lensbatch.store.workers import WorkerInfo, heartbeat, register, set_current_task
from worker.dbretry import retry_db

SETTINGS = Settings.from_env()
TASK_SECONDS = float(os.environ.get("FLEET_TASK_SECONDS", "2.0"))
HITS = int(os.environ.get("FLEET_HITS", "25"))
THREADS = int(os.environ.get("FLEET_THREADS", "16"))
LOG = os.environ.get("FLEET_LOG", "fleet.log")
N_LAYERS = N_HEADS = 12

app = make_celery(SETTINGS)
# One connection per consumer thread, as one per pool process in a real worker.
engine = create_engine(SETTINGS.database_url, pool_size=THREADS + 2, max_overflow=4,
                       pool_pre_ping=True)
_log_lock = threading.Lock()
_names = threading.local()
_hostname = f"fleet-{os.getpid()}"


def evaluation(rng: random.Random) -> DocEvaluation:
    """One document's numbers, of the sizes GPT-2 small gives a ~500-token document."""
    n_tokens = 400 + rng.randrange(200)
    n_correct = int(n_tokens * 0.35)
    metrics = DocMetrics(n_tokens, n_tokens - 1, 3.2 * (n_tokens - 1), 3.2, n_correct,
                         n_correct / (n_tokens - 1), 2 * HITS, HITS, HITS // 3, 1)
    heads: dict[str, list[list[float | None]]] = {
        name: [[rng.random() for _ in range(N_HEADS)] for _ in range(N_LAYERS)]
        for name in HEAD_SCORE_NAMES}
    hits = [InductionHit(position, 0, rng.random() < 0.3)
            for position in sorted(rng.sample(range(1, n_tokens), HITS))]
    return DocEvaluation(metrics, heads, {}, hits)


def probe(rng: random.Random) -> ProbeResult:
    grid = [[rng.random() for _ in range(N_HEADS)] for _ in range(N_LAYERS)]
    return ProbeResult(100, 11.0, 0.4, grid, grid)


def _worker_name() -> str:
    """This consumer thread's row in the workers table (registered on first use)."""
    if not hasattr(_names, "name"):
        _names.name = f"{_hostname}:{threading.get_ident()}"
        register(engine, WorkerInfo(_names.name, _hostname, "stand-in", "cpu"))
    return str(_names.name)


def _heartbeats() -> None:
    """Every consumer's heartbeat, every 5 s, as a real worker's threads keep them."""
    while True:
        time.sleep(5)
        for name in list(_registered):
            heartbeat(engine, name)


_registered: set[str] = set()
threading.Thread(target=_heartbeats, daemon=True).start()


# The stand-in's outputs, made once: a task returns these rows (by seq), so that the
# consumers' CPU is the task path's, not random numbers'.
_rng = random.Random(0)
POOL = [evaluation(_rng) for _ in range(64)]
PROBE = probe(_rng)


@app.task(name=EVALUATE_TASK, acks_late=True)
def evaluate(job_id: str, seqs: list[int]) -> int:
    started = time.time()
    name = _worker_name()
    _registered.add(name)
    set_current_task(engine, name, f"{job_id}:{seqs[0]}-{seqs[-1]}")
    claimer = Claimer(name, 3)
    claimed = retry_db(lambda: claim(engine, job_id, list(seqs), claimer), "reading the task")
    todo = list(claimed.todo)
    for seq in claimed.returning:  # a redelivered task: its documents one at a time
        todo += retry_db(partial(claim_alone, engine, job_id, seq, claimer),
                         "claiming a document").todo
    claimed_at = time.time()
    if claimed.dropped or not todo:
        set_current_task(engine, name, None)
        return 0
    time.sleep(TASK_SECONDS)  # the model's forward passes
    outcome = Outcome([(seq, POOL[seq % len(POOL)]) for seq, _ in todo], [])
    card: dict[str, Any] = {"name": "stand-in", "source": "builtin", "config": {},
                            "weight_shapes": {}}
    written = Written(outcome, None if claimed.probed else PROBE, "stand-in", card)
    evaluated_at = time.time()
    retry_db(lambda: write_task(engine, job_id, written, claimer), "writing results")
    written_at = time.time()
    set_current_task(engine, name, None, len(outcome.done))
    with _log_lock, open(LOG, "a", encoding="utf-8") as out:
        out.write(f"{started:.4f} {claimed_at:.4f} {evaluated_at:.4f} {written_at:.4f} "
                  f"{time.time():.4f} {len(outcome.done)}\n")
    return len(outcome.done)
