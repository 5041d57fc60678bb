"""The report's Neurons section, for a job run with --top-activations: each card's
contexts are the ones db.top gives, in order, its histogram counts every position of
the corpus once, the documents' text is escaped, and `report --neuron HOOK:NEURON` adds
a card or refuses a neuron the job did not record."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import Engine

import lensbatch
from lensbatch.jobspec import JobSpec
from lensbatch.store.db import ensure_schema
from tests.cli import lensbatch as run_cli
from tests.cli import user_error_line
from tests.unit.test_report import assert_self_contained
from worker.engine.evaluate import tokenize

SAMPLE = Path(__file__).resolve().parents[2] / "corpus" / "sample.jsonl"
# Every token of these documents is next to a character HTML must escape.
MARKUP = [{"id": '<doc id="1"> & co', "text": "<b> & <i> & <u> & <s> & <b> & <i> & <u> &"},
          {"id": "plain", "text": "Tom & Jerry <3 & <3 & <3 & <3 & <3"}]
# What the section may contain as tags: its own markup, never the documents'.
OWN_TAGS = {"section", "h2", "h3", "h4", "p", "code", "mark", "div", "table", "tr", "th",
            "td", "a", "figure", "figcaption", "svg", "rect", "title", "line", "text", "span"}
TAG = re.compile(r"</?([a-zA-Z][a-zA-Z0-9]*)")
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


class Jobs:
    def __init__(self, url: str, engine: Engine, sample: str, markup: str, plain: str) -> None:
        self.url, self.engine = url, engine
        self.sample, self.markup, self.plain = sample, markup, plain


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Jobs:
    """In one SQLite database: toy-induction over corpus/sample.jsonl with hook_embed's
    top 5, over MARKUP with its top 3, and over MARKUP without top activations."""
    from scheduler.local import run_local

    tmp = tmp_path_factory.mktemp("report-neurons")
    markup = tmp / "markup.jsonl"
    markup.write_text("".join(json.dumps(doc) + "\n" for doc in MARKUP))
    url = f"sqlite:///{tmp / 'lensbatch.db'}"
    engine = ensure_schema(url)

    def run(corpus: Path, spec: JobSpec) -> str:
        return run_local(engine, str(corpus), spec.validate(), "cpu").summary.job_id

    top = JobSpec(model="toy-induction", top_activations=("hook_embed",), top_k=5)
    return Jobs(url, engine, run(SAMPLE, top),
                run(markup, JobSpec(model="toy-induction", top_activations=("hook_embed",),
                                    top_k=3)),
                run(markup, JobSpec(model="toy-induction")))


def neurons_part(page: str) -> str:
    return page.split('<section id="neurons">')[1].split("</section>")[0]


def cards(part: str) -> dict[str, str]:
    """Neuron label -> its card's HTML."""
    found = {}
    for piece in part.split('<div class="neuron-card"')[1:]:
        label = re.search(r'data-neuron="([^"]+)"', piece)
        assert label is not None
        found[html.unescape(label.group(1))] = piece
    return found


def contexts(card: str) -> list[tuple[str, int]]:
    return [(html.unescape(doc), int(pos))
            for doc, pos in re.findall(r'<tr data-doc="([^"]*)" data-position="(\d+)">', card)]


def edge_labels() -> list[str]:
    """The 31 finite edges of the stored bins, written as powers of two."""
    def power(n: int) -> str:
        return "2" + str(n).translate(SUPERSCRIPT)

    return ([f"−{power(n)}" for n in range(6, -9, -1)] + ["0"]
            + [power(n) for n in range(-8, 7)])


