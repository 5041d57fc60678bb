"""Sliding windows for documents longer than the model's context.

Every token after the first is predicted exactly once. The first window scores all
its positions; each later window starts `stride` tokens after the previous one and
scores only the targets the previous window did not reach, so each prediction is
made with as much preceding text as fits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    doc: int  # index of the document in the task
    start: int  # position of the window's first token in the document
    tokens: list[int]
    score_from: int  # first local position whose prediction counts
    final: bool = True  # the document's last window: it also reports its last position

    def owned(self) -> range:
        """Local positions whose per-position summaries this window reports.

        Its scored positions, plus the document's last position in its last window, so
        that every position of the document is reported by exactly one window.
        """
        return range(self.score_from, len(self.tokens) - (0 if self.final else 1))


def split_windows(doc: int, tokens: list[int], n_ctx: int, stride: int) -> list[Window]:
    n = len(tokens)
    if n <= n_ctx:  # one window, whatever the stride
        return [Window(doc, 0, tokens, 0)]
    if stride <= 0 or stride > n_ctx - 1:
        raise ValueError(f"stride must be in 1..{n_ctx - 1}, got {stride}")
    windows: list[Window] = []
    start, reached = 0, 0  # reached: targets up to this position are already scored
    while reached < n - 1:
        end = min(start + n_ctx, n)
        # Local position p predicts target start + p + 1; count those beyond `reached`.
        score_from = max(reached - start, 0)
        windows.append(Window(doc, start, tokens[start:end], score_from, final=end == n))
        reached = end - 1
        start += stride
    return windows
