"""The Python API: a lensbatch database's jobs and results as pandas DataFrames, and each
job's model and tokens as the worker had them, for a check in a notebook.

    import lensbatch
    db = lensbatch.open()  # LENSBATCH_DATABASE_URL, else sqlite:///lensbatch.db
    db.results(job)        # one row per document: doc_id, metrics, metadata fields

docs/api.md has the whole API and an example. pandas, torch and TransformerLens are
imported by the methods that need them, so that `import lensbatch` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from lensbatch.errors import DatabaseUnavailable, UserError
from lensbatch.jobspec import JobSpec
from lensbatch.metrics import DOC_METRICS
from lensbatch.settings import Settings, mask_url

if TYPE_CHECKING:
    import pandas as pd
    import torch

# jobs(): a row per job, newest first, with these columns.
NEURON_COLUMNS = ("hook", "head", "neuron", "max_value", "density", "n_positions")
TOP_COLUMNS = ("rank", "value", "doc_id", "position")
JOB_COLUMNS = ("job_id", "model", "corpus", "status", "n_documents", "n_done",
               *(m.name for m in DOC_METRICS if m.headline), "created_at", "sweep_id",
               "sweep_index", "sweep_step", "error")


def _headline(value: float | None, kind: str) -> float | int | None:
    """A corpus number as its metric's kind: a count is an integer."""
    return int(value) if value is not None and kind == "count" else value


