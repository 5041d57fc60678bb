"""Progress: `status --watch` as plain lines when stdout is not a terminal, and the
numbers it shows (documents, tokens, rate, ETA, failed documents, active workers)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import pytest

from lensbatch.jobspec import JobSpec
from lensbatch.store import schema
from lensbatch.store.db import ensure_schema
from lensbatch.store.jobs import create_job
from lensbatch.store.progress import Snapshot, read_snapshot
from scheduler.progress import ProgressView, Rate, plain_line
from tests.cli import LENSBATCH
from tests.faults import wait_for
from tests.jobdb import DOCS, write_corpus

# A bare environment for the CLI subprocesses (no terminal settings), keeping the
# PYTHONPATH that chooses the code under test.
BARE_ENV = {"PATH": "/usr/bin:/bin", **{k: v for k, v in os.environ.items()
                                        if k == "PYTHONPATH"}}

LINE = re.compile(
    r"^job=(\w+) status=(\w+) documents=(\d+)/(\d+) tokens=(\d+)/(~?)(\d+) "
    r"tokens_per_s=([\d.]+|-) eta=([\d:]+|-) failed=(\d+) workers=(\d+)$")


class Lines:
    """What a subprocess writes to a pipe, collected line by line by a thread as it comes."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.lines.append(line.rstrip("\n"))

    def text(self, timeout: float = 60) -> str:
        """Everything, once the pipe is closed."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "pipe still open"
        return "".join(line + "\n" for line in self.lines)

    def docs_done(self) -> list[int]:
        """The documents count of each progress line so far."""
        return [int(m.group(3)) for line in list(self.lines) if (m := LINE.match(line))]

    def wait_shown(self, docs_done: int, timeout: float = 60) -> None:
        """Until a progress line shows `docs_done` documents done."""
        wait_for(lambda: docs_done in self.docs_done(), timeout,
                 f"a progress line with documents={docs_done}")


def snap(docs: int, tokens: int, at: float, status: str = "running") -> Snapshot:
    return Snapshot("j", status, docs, 10, tokens, 1000, failed=1, workers=2, at=at)


def test_rate_and_eta() -> None:
    rate = Rate()
    rate.update(snap(0, 0, at=100.0))
    assert plain_line(snap(0, 0, 100.0), rate).endswith("tokens_per_s=- eta=- failed=1 "
                                                         "workers=2")
    rate.update(snap(5, 400, at=102.0))  # 200 tokens/s, 600 to go -> 3 s
    line = plain_line(snap(5, 400, 102.0), rate)
    assert "documents=5/10 tokens=400/~1000 tokens_per_s=200.0 eta=0:03" in line


def test_view_writes_plain_lines_off_terminal() -> None:
    out = io.StringIO()
    with ProgressView(out, terminal=False) as view:
        view.show(snap(1, 10, 1.0))
        view.show(snap(2, 20, 2.0, status="done"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(LINE.match(line) for line in lines)
    assert "\x1b[" not in out.getvalue()  # no terminal control codes in logs
    assert "tokens=20/1000" in lines[1]  # no ~ once the job is finished


def test_status_watch_follows_a_job_in_plain_lines(tmp_path: Path, tiny_checkpoint: str) -> None:
    """A real `lensbatch status --watch` on a pipe, while this process evaluates the job
    task by task; a live worker row and a failed document are counted."""
    from worker.service import Runtime, process_task

    url = f"sqlite:///{tmp_path / 'lensbatch.db'}"
    engine = ensure_schema(url)
    job = create_job(engine, str(write_corpus(tmp_path / "c.jsonl")),
                     JobSpec(model=tiny_checkpoint, task_tokens=1).validate())
    assert len(job.tasks) == len(DOCS)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(schema.workers.insert(), [
            {"name": name, "hostname": "h", "device": "cpu", "queues": "cpu",
             "documents_done": 0, "online": True, "started_at": now, "heartbeat_at": beat}
            for name, beat in (("fresh", now), ("stale", now - timedelta(hours=1)))])
        # The last document failed for good: it is never evaluated and counts as failed.
        connection.execute(schema.document_failures.insert().values(
            job_id=job.job_id, seq=len(DOCS) - 1, attempts=3, final=True, error="x",
            updated_at=now))
    watcher = subprocess.Popen(
        [LENSBATCH, "status", job.job_id, "--watch", "--interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"LENSBATCH_DATABASE_URL": url, "HF_HUB_OFFLINE": "1", **BARE_ENV})
    assert watcher.stdout is not None and watcher.stderr is not None
    stdout, stderr = Lines(watcher.stdout), Lines(watcher.stderr)
    try:
        # Each reading is taken before the next change: first the job untouched, then
        # after each task, the watcher shows that task's count before the next one runs.
        stdout.wait_shown(0)
        for seqs in job.tasks:
            process_task(engine, job.job_id, seqs, Runtime(device="cpu"))
            stdout.wait_shown(read_snapshot(engine, job.job_id).docs_done)
        watcher.wait(timeout=60)
        out, err = stdout.text(), stderr.text()
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    matches = [LINE.match(line) for line in out.splitlines() if line.startswith("job=")]
    assert matches and all(matches), out
    docs_done = [int(m.group(3)) for m in matches if m]
    assert docs_done[0] == 0 and docs_done[-1] == len(DOCS) - 1
    assert docs_done == sorted(docs_done) and len(set(docs_done)) >= 3
    assert set(docs_done) == set(range(len(DOCS)))  # a reading between every two tasks
    last = matches[-1]
    assert last is not None
    assert last.group(2) == "done" and last.group(6) == ""  # exact total once done
    assert last.group(5) == last.group(7) == str(read_snapshot(engine, job.job_id).tokens_done)
    assert last.group(8) != "-"  # a rate was measured
    assert (last.group(10), last.group(11)) == ("1", "1")  # one failure, one fresh worker
    assert "documents" in out.split("job=")[-1]  # the summary table follows the lines


@pytest.mark.parametrize("args", [["status", "nope", "--watch"]])
def test_watch_unknown_job(args: list[str], tmp_path: Path) -> None:
    env = {"LENSBATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", **BARE_ENV}
    made = subprocess.run([LENSBATCH, "db", "upgrade"], capture_output=True, env=env)
    assert made.returncode == 0
    result = subprocess.run([LENSBATCH, *args], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "no job or sweep 'nope'" in result.stderr
