"""Commands about one text or one model, no database: `score` and `inspect`.

Only what a command needs is imported when it runs, so `lensbatch --help` never imports
torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lensbatch.errors import UserError
from lensbatch.jobspec import JobSpec
from scheduler.context import invocation
from scheduler.options import Activations, Bos, Device, Stats, job_spec

ScoreModel = Annotated[str | None, typer.Option(
    "--model", "-m", help="Built-in name, hub name or local checkpoint directory. "
    f"Default: {JobSpec.model}.")]


def score(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="The text to score (or @FILE to read one).")],
    model: ScoreModel = None,
    device: Device = "auto",
    bos: Bos = None,
    activations: Activations = None,
    stats: Stats = None,
) -> None:
    """One text, as the seed notebook scores it: its tokens (with BOS), loss, accuracy,
    induction hits and head summaries, and the selected activations' statistics.

    Example: lensbatch score "Hello TransformerLens! Hello TransformerLens!" -m toy-induction
    """
    from lensbatch.models import check_loadable
    from scheduler.model_notes import say_default_model, weights_line
    from scheduler.output import score_report
    from worker.engine.device import pick_device
    from worker.engine.evaluate import analyse_tokens, tokenize
    from worker.engine.models import load_model

    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {text[1:]}: {exc}") from None
    if not text:
        raise UserError("the text is empty")
    chosen = model or JobSpec.model
    spec = job_spec(JobSpec(model=chosen, prepend_bos=bos), activations, stats)
    check_loadable(chosen)
    bridge = load_model(chosen, str(pick_device(device)), "float32",
                        invocation(ctx).settings.cache_dir)
    tokens = tokenize(bridge, [text], spec.prepend_bos)[0]
    (evaluation,) = analyse_tokens(bridge, [tokens], spec)
    str_tokens = [str(bridge.tokenizer.decode([t])) for t in tokens]
    say_default_model([model] if model else None, None, sys.stdout)
    if (note := weights_line(chosen)) is not None:
        print(note)
    for line in score_report(str_tokens, evaluation):
        print(line)


def inspect(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name or directory.")],
) -> None:
    """Print a model's layers, heads, context and weight shapes, as the seed notebook does.

    Example: lensbatch inspect gpt2-small-random
    """
    from lensbatch.models import check_loadable

    check_loadable(model)  # offline and not cached: one line now, before torch loads
    from scheduler.model_card import model_card_lines
    from worker.engine.device import pick_device
    from worker.engine.models import load_model, model_card

    bridge = load_model(model, str(pick_device("cpu")), "float32",
                        invocation(ctx).settings.cache_dir)
    for line in model_card_lines(model_card(bridge)):
        print(line)
