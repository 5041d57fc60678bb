"""Passwords in URLs are never shown, whatever characters they hold: URLs are read with
SQLAlchemy's own parser, database and Redis URLs alike."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from lensbatch.errors import BrokerUnavailable
from lensbatch.settings import Settings, mask_url, url_host
from scheduler.enqueue import check_broker_url

# Every character RFC 3986 reserves, the percent sign and a space.
HOSTILE = ":/?#[]@!$&'()*+,;=% x"
SCHEMES = ("postgresql+psycopg", "postgresql", "redis", "rediss")


def urls(scheme: str, password: str) -> list[str]:
    """The password written raw (as SQLAlchemy accepts most of it) and percent-encoded
    (as it must be for kombu and for an `@`)."""
    return [f"{scheme}://user:{p}@db.example:5432/name" for p in (password, quote(password,
                                                                                    safe=""))]


def fragments(password: str) -> list[str]:
    """Pieces of the password long enough to identify it: none may be shown."""
    pieces = [password, quote(password, safe=""), quote(password)]
    return pieces + [password[i:i + 4] for i in range(len(password) - 3)]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("password", [HOSTILE, "pa#ss", "p@ss", "a/b?c", "s3cr3t%zz"])
def test_mask_and_host_hide_every_password(scheme: str, password: str) -> None:
    for url in urls(scheme, password):
        masked, host = mask_url(url), url_host(url)
        assert masked == f"{scheme}://user:***@db.example:5432/name", url
        assert host == "db.example:5432", url
        for piece in fragments(password):
            if piece not in f"{scheme}://user:***@db.example:5432/name":
                assert piece not in masked and piece not in host, (url, piece)


def test_settings_repr_hides_both_passwords() -> None:
    settings = Settings(database_url=urls("postgresql+psycopg", HOSTILE)[0],
                        broker_url=urls("redis", HOSTILE)[1])
    shown = repr(settings)
    assert "postgresql+psycopg://user:***@db.example:5432/name" in shown
    assert "redis://user:***@db.example:5432/name" in shown
    for piece in fragments(HOSTILE):
        assert piece not in shown


def test_secrets_in_the_query_are_masked_and_urls_without_one_kept() -> None:
    assert mask_url("postgresql://h/db?password=s3cr3t&sslmode=require") == (
        "postgresql://h/db?password=***&sslmode=require")
    assert mask_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert mask_url("sqlite:///lensbatch.db") == "sqlite:///lensbatch.db"
    assert url_host("sqlite:////tmp/x/lensbatch.db") == "/tmp/x/lensbatch.db"
    assert mask_url("not a url s3cr3t") == url_host("not a url s3cr3t") == "<unreadable URL>"


def test_broker_url_kombu_cannot_read_is_refused_without_the_password() -> None:
    raw, encoded = urls("redis", HOSTILE)
    check_broker_url(Settings(broker_url=encoded))
    for bad in (raw, "redis://:pa#ss@db.example:6379/0", "redis://:#hidden@db.example/0"):
        with pytest.raises(BrokerUnavailable) as caught:
            check_broker_url(Settings(broker_url=bad))
        assert str(caught.value).startswith("cannot read the broker URL for db.example")
        for piece in (*fragments(HOSTILE), "pa#ss", "hidden"):
            assert piece not in str(caught.value)
