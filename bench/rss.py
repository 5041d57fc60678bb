"""`python -m bench.rss COMMAND...`: run COMMAND and print its peak RSS in MB.

A small stdlib-only parent: a child forked from the benchmark process itself would
report the benchmark's own memory (ru_maxrss counts the pages held before exec).
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    pid = os.fork()
    if pid == 0:
        os.execvp(sys.argv[1], sys.argv[1:])
    _, status, usage = os.wait4(pid, 0)
    print(f"peak_rss_mb={usage.ru_maxrss / 1024:.1f}", file=sys.stderr)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