def test_cards_are_the_contexts_db_top_gives(jobs: Jobs) -> None:
    from scheduler.report.page import render

    page = render(jobs.engine, jobs.sample, rescore=False)
    assert_self_contained(page)
    ids = re.findall(r'<section id="([^"]+)">', page)
    # after the heads sections and the rest of the findings, before model card, settings
    assert ids.index("induction-heads") < ids.index("probe") < ids.index("neurons")
    assert ids.index("neurons") == ids.index("model") - 1 == ids.index("settings") - 2
    part = neurons_part(page)
    db = lensbatch.open(jobs.url)
    ranked = db.neurons(jobs.sample, "hook_embed")
    listed = re.findall(r'<tr data-neuron="([^"]+)">', part)
    assert listed == [str(n) for n in ranked.neuron[:10]]
    shown = cards(part)
    assert list(shown) == [str(n) for n in ranked.neuron[:3]]
    n_tokens = int(db.results(jobs.sample).n_tokens.sum())
    model = db.load_model(jobs.sample)
    texts = {doc: db.text(jobs.sample, doc) for doc in db.results(jobs.sample).doc_id}
    for label, card in shown.items():
        top = db.top(jobs.sample, "hook_embed", int(label))
        assert contexts(card) == list(zip(top.doc_id, top.position, strict=True))
        values = re.findall(r"<td>\d+</td><td>(-?\d+\.\d{4})</td>", card)
        assert values == [f"{v:.4f}" for v in top.value]
        counts = [int(c) for c in re.findall(r'data-count="(\d+)"', card)]
        assert len(counts) == 32 and sum(counts) == n_tokens
        assert re.findall(r"<text [^>]*>([^<]+)</text>", card) == edge_labels()
        # each marked token is the token at the stored position of the stored document
        marks = [html.unescape(m) for m in re.findall(r"<mark>(.*?)</mark>", card)]
        for mark, row in zip(marks, top.itertuples(), strict=True):
            ids_ = tokenize(model, [texts[row.doc_id]], None)[0]  # the job's rule
            token = model.tokenizer.decode([ids_[row.position]]).replace("\n", "\u21b5")
            assert mark == token, (label, row)


def test_the_documents_text_is_escaped(jobs: Jobs) -> None:
    from scheduler.report.page import render

    part = neurons_part(render(jobs.engine, jobs.markup, rescore=False))
    assert set(TAG.findall(part)) <= OWN_TAGS
    cells = re.findall(r'<td class="ctx">(.*?)</td>', part)
    assert len(cells) == 3 * 3  # three cards of three contexts
    for cell in cells:
        assert "&lt;" in cell or "&amp;" in cell
        shown = html.unescape(re.sub(r"</?mark>", "", cell))
        assert any(shown in doc["text"] for doc in MARKUP), shown
    assert {doc for card in cards(part).values() for doc, _ in contexts(card)} <= {
        doc["id"] for doc in MARKUP}
    assert "&lt;doc id=&quot;1&quot;&gt; &amp; co" in part


def test_a_job_without_top_activations_has_no_section(jobs: Jobs) -> None:
    from scheduler.report.page import render

    page = render(jobs.engine, jobs.plain, rescore=False)
    assert 'id="neurons"' not in page and 'id="model"' in page


def test_neuron_option_adds_its_card(jobs: Jobs, tmp_path: Path) -> None:
    """A neuron past the top 3 gets a card after theirs (once, though asked for twice);
    one of the top 3 asked for keeps its one card."""
    db = lensbatch.open(jobs.url)
    ranked = db.neurons(jobs.sample, "hook_embed").neuron
    first, last = int(ranked.iloc[0]), int(ranked.iloc[-1])
    out = tmp_path / "report.html"
    asked = [f"--neuron=hook_embed:{n}" for n in (last, first, last)]
    result = run_cli("report", jobs.sample, "--no-tokens", "-o", str(out), *asked,
                     env={"LENSBATCH_DATABASE_URL": jobs.url})
    assert result.returncode == 0, result.stderr
    part = neurons_part(out.read_text(encoding="utf-8"))
    shown = cards(part)
    assert list(shown) == [str(n) for n in ranked[:3]] + [str(last)]
    assert "asked for with --neuron" in shown[str(last)]
    assert "asked for with --neuron" in shown[str(first)]
    assert "asked for with --neuron" not in shown[str(int(ranked.iloc[1]))]
    assert "then 1 asked for with --neuron" in part
    top = db.top(jobs.sample, "hook_embed", last)
    assert contexts(shown[str(last)]) == list(zip(top.doc_id, top.position, strict=True))


@pytest.mark.parametrize(("which", "neuron", "message"), [
    ("sample", "hook_embed:9999", "hook_embed has no neuron 9999 (it has 512"),
    ("sample", "resid_post0:1", "no top activations for blocks.0.hook_resid_post"),
    ("sample", "hook_embed:1.2", "hook_embed has no heads"),
    ("sample", "hook_embed", "--neuron takes HOOK:NEURON"),
    ("sample", "hook_embed:x", "neuron must be INDEX or HEAD.INDEX"),
    ("sample", "nonsense:1", "unknown hook 'nonsense'"),
    ("plain", "hook_embed:1", "kept no top activations"),
])
def test_a_neuron_the_job_did_not_record_is_refused(jobs: Jobs, tmp_path: Path, which: str,
                                                   neuron: str, message: str) -> None:
    out = tmp_path / "report.html"
    job = jobs.sample if which == "sample" else jobs.plain
    result = run_cli("report", job, "--no-tokens", "-o", str(out), "--neuron", neuron,
                     env={"LENSBATCH_DATABASE_URL": jobs.url})
    user_error_line(result, message)
    assert not out.exists()
