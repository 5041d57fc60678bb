"""Shared fixtures: tiny real models, checkpoints saved to disk, and real servers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Never touch the network: a missing model must fail fast, not retry for ~25 s.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from tests.services import PostgresServer, RedisServer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("LENSBATCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny GPT-2 (2 layers, n_ctx 64) saved as a Hugging Face checkpoint directory,
    with GPT-2's real tokenizer. n_ctx 64 makes ordinary sentences exercise windowing."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from worker.engine.tokenizer import gpt2_tokenizer

    path = tmp_path_factory.mktemp("tiny-gpt2")
    torch.manual_seed(1234)
    config = GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=64)
    GPT2LMHeadModel(config).eval().save_pretrained(path)
    gpt2_tokenizer().save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, free to be killed and restarted."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lensbatch.db'}"


@pytest.fixture()
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database per test on the shared server."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    admin.dispose()


@pytest.fixture(scope="session")
def matrix_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """The architecture matrix's checkpoints (tests/architectures.py) by name, each built
    the first time a test asks for it and shared by the whole session."""
    from tests.architectures import BY_NAME, build_checkpoint

    root = tmp_path_factory.mktemp("matrix")
    built: dict[str, str] = {}

    def path(name: str) -> str:
        if name not in built:
            built[name] = str(build_checkpoint(BY_NAME[name], root / name))
        return built[name]

    return path
