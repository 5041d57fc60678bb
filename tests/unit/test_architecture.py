"""The layout holds: each package imports only what it may, and nothing imports in a
circle. Data path: CLI -> store -> queue -> worker -> engine -> store -> queries/report.

- core (lensbatch/*.py) and store (lensbatch/store): no torch, no transformer_lens;
- engine (worker/engine): no SQLAlchemy, nothing from the store, the worker or the CLI;
- the schema's tables are imported by the store (and migrations) alone;
- core and store import nothing from worker/ or scheduler/; worker/ nothing from scheduler/;
- except lensbatch.api, the Python API: a front end like the CLI, it may reach the engine
  (a job's model, as the worker loads it) and the CLI's re-scoring, but not the schema.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.cli import run_without_torch

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lensbatch", "worker", "scheduler")
FRONT_ENDS = ("lensbatch.api",)  # imported lazily, inside the methods that need them


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(*prefixes: str) -> dict[str, Path]:
    found = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    return {name: path for name, path in sorted(found.items()) if name.startswith(prefixes)}


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at module level or inside a function (so that an
    import hidden in a function still counts), TYPE_CHECKING blocks included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def first_party_graph() -> dict[str, set[str]]:
    modules = sources(*PACKAGES)
    return {name: {m for m in imports(path) if m in modules and m != name}
            for name, path in modules.items()}


def test_core_and_store_import_no_torch() -> None:
    names = [n for n in sources("lensbatch") if n != "lensbatch"]
    run_without_torch("".join(f"import {name}\n" for name in names))


def test_engine_imports_no_sqlalchemy() -> None:
    names = list(sources("worker.engine"))
    code = "".join(f"import {name}\n" for name in names) + (
        "import sys\nassert not [m for m in sys.modules if m.startswith('sqlalchemy')], "
        "'sqlalchemy imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_no_package_imports_one_it_should_not() -> None:
    forbidden = {
        "lensbatch": ("worker", "scheduler", "torch", "transformer_lens"),
        "worker.engine": ("lensbatch.store", "worker.service", "worker.tasks", "scheduler",
                          "sqlalchemy", "celery"),
        "worker": ("scheduler",),
    }
    offenders = []
    for name, path in sources(*PACKAGES).items():
        rules = [bad for prefix, bad in forbidden.items()
                 if name.startswith(prefix) and name not in FRONT_ENDS]
        for imported in imports(path):
            if any(imported.startswith(b) for bad in rules for b in bad):
                offenders.append(f"{name} imports {imported}")
    assert offenders == []


def test_only_the_store_imports_the_schema() -> None:
    offenders = [name for name, path in sources(*PACKAGES).items()
                 if "lensbatch.store.schema" in imports(path)
                 and not name.startswith("lensbatch.store")]
    assert offenders == []


def test_no_import_circles() -> None:
    graph = first_party_graph()
    for name in graph:  # packages import their __init__ implicitly; modules are the nodes
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_every_file_is_under_300_lines() -> None:
    long = {name: n for name, path in sources(*PACKAGES).items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 300}
    assert long == {}
