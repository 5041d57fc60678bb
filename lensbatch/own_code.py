"""Checkpoints that need their own Python code: lensbatch refuses them up front."""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

from lensbatch.errors import ModelUnavailable

# auto_map entries that make transformers load a checkpoint's own Python files (its
# remote code) when the model_type is not one it has built in.
REMOTE_CODE_CLASSES = ("AutoConfig", "AutoModelForCausalLM")


@functools.lru_cache(maxsize=1)
def _builtin_model_types() -> frozenset[str] | None:
    """The model_type values transformers has code for, read from its auto_mappings.py
    as data (importing transformers takes a second); None when it cannot be read."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "auto" / "auto_mappings.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "CONFIG_MAPPING_NAMES"
                and isinstance(node.value, ast.Call) and node.value.args
                and isinstance(node.value.args[0], ast.List)):
            return frozenset(pair.elts[0].value for pair in node.value.args[0].elts
                             if isinstance(pair, ast.Tuple)
                             and isinstance(pair.elts[0], ast.Constant)
                             and isinstance(pair.elts[0].value, str))
    return None


def check_own_code(name: str, config: dict[str, object]) -> None:
    """ModelUnavailable for a local checkpoint that needs its own Python code to load
    (config.json's auto_map, with a model_type transformers lacks): lensbatch never
    runs a checkpoint's code (no trust_remote_code), so `run`, `submit`, `score` and
    `inspect` all refuse it here, before anything is stored or queued."""
    auto_map = config.get("auto_map")
    classes = [c for c in REMOTE_CODE_CLASSES if isinstance(auto_map, dict) and c in auto_map]
    known = _builtin_model_types()
    if classes and (known is None or config.get("model_type") not in known):
        raise ModelUnavailable(
            f"cannot load model {name!r}: it needs its own code ({', '.join(classes)} in "
            f"config.json's auto_map, model_type {config.get('model_type')!r} unknown to "
            "transformers), and lensbatch never runs a checkpoint's code "
            "(trust_remote_code); save it with an architecture transformers has built in")
