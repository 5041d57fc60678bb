"""Running the real `lensbatch` console script in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Table, create_engine, func, select

LENSBATCH = str(Path(sys.executable).parent / "lensbatch")


def lensbatch(*args: str, env: dict[str, str] | None = None, cwd: str | None = None,
              stdin: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([LENSBATCH, *args], env=full_env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout,
                          input=stdin.decode() if stdin is not None else None)


def user_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The one stderr line of a user mistake (exit 2, no traceback), checked to contain
    each fragment; returned for further checks."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lensbatch: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def count_rows(url: str, table: Table) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(table)) or 0)
    finally:
        engine.dispose()


def run_without_torch(code: str) -> str:
    """Run `code` in a fresh interpreter, check it imported neither torch nor
    transformer_lens, and return its standard output."""
    code += ("\nimport sys\n"
             "assert 'torch' not in sys.modules, 'torch imported'\n"
             "assert 'transformer_lens' not in sys.modules, 'transformer_lens imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout
