"""`python -m bench.poolstart`: how long a pool process's start (Celery's
worker_process_init, which a replacement process must finish within 4 s) takes now,
and how long it took when registering imported torch and transformer_lens.

Each figure is a fresh interpreter that imports worker.tasks (as the worker's parent
has, before it forks) and times the start handler; the database is a throwaway SQLite.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
from lensbatch.settings import Settings
from worker.tasks import PoolProcess
process = PoolProcess(Settings(database_url=sys.argv[1]), "cpu", "cpu")
started = time.perf_counter()
process.register()
now = time.perf_counter() - started
started = time.perf_counter()
process.runtime  # what registering used to do first: torch, transformer_lens, the device
before = now + time.perf_counter() - started
print(json.dumps({"now": now, "before": before}))
"""


def measure(url: str) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", CHILD, url], capture_output=True,
                          text=True, check=True)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lensbatch-poolstart-") as tmp:
        runs = [measure(f"sqlite:///{Path(tmp) / f'w{i}.db'}") for i in range(3)]
    print("| pool-process start (worker_process_init) | run 1 | run 2 | run 3 |")
    print("| --- | ---: | ---: | ---: |")
    for key, label in (("now", "now: heartbeat thread started"),
                       ("before", "before: torch, transformer_lens, device")):
        print(f"| {label} | " + " | ".join(f"{r[key]:.3f} s" for r in runs) + " |")


if __name__ == "__main__":
    main()
