"""The metric registry: every number lensbatch keeps about a document, declared once.

Two kinds of declaration, in the spirit of lm-evaluation-harness's task registry:

- DocMetric: one value per (job, document). Its declaration gives the `results` column
  (lensbatch/store/schema.py), how documents combine into the corpus number (a sum, or a
  ratio of two sums: the corpus loss is token-weighted), the summary rows of `run`,
  `status` and the report, the columns of `results` in every format, and the columns of
  the v_results and v_jobs views (lensbatch/store/views.py).
- HeadScore: one value per (job, document, layer, head). A job keeps, per (layer,
  head), its sum over documents and the count of documents where it is not null
  (head_totals), from which `heads`, the report and v_head_means give the mean over
  documents; with `--head-scores document` it also keeps every document's values
  (head_scores, one packed array per score and document).

Adding a metric is one declaration here plus its computation in worker/engine (and a
migration adding its column). Nothing in this module imports torch or SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["count", "real"]  # stored as an integer, or as a float


@dataclass(frozen=True)
class Ratio:
    """A rate: sum(numerator) / sum(denominator) over documents, null when that is 0."""

    numerator: str
    denominator: str
    show_parts: bool = False  # summaries print "rate (numerator/denominator)"


@dataclass(frozen=True)
class DocMetric:
    name: str
    kind: Kind
    corpus: Literal["sum"] | Ratio  # how documents combine into the corpus number
    label: str  # how summaries and the report name it
    description: str
    stored: bool = True  # a column of `results`; False: derived from stored ones
    listed: bool = True  # a column of `lensbatch results`
    headline: bool = False  # a row of `run`'s and `status`'s summary


DOC_METRICS: tuple[DocMetric, ...] = (
    DocMetric("n_tokens", "count", "sum", "tokens", "tokens in the document, BOS included",
              headline=True),
    DocMetric("n_predictions", "count", "sum", "predictions",
              "next-token predictions: n_tokens - 1"),
    DocMetric("nll_sum", "real", "sum", "summed loss (nats)",
              "next-token cross-entropy summed over the predictions, in nats"),
    DocMetric("loss", "real", Ratio("nll_sum", "n_predictions"), "loss (token-weighted, nats)",
              "mean next-token cross-entropy, in nats", headline=True),
    DocMetric("n_correct", "count", "sum", "correct predictions",
              "predictions whose argmax is the next token"),
    DocMetric("accuracy", "real", Ratio("n_correct", "n_predictions"), "accuracy",
              "share of predictions whose argmax is the next token", headline=True),
    DocMetric("induction_candidates", "count", "sum", "induction candidates",
              "positions whose bigram occurred earlier in the document"),
    DocMetric("induction_hits", "count", "sum", "induction hits",
              "induction candidates predicted correctly"),
    DocMetric("induction_novel_hits", "count", "sum", "novel induction hits",
              "induction hits whose bigram's first occurrence was predicted wrongly"),
    DocMetric("induction_hit_rate", "real",
              Ratio("induction_hits", "induction_candidates", show_parts=True),
              "induction hit rate", "induction hits per candidate", stored=False,
              listed=False, headline=True),
    DocMetric("n_windows", "count", "sum", "windows",
              "context windows the document was evaluated in", listed=False),
)


@dataclass(frozen=True)
class Heatmap:
    """A layer x head heatmap section of the report."""

    heading: str
    anchor: str
    title: str
    intro: str


@dataclass(frozen=True)
class HeadScore:
    """A per-head attention summary, averaged over the positions of a document
    (worker/engine/summaries.py computes it) and over documents (the SQL average)."""

    name: str
    description: str
    heatmap: Heatmap | None = None  # None: in `heads` and the views, not drawn


# In the order worker/engine/summaries.py stacks them.
HEAD_SCORES: tuple[HeadScore, ...] = (
    HeadScore("prev_token_score", "mean attention from each token to the token before it",
              Heatmap("Previous-token heads", "prev-token-heads",
                      "Previous-token score (layer x head)",
                      "Mean attention from each token to the token just before it, over "
                      "the corpus. Previous-token heads score near 1.")),
    HeadScore("induction_score", "mean attention to the tokens after earlier occurrences "
              "of the current token",
              Heatmap("Induction heads", "induction-heads", "Induction score (layer x head)",
                      "Mean attention from each token to the token after the previous "
                      "occurrence of the current token, over the corpus (documents without "
                      "a repeated token are left out). Induction heads score near 1.")),
    HeadScore("attn_entropy", "mean entropy of each query's attention, in nats"),
    HeadScore("bos_attention", "mean attention to the window's first position (BOS)"),
)
HEAD_SCORE_NAMES = tuple(score.name for score in HEAD_SCORES)

# What the repeated-random-tokens probe measures per head (probe_heads), as
# head_detector.detect_head does; `heads` lists them as probe_<name>.
PROBE_SCORES = ("induction_score", "prev_token_score")

STORED_METRICS = tuple(m for m in DOC_METRICS if m.stored)
# What a job's progress counters keep (job_progress): every stored metric whose corpus
# number is a sum; the rates are worked out from these sums.
SUMMED_METRICS = tuple(m for m in STORED_METRICS if m.corpus == "sum")
LISTED_METRICS = tuple(m.name for m in DOC_METRICS if m.listed)


def _moments() -> tuple[tuple[str, str], ...]:
    """For every rate sum(a) / sum(b): the products a*a, a*b and b*b, once each."""
    pairs: list[tuple[str, str]] = []
    for metric in DOC_METRICS:
        if isinstance(metric.corpus, Ratio):
            a, b = metric.corpus.numerator, metric.corpus.denominator
            pairs += [p for p in ((a, a), (a, b), (b, b)) if p not in pairs]
    return tuple(pairs)


# The job's counters also sum these products over documents, so that a large job's
# intervals come from a few rows (lensbatch/bootstrap.py normal_interval): column
# `<a>_x_<b>` of job_progress.
MOMENTS = _moments()


def moment_name(pair: tuple[str, str]) -> str:
    return f"{pair[0]}_x_{pair[1]}"


def metric(name: str) -> DocMetric:
    """The declaration of one metric, by name (KeyError for an unknown one)."""
    return {m.name: m for m in DOC_METRICS}[name]


def corpus_value(name: str, totals: dict[str, float]) -> float | None:
    """The corpus number of `name` from the summed metrics of a job's documents."""
    declared = metric(name).corpus
    if declared == "sum":
        return totals[name]
    denominator = totals[declared.denominator]
    return totals[declared.numerator] / denominator if denominator else None
