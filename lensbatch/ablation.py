"""Head ablations: the heads a job switches off, as the CLI names them, and the ranking
of an ablation sweep's heads by what switching each off costs.

A head is `LAYER.HEAD` (1.2). An ablation sweep is one unablated job and one job per
ablated head over the same documents; each ablated job's rates are paired with the
unablated job's, document by document (lensbatch/store/ablations.py sums the
differences in SQL), and the interval of a paired difference is the normal
approximation of lensbatch/bootstrap.py `normal_interval` over those sums.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lensbatch.bootstrap import Interval, normal_interval
from lensbatch.errors import JobSpecError
from lensbatch.jobspec import Head

# The reference set of a mean ablation: the job's first documents, each run alone.
REFERENCE_DOCUMENTS = 16
# The per-document sums of a paired difference of a rate a / b whose denominator b is
# the same in both jobs (the same documents, tokens and model): d = a_job - a_baseline.
DIFFERENCE_SUMS = ("d", "b", "dd", "db", "bb")


def head_label(head: Head) -> str:
    return f"{head[0]}.{head[1]}"


def job_label(model: str, heads: Sequence[Head], ablation: str) -> str:
    """How a job is named wherever jobs are listed side by side: its model, and for an
    ablated job the heads it switches off and how (`toy-induction -1.2 (zero)`,
    `gpt2 -0.1,3.4 (mean)`); an unablated job is its model alone."""
    if not heads:
        return model
    return f"{model} -{','.join(map(head_label, heads))} ({ablation})"


def parse_heads(text: str | None) -> tuple[Head, ...]:
    """`1.2,0.1` -> ((1, 2), (0, 1)); JobSpecError for anything else."""
    if text is None:
        return ()
    heads = []
    for item in (part.strip() for part in text.split(",")):
        layer, dot, head = item.partition(".")
        if not (dot and layer.isdigit() and head.isdigit()):
            raise JobSpecError(f"--ablate takes LAYER.HEAD, comma-separated (such as 1.2,0.1), "
                               f"got {text!r}")
        heads.append((int(layer), int(head)))
    return tuple(heads)


def parse_layers(text: str | None, n_layers: int) -> tuple[int, ...]:
    """`0,1` -> (0, 1), each below n_layers; None: every layer."""
    if text is None:
        return tuple(range(n_layers))
    items = [part.strip() for part in text.split(",")]
    if not items or not all(item.isdigit() for item in items):
        raise JobSpecError(f"--ablate-layers takes layer numbers, comma-separated (such as "
                           f"0,1), got {text!r}")
    layers = tuple(dict.fromkeys(int(item) for item in items))
    too_large = [layer for layer in layers if layer >= n_layers]
    if too_large:
        raise JobSpecError(f"--ablate-layers {too_large[0]}: the model has {n_layers} layers "
                           f"(0 to {n_layers - 1})")
    return layers


@dataclass(frozen=True)
class HeadEffect:
    """One ablated job against the unablated one: each rate's paired difference."""

    job_id: str
    heads: tuple[Head, ...]
    documents: int  # documents both jobs have a result for
    differences: dict[str, Interval]  # rate name -> ablated minus unablated


def paired_difference(n: int, sums: Mapping[str, float]) -> Interval:
    """sum(d) / sum(b) with its 95% interval, from the DIFFERENCE_SUMS of n documents."""
    return normal_interval(n, (sums["d"], sums["b"]), (sums["dd"], sums["db"], sums["bb"]))


def ranked(effects: Sequence[HeadEffect], by: str = "loss") -> list[HeadEffect]:
    """Largest increase in `by` first; heads without a value last, in layer order."""
    def key(effect: HeadEffect) -> tuple[bool, float, tuple[Head, ...]]:
        value = effect.differences[by].value
        return value is None, -(value or 0.0), effect.heads

    return sorted(effects, key=key)