def missing_sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL that names a file that does not exist, else None (a
    server's URL, an in-memory database, or a file that is there)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # not a URL (or a bad port): the engine names it
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or Path(database).exists():
        return None
    return database


class Database:
    """One lensbatch database, opened by lensbatch.open(); every method reads it."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def __repr__(self) -> str:
        return f"lensbatch.Database({mask_url(self.settings.database_url)!r})"

    def jobs(self) -> pd.DataFrame:
        """Every job, newest first: JOB_COLUMNS (the headline metrics are corpus numbers
        over the documents done)."""
        import pandas as pd

        from lensbatch.store.queries import list_jobs

        rows = [{"job_id": s.job_id, "model": s.model, "corpus": s.corpus,
                 "status": s.status, "n_documents": s.n_documents, "n_done": s.n_done,
                 **{m.name: _headline(s.value(m.name), m.kind)
                    for m in DOC_METRICS if m.headline},
                 "created_at": s.created_at,
                 "sweep_id": s.sweep.sweep_id if s.sweep else None,
                 "sweep_index": s.sweep.index if s.sweep else None,
                 "sweep_step": s.sweep.step if s.sweep else None, "error": s.error}
                for s in list_jobs(self.engine, limit=None)]
        return pd.DataFrame(rows, columns=list(JOB_COLUMNS))

    def results(self, job: str) -> pd.DataFrame:
        """One row per document with a result, in corpus order: doc_id, every metric of
        `lensbatch results`, then one column per metadata field of the documents."""
        import pandas as pd

        from lensbatch.store.queries import result_batches, result_layout

        columns = result_layout(self.engine, job).columns  # JobNotFound for a wrong id
        rows = [row for batch in result_batches(self.engine, job) for row in batch]
        return pd.DataFrame(rows, columns=list(columns))

    def heads(self, job: str) -> pd.DataFrame:
        """One row per (layer, head): each head score's mean over the job's documents,
        and the induction probe's scores (`lensbatch heads`)."""
        import pandas as pd

        from lensbatch.store.head_queries import HEAD_COLUMNS, head_rows

        self._record(job)
        return pd.DataFrame(head_rows(self.engine, job), columns=list(HEAD_COLUMNS))

    def activations(self, job: str) -> pd.DataFrame:
        """The job's activation statistics, one row per (document, hook, layer, head,
        statistic): doc_id, hook, layer, head, stat, value (layer or head missing where
        the hook has none); no rows for a job run without --activations."""
        import pandas as pd

        from lensbatch.store.activations import ACTIVATION_COLUMNS, activation_rows

        self._record(job)
        return pd.DataFrame(activation_rows(self.engine, job),
                            columns=list(ACTIVATION_COLUMNS))

    def neurons(self, job: str, hook: str, limit: int | None = None) -> pd.DataFrame:
        """A hook the job ran with --top-activations (its full name, such as
        blocks.1.mlp.hook_post): one row per neuron, highest activation first: hook,
        head (missing for a hook without heads), neuron, max_value, density (the share
        of its activations above zero), n_positions; as `lensbatch neurons`."""
        import pandas as pd

        from lensbatch.store.top_queries import neuron_rows

        rows = neuron_rows(self.engine, job, hook, limit)
        return pd.DataFrame([vars(row) for row in rows], columns=list(NEURON_COLUMNS))

    def top(self, job: str, hook: str, neuron: int, head: int | None = None) -> pd.DataFrame:
        """One neuron's K highest activations over the corpus, best first: rank, value,
        doc_id, position (the token's index in tokens(job, doc_id)); as `lensbatch top`."""
        import pandas as pd

        from lensbatch.store.top_queries import neuron_top

        found = neuron_top(self.engine, job, hook, neuron, head)
        return pd.DataFrame([{"rank": c.rank, "value": c.value, "doc_id": c.doc_id,
                              "position": c.position} for c in found.contexts],
                            columns=list(TOP_COLUMNS))

    def text(self, job: str, doc: str) -> str:
        """The text of one of the job's documents, by its doc_id."""
        return str(self._document(job, doc).text)

    def load_model(self, job: str, device: str = "cpu") -> Any:
        """The job's model as a TransformerLens TransformerBridge in eval mode, loaded
        as a worker loads it (the same code, the job's dtype; a job run in half
        precision on an accelerator loads in float32 on a CPU)."""
        from scheduler.rescore import job_model

        return job_model(self._spec(job), device, self.settings.cache_dir)[0]

    def tokens(self, job: str, doc: str, device: str = "cpu") -> torch.Tensor:
        """One document's tokens as the worker evaluated them (BOS as the job had it,
        never truncated), shape [1, n_tokens], on the device of load_model(job, device)."""
        import torch

        from worker.engine.evaluate import tokenize

        text = self.text(job, doc)
        model = self.load_model(job, device)
        ids = tokenize(model, [text], self._spec(job).prepend_bos)[0]
        return torch.tensor([ids], dtype=torch.long, device=model.cfg.device)

    def _record(self, job: str) -> dict[str, Any]:
        from lensbatch.store.report_data import job_record

        return job_record(self.engine, job)  # JobNotFound for a wrong id

    def _spec(self, job: str) -> JobSpec:
        return JobSpec.from_json(self._record(job)["settings"])

    def _document(self, job: str, doc: str) -> Any:
        from lensbatch.store.report_data import find_document

        self._record(job)
        found = find_document(self.engine, job, doc)
        if found is None:
            raise UserError(f"job {job} has no document {doc!r} (the ids are the doc_id "
                            "column of results())")
        return found


def open_database(url: str | None = None) -> Database:
    """The database at `url` (a SQLAlchemy URL), or where the CLI looks:
    LENSBATCH_DATABASE_URL, else sqlite:///lensbatch.db. A SQLite file that does not
    exist is refused (DatabaseUnavailable), never created; an older schema is upgraded
    as the CLI upgrades it."""
    from dataclasses import replace

    from lensbatch.store.db import ensure_schema

    settings = Settings.from_env()
    if url is not None:
        settings = replace(settings, database_url=url)
    missing = missing_sqlite_file(settings.database_url)
    if missing is not None:
        raise DatabaseUnavailable(f"no lensbatch database at {missing} (no such file; "
                                  "pass lensbatch.open(url) or set LENSBATCH_DATABASE_URL)")
    return Database(ensure_schema(settings.database_url), settings)
