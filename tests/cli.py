"""Running the real `lensbatch` console script in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LENSBATCH = str(Path(sys.executable).parent / "lensbatch")


def lensbatch(*args: str, env: dict[str, str] | None = None, cwd: str | None = None,
              stdin: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([LENSBATCH, *args], env=full_env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout,
                          input=stdin.decode() if stdin is not None else None)
