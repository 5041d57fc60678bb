"""Code shared by the scheduler and the workers: settings, schema, job options, queue;
and the Python API, `lensbatch.open()` (lensbatch/api.py, docs/api.md).

Nothing in this package imports torch or transformer_lens at import time, so the CLI
starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lensbatch.api import Database

__version__ = "0.1.0"
__all__ = ["Database", "__version__", "open"]


def open(url: str | None = None) -> Database:
    """The lensbatch database at `url` (a SQLAlchemy URL), or the CLI's: the
    LENSBATCH_DATABASE_URL variable, else sqlite:///lensbatch.db in the current
    directory. A missing SQLite file is an error, never created. See docs/api.md."""
    from lensbatch.api import open_database

    return open_database(url)
