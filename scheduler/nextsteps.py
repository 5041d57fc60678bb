"""The commands `run` ends with, written so that they can be pasted into the same shell:
the program as it was started when `lensbatch` is not on PATH (`.venv/bin/lensbatch`),
and the same `--db` when one was given."""

from __future__ import annotations

import os
import shlex
import shutil
import sys

from lensbatch.settings import mask_url


def program(argv0: str | None = None) -> str:
    """`lensbatch` when that name on PATH is this program; else the path it was started
    by, relative to the current directory when it lies below it."""
    started = sys.argv[0] if argv0 is None else argv0
    if os.path.basename(started) != "lensbatch" or not os.path.isfile(started):
        return "lensbatch"
    found = shutil.which("lensbatch")
    if found is not None and os.path.samefile(found, started):
        return "lensbatch"
    path = os.path.abspath(started)
    relative = os.path.relpath(path)
    return shlex.quote(path if relative.startswith("..") else relative)


def prefix(db_option: str | None) -> str:
    """The program, and `--db URL` when the invocation was given one (its password, if
    any, masked: never printed)."""
    shown = program()
    return shown if db_option is None else f"{shown} --db {shlex.quote(mask_url(db_option))}"


def job_lines(job_id: str, has_heads: bool, db_option: str | None) -> list[str]:
    """What to run next for one job; the last line ends with its id."""
    command = prefix(db_option)
    lines = [f"jobs:    {command} jobs",
             f"results: {command} results {job_id}",
             f"report:  {command} report {job_id}"]
    if has_heads:
        lines.append(f"heads:   {command} heads {job_id}")
    return lines


def sweep_lines(sweep_id: str, db_option: str | None) -> list[str]:
    """What to run next for a sweep; the last line is the compare command."""
    command = prefix(db_option)
    return [f"jobs:    {command} jobs",
            f"report:  {command} report {sweep_id}",
            f"compare: {command} compare {sweep_id}"]
