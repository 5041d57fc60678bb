"""Timestamps as the store writes and reads them: timezone-aware, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(stamp: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; lensbatch always
    writes UTC, so a naive stamp is UTC."""
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def age_seconds(stamp: datetime) -> float:
    return (now() - as_utc(stamp)).total_seconds()
