"""One typed settings object, read from the environment (prefix LENSBATCH_).

Each process builds it once, at its entry point (the CLI's main, the worker, Alembic's
env.py run by hand), and passes it down; nothing else reads LENSBATCH_ variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING
from urllib.parse import quote

from lensbatch.corpus import DEFAULT_MAX_DOCUMENT_BYTES
from lensbatch.errors import SettingsError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

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
    # worker's task comes back sooner (see docs/reliability.md).
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


MASK = "***"
# Query parameters that carry secrets (libpq's password and sslpassword, Redis's
# password, tokens): masked like the password.
SECRET_QUERY_KEY = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def _authority(url: str) -> URL | None:
    """The URL as SQLAlchemy reads it, or None when it cannot be read.

    SQLAlchemy ends a password at its first `@`, so a raw `@` in a password would leave
    the rest of the password in the host. Everything before the last `@` of the part
    after the scheme is taken as user and password here instead (as kombu reads Redis
    URLs), so that no piece of a password can ever be shown as a host. (SQLAlchemy is
    imported here, not above: the engine imports this module and no SQLAlchemy.)
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        userinfo, _, hostpart = rest.rpartition("@")
        user, colon, password = userinfo.partition(":")
        password_part = f":{quote(password, safe='%')}" if colon else ""
        url = f"{scheme}://{quote(user, safe='%')}{password_part}@{hostpart}"
    try:
        return make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return None


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to print or store.

    Read with SQLAlchemy's own URL parser, for database and Redis URLs alike; a URL it
    cannot read is not shown at all.
    """
    parsed = _authority(url)
    if parsed is None:
        return "<unreadable URL>"
    secret = {key: MASK for key in parsed.query if SECRET_QUERY_KEY.search(key)}
    shown = parsed.update_query_dict(secret) if secret else parsed
    return shown.render_as_string(hide_password=True).replace(quote(MASK), MASK)


def url_host(url: str) -> str:
    """Host and port of a URL, for error messages (never includes credentials); the
    database path for SQLite."""
    parsed = _authority(url)
    if parsed is None:
        return "<unreadable URL>"
    if not parsed.host:
        return parsed.database or parsed.render_as_string(hide_password=True)
    return f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host
