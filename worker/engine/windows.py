"""Sliding windows for documents longer than the model's context.

Every token after the first is predicted exactly once. The first window scores all
its positions; each later window starts `stride` tokens after the previous one and
scores only the targets the previous window did not reach, so each prediction is
made with as much preceding text as fits.

A window holds its document's token list and its bounds, not a copy of its tokens: a
long document's windows cost a few numbers each, and a window's tokens are cut out
only when its batch is padded.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Window:
    doc: int  # index of the document in the task
    start: int  # position of the window's first token in the document
    end: int  # position after its last token
    score_from: int  # first local position whose prediction counts
    final: bool = True  # the document's last window: it also reports its last position
    source: list[int] = field(default_factory=list, repr=False, compare=False)  # the doc

    @property
    def tokens(self) -> list[int]:
        return self.source[self.start:self.end]

    @property
    def length(self) -> int:
        return self.end - self.start

    def owned(self) -> range:
        """Local positions whose per-position summaries this window reports.

        Its scored positions, plus the document's last position in its last window, so
        that every position of the document is reported by exactly one window.
        """
        return range(self.score_from, self.length - (0 if self.final else 1))


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
