"""One typed settings object, read from the environment (prefix LENSBATCH_).

Each process builds it once, at its entry point (the CLI's main, the worker, Alembic's
env.py run by hand), and passes it down; nothing else reads LENSBATCH_ variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from urllib.parse import urlsplit, urlunsplit

from lensbatch.corpus import DEFAULT_MAX_DOCUMENT_BYTES
from lensbatch.errors import SettingsError

DEFAULT_DATABASE_URL = "sqlite:///lensbatch.db"
DEFAULT_BROKER_URL = "redis://localhost:6379/0"
# Where built-in models and tokenizer files are cached between runs.
DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "lensbatch")


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str = DEFAULT_BROKER_URL
    # Seconds a delivered but unacknowledged task stays invisible in Redis before it is
    # handed to another worker. It must exceed the longest task; shorter means a killed
    # worker's task comes back sooner (see README, "Reliability").
    visibility_timeout: int = 600
    # How often (seconds) each worker's consumer looks for expired unacknowledged
    # messages and puts them back on their queue.
    restore_interval: int = 30
    # Attempts per document before it is recorded as failed (poison input).
    max_attempts: int = 3
    # Largest document `submit` and `run` accept, in bytes of UTF-8 (--max-document-bytes).
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    device: str = "auto"
    cache_dir: str = DEFAULT_CACHE_DIR

    def __repr__(self) -> str:
        """Every field, with the passwords in the URLs masked: safe to log."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["database_url"] = mask_url(self.database_url)
        shown["broker_url"] = mask_url(self.broker_url)
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from LENSBATCH_ variables; SettingsError (one line) for a number that
        is not one."""
        env = os.environ if environ is None else environ
        base = cls()
        return replace(
            base,
            database_url=env.get("LENSBATCH_DATABASE_URL", base.database_url),
            broker_url=env.get("LENSBATCH_BROKER_URL", base.broker_url),
            visibility_timeout=_positive(env, "LENSBATCH_VISIBILITY_TIMEOUT",
                                         base.visibility_timeout),
            restore_interval=_positive(env, "LENSBATCH_RESTORE_INTERVAL",
                                       base.restore_interval),
            max_attempts=_positive(env, "LENSBATCH_MAX_ATTEMPTS", base.max_attempts),
            max_document_bytes=_positive(env, "LENSBATCH_MAX_DOCUMENT_BYTES",
                                         base.max_document_bytes),
            device=env.get("LENSBATCH_DEVICE", base.device),
            cache_dir=env.get("LENSBATCH_CACHE_DIR", base.cache_dir),
        )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise SettingsError(f"{name} must be a positive whole number, got {raw!r}")
    return value


def mask_url(url: str) -> str:
    """Return the URL with any password replaced by ***, safe to print or store."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:***@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def url_host(url: str) -> str:
    """Host and port of a URL, for error messages (never includes credentials)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return parts.path or url
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
