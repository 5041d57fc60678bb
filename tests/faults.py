"""Helpers for the fault-injection tests: worker processes we kill by pid, database
probes that survive a database restart, and the summary table of recoveries."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from lensbatch.store import schema
from tests.cli import LENSBATCH

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
SUMMARY = REPO / "bench-results" / "fault-injection.md"
WORDS = ("the quick brown fox jumps over the lazy dog while researchers count induction "
         "heads in small transformers and attention patterns repeat").split()


def wait_for(condition: Callable[[], bool], timeout: float, what: str,
             interval: float = 0.1) -> float:
    """Poll until `condition` holds; return the seconds it took. Raise TimeoutError after
    `timeout` seconds, naming `what` was awaited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached after {timeout}s")


POISON_WORD = " banana"  # one GPT-2 token; its embedding is NaN in the poisoned model


def make_poisoned_checkpoint(path: Path) -> str:
    """A tiny GPT-2 whose input embedding of one token is NaN: every document that
    contains the token yields NaN loss, every other document is unaffected (untied
    unembedding, causal attention)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from worker.engine.tokenizer import gpt2_tokenizer

    tokenizer = gpt2_tokenizer()
    (token,) = tokenizer(POISON_WORD, add_special_tokens=False)["input_ids"]
    torch.manual_seed(1234)
    config = GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=64,
                        tie_word_embeddings=False)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        model.transformer.wte.weight[token] = float("nan")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def write_corpus(path: Path, n_docs: int, words_per_doc: int = 36, prefix: str = "d") -> Path:
    """Short documents (about 45 tokens: one window each for the tiny model)."""
    lines = []
    for i in range(n_docs):
        text = " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(words_per_doc))
        lines.append(json.dumps({"id": f"{prefix}{i}", "text": f"Document {i}: {text}."}))
    path.write_text("\n".join(lines) + "\n")
    return path


class Worker:
    """A `lensbatch worker` in its own process group, so SIGKILL takes its pool too."""

    def __init__(self, env: dict[str, str], log: Path, queues: str = "cpu") -> None:
        self.log = log
        self.process = subprocess.Popen(
            [LENSBATCH, "worker", "--queues", queues, "--concurrency", "1", "--device", "cpu"],
            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env},
            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, sig: signal.Signals) -> None:
        os.killpg(self.pid, sig)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def finished_tasks(self, job_id: str) -> list[tuple[str, int]]:
        """(seqs span, documents written) of each task of `job_id` this worker finished,
        processed or dropped, from the one log line it writes per task."""
        found = re.findall(rf"task job={job_id} seqs=(\S+) documents=\d+ written=(\d+) ",
                           self.text())
        return [(span, int(written)) for span, written in found]


class Probe:
    """Reads the database, waiting out a database that is restarting."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, pool_pre_ping=True)

    def _read(self, read: Callable[[Connection], T]) -> T:
        for _ in range(60):
            try:
                with self.engine.connect() as connection:
                    return read(connection)
            except SQLAlchemyError:
                time.sleep(0.5)
        raise TimeoutError("database unreachable for 30 s")

    def status(self, job_id: str) -> str:
        return str(self._read(lambda c: c.scalar(
            select(schema.jobs.c.status).where(schema.jobs.c.id == job_id))))

    def result_seqs(self, job_id: str) -> list[int]:
        r = schema.results
        return list(self._read(lambda c: c.scalars(
            select(r.c.seq).where(r.c.job_id == job_id).order_by(r.c.seq)).all()))

    def results_by(self, job_id: str) -> dict[int, str]:
        r = schema.results
        rows = self._read(lambda c: c.execute(
            select(r.c.seq, r.c.worker).where(r.c.job_id == job_id)).all())
        return {seq: worker for seq, worker in rows}

    def claimed(self, job_id: str, seqs: list[int]) -> bool:
        """Whether a task has claimed every one of `seqs` (an attempt is counted)."""
        jd = schema.job_documents
        counts = self._read(lambda c: c.scalars(
            select(jd.c.attempts).where(jd.c.job_id == job_id, jd.c.seq.in_(seqs))).all())
        return len(counts) == len(seqs) and all(n > 0 for n in counts)

    def failures(self, job_id: str) -> list[tuple[int, int, bool, str]]:
        """(seq, attempts, final, error) of the job's document_failures rows."""
        f = schema.document_failures
        rows = self._read(lambda c: c.execute(
            select(f.c.seq, f.c.attempts, f.c.final, f.c.error).where(
                f.c.job_id == job_id).order_by(f.c.seq)).all())
        return [(row.seq, row.attempts, row.final, row.error) for row in rows]

    def workers(self) -> list[dict[str, object]]:
        rows = self._read(lambda c: c.execute(select(schema.workers)).all())
        return [dict(row._mapping) for row in rows]

    def n_tasks(self, job_id: str) -> int:
        """How many task messages the job was planned (and enqueued) as."""
        return int(self._read(lambda c: c.scalar(
            select(schema.jobs.c.n_tasks).where(schema.jobs.c.id == job_id))) or 0)

    def count(self, table: Table) -> int:
        return int(self._read(lambda c: c.scalar(
            select(func.count()).select_from(table))) or 0)

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll until `condition`; return the seconds it took."""
        return wait_for(condition, timeout, what)

    def wait_done(self, job_id: str, timeout: float = 120) -> float:
        return self.wait(lambda: self.status(job_id) in ("done", "failed", "cancelled"),
                         timeout, f"job {job_id} finished")

    def pool_name(self, worker: Worker, timeout: float = 90) -> str:
        """The workers-table name (hostname:pid) of `worker`'s pool process."""
        found: list[str] = []

        def registered() -> bool:
            for row in self.workers():
                pid = int(str(row["name"]).rsplit(":", 1)[1])
                try:
                    if os.getpgid(pid) == worker.pid:
                        found.append(str(row["name"]))
                        return True
                except ProcessLookupError:
                    continue
            return False

        self.wait(registered, timeout, "worker registered")
        return found[0]

    def current_task(self, name: str) -> str | None:
        for row in self.workers():
            if row["name"] == name:
                return str(row["current_task"]) if row["current_task"] else None
        return None

    def close(self) -> None:
        self.engine.dispose()


@dataclass
class FaultRow:
    fault: str
    documents: int
    results: int
    duplicated: int
    lost: int
    recovery_s: float
    note: str = ""


@dataclass
class FaultTable:
    rows: list[FaultRow] = field(default_factory=list)

    def add(self, row: FaultRow) -> None:
        self.rows.append(row)

    def render(self) -> str:
        lines = ["| fault injected | documents | results | duplicated | lost | recovery (s) | "
                 "note |", "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        lines += [f"| {r.fault} | {r.documents} | {r.results} | {r.duplicated} | {r.lost} | "
                  f"{r.recovery_s:.1f} | {r.note} |" for r in self.rows]
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        if not self.rows:
            return
        SUMMARY.parent.mkdir(exist_ok=True)
        SUMMARY.write_text(self.render())
        print("\n" + self.render())


def duplicates_and_lost(n_documents: int, seqs: list[int]) -> tuple[int, int]:
    """Duplicated rows (impossible under the primary key, counted anyway) and missing seqs."""
    return len(seqs) - len(set(seqs)), len(set(range(n_documents)) - set(seqs))


FAULTS = FaultTable()
