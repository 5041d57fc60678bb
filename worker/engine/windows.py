"""Windows for documents longer than the model's context.

Every token after the first is predicted exactly once, in one of two layouts:

- sliding (the default): the first window scores all its positions; each later window
  starts `stride` tokens after the previous one and scores only the targets the
  previous window did not reach, so each prediction is made with as much preceding
  text as fits.
- disjoint: lm-evaluation-harness's `loglikelihood_rolling` (its
  `get_rolling_token_windows` with context_len 1, then `make_disjoint_window`). Windows
  of n_ctx tokens that do not overlap, each scoring every position, its last one
  included (it predicts the first token of the next window, which therefore has one
  token of context); the last window is pushed right to end where the document ends,
  re-reading earlier tokens as context and scoring only the targets not yet reached.

A window holds its document's token list and its bounds, not a copy of its tokens: a
long document's windows cost a few numbers each, and a window's tokens are cut out
only when its batch is padded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LAYOUTS = ("sliding", "disjoint")


@dataclass(frozen=True)
class Window:
    doc: int  # index of the document in the task
    start: int  # position of the window's first token in the document
    end: int  # position after its last token
    score_from: int  # first local position whose prediction counts
    final: bool = True  # the document's last window: it also reports its last position
    # The document's token after the window, which the window's last position predicts
    # and scores (disjoint windows); None: the last position predicts nothing here.
    next_token: int | None = None
    source: list[int] = field(default_factory=list, repr=False, compare=False)  # the doc

    @property
    def tokens(self) -> list[int]:
        """The tokens the model reads."""
        return self.source[self.start:self.end]

    @property
    def length(self) -> int:
        return self.end - self.start

    def scored(self) -> range:
        """Local positions whose predictions count: position p predicts token p + 1."""
        return range(self.score_from, self.length - (0 if self.next_token is not None else 1))

    def targets(self) -> list[int]:
        """The token each local position predicts; the last one only with next_token."""
        return self.tokens[1:] + ([] if self.next_token is None else [self.next_token])

    def owned(self) -> range:
        """Local positions whose per-position summaries this window reports.

        Its scored positions, plus the document's last position in its last window, so
        that every position the model reads is reported by exactly one window. (A
        disjoint window that ends before the document's last token never reads it.)
        """
        keeps_last = self.final or self.next_token is not None
        return range(self.score_from, self.length - (0 if keeps_last else 1))


def split_windows(doc: int, tokens: list[int], n_ctx: int, stride: int) -> list[Window]:
    n = len(tokens)
    if n <= n_ctx:  # one window, whatever the stride
        return [Window(doc, 0, n, 0, source=tokens)]
    if stride <= 0 or stride > n_ctx - 1:
        raise ValueError(f"stride must be in 1..{n_ctx - 1}, got {stride}")
    windows: list[Window] = []
    start, reached = 0, 0  # reached: targets up to this position are already scored
    while reached < n - 1:
        end = min(start + n_ctx, n)
        # Local position p predicts target start + p + 1; count those beyond `reached`.
        score_from = max(reached - start, 0)
        windows.append(Window(doc, start, end, score_from, final=end == n, source=tokens))
        reached = end - 1
        start += stride
    return windows


def disjoint_windows(doc: int, tokens: list[int], n_ctx: int) -> list[Window]:
    """lm-evaluation-harness's rolling windows over a document whose first token is the
    prefix (BOS) lm-eval puts before the text: the same (context, continuation) pairs,
    each window reading its context plus all of its continuation but the last token."""
    n = len(tokens)
    if n <= n_ctx:
        return [Window(doc, 0, n, 0, source=tokens)]
    windows: list[Window] = []
    reached = 0  # targets up to this position are already scored
    while reached < n - 1:
        # Full windows start where the previous one ended; the last one ends at n - 1.
        start = min(reached, n - 1 - n_ctx)
        end = start + n_ctx
        windows.append(Window(doc, start, end, reached - start, final=end == n - 1,
                              next_token=tokens[end], source=tokens))
        reached = end
    return windows


def document_windows(doc: int, tokens: list[int], n_ctx: int, layout: str,
                     stride: int) -> list[Window]:
    """The windows of one document in the job's layout (`stride` 0: half the context)."""
    if layout == "disjoint":
        return disjoint_windows(doc, tokens, n_ctx)
    return split_windows(doc, tokens, n_ctx, stride or n_ctx // 2)
