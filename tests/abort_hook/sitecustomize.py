"""Test-only, put on PYTHONPATH by tests/crashes.py: a pool process that is handed a
document containing $LENSBATCH_TEST_ABORT_WORD dies of SIGABRT while tokenizing it, as
the tokenizer's native abort on a huge document did (issue: crash loops). The death is
real (the kernel ends the process; no Python exception is raised), and nothing of
lensbatch knows about this hook: it wraps worker.engine.evaluate.tokenize when that
module is first imported, which only pool processes do.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import resource
import signal
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

WORD = os.environ.get("LENSBATCH_TEST_ABORT_WORD", "")
TARGET = "worker.engine.evaluate"


def _abort() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the test's cwd
    os.kill(os.getpid(), signal.SIGABRT)


def _patch(module: Any) -> None:  # worker.engine.evaluate
    tokenize = module.tokenize

    def tokenize_or_abort(model: Any, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        if any(WORD in text for text in texts):
            _abort()
        return tokenize(model, texts, *args, **kwargs)

    module.tokenize = tokenize_or_abort


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> Any:
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = spec.loader if spec is not None else None
        if loader is None:
            return spec
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            _patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if WORD:
    sys.meta_path.insert(0, _Finder())
