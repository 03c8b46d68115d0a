"""The offline side of the feature views: every value a feature ever had, with the time it was computed.

Feast answers ``get_historical_features`` (the point-in-time join that builds training rows) from each
view's batch source, ``data/<view>.parquet``. If that source held only the newest snapshot, a training
row for an impression at 10:00 would see the like count of 10:05 — the label leaking into the
features. So each source is a *parquet dataset*, a folder of parts that Feast's file offline store
(Dask) reads as one table:

``batch-<t>.parquet``    a full snapshot of SQL, written by every ``materialize`` (the batch path);
``push-<t>.parquet``     the rows of one fresh write (a new post, a like, a follow) — what
                         ``FeatureWriter`` pushed to the online store, appended here as well;
``history-<t>.parquet``  the parts above, folded together by the next batch.

The folder keeps its old name (``post_stats.parquet``): the definitions, ``feast apply`` and anyone
listing the data directory see the same path, now a dataset instead of a single file (the layout
Spark and Dask write too).

Folding keeps the history small without losing anything a point-in-time join can see: a row whose
values equal the previous row of the same key adds nothing (the views have no TTL, so the earlier row
answers for the same instants), so it is dropped. A post whose like count never moved keeps one row,
however many batches ran. Embeddings are compared by presence only: a post's vector is computed once
and never changes.

Writers never show a reader half a file: a part is written under a dot-name (Arrow skips those) and
renamed into place; a fold writes its ``history`` part before it deletes the parts it folded, so a
reader in between sees some rows twice (harmless: same key, same time, same values), never none.
Parts that appear while a fold runs (another process's push) are left for the next fold.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TIMESTAMP = "event_timestamp"
PUSH_PARTS = 64  # push parts of one view before they are bundled into one

# The join keys of each view (services/feature_store/repo/definitions.py).
VIEW_KEYS: dict[str, tuple[str, ...]] = {
    "user_stats": ("user_id",),
    "post_stats": ("post_id",),
    "user_author_affinity": ("user_id", "author_id"),
}


class FeatureHistory:
    """The parquet datasets under ``<data_dir>/feast/data``, one per feature view."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def dataset(self, view: str) -> Path:
        """The view's dataset folder, created (and a pre-history single file moved into it) if needed."""
        path = self.data_dir / f"{view}.parquet"
        if path.is_file():  # a data dir from before the history: its snapshot becomes the first part
            legacy = self.data_dir / f".{view}.legacy"
            path.replace(legacy)
            path.mkdir()
            legacy.replace(path / "batch-0000000000000000000-legacy.parquet")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def parts(self, view: str) -> list[Path]:
        """The view's parts, oldest first (names start with their kind, then the write time)."""
        return sorted(self.dataset(view).glob("[!.]*.parquet"), key=lambda p: p.name.split("-", 1)[1])

    def append(self, view: str, table: pa.Table) -> Path | None:
        """One fresh write (``push-`` part); nothing for an empty table.

        Every ``PUSH_PARTS`` pushes the push parts are bundled into one (all rows kept: whether a
        row repeats its predecessor can only be told against the batches too, which the next fold
        does), so a busy stack does not leave thousands of tiny files for Feast to list and read.
        """
        if table.num_rows == 0:
            return None
        written = self._write(view, "push", table)
        pushes = [p for p in self.parts(view) if p.name.startswith("push-")]
        if len(pushes) >= PUSH_PARTS:
            self._bundle(view, pushes, table.schema)
        return written

    def _bundle(self, view: str, parts: list[Path], schema: pa.Schema) -> None:
        try:
            table = pa.concat_tables([pq.read_table(part).cast(schema) for part in parts])
        except FileNotFoundError:
            return  # another process bundled or folded them meanwhile
        self._write(view, "push", table)
        for part in parts:
            part.unlink(missing_ok=True)

    def write_batch(self, view: str, table: pa.Table) -> Path:
        """A batch snapshot: first fold the existing parts, then write the snapshot as its own part.

        The snapshot stays a part of its own, so ``materialize`` (which reads the window around the
        snapshot time) reads exactly it; the next batch folds it into the history.
        """
        self.fold(view, table.schema)
        return self._write(view, "batch", table)

    def fold(self, view: str, schema: pa.Schema) -> Path | None:
        """Fold every current part into one ``history-`` part of changed rows only."""
        parts = self.parts(view)
        if not parts or (len(parts) == 1 and parts[0].name.startswith("history-")):
            return None
        try:
            table = pa.concat_tables([pq.read_table(part).cast(schema) for part in parts])
        except FileNotFoundError:
            return None  # another process folded these parts meanwhile: nothing left to do
        changes = changed_rows(table, VIEW_KEYS[view])
        folded = self._write(view, "history", changes) if changes.num_rows else None
        for part in parts:
            part.unlink(missing_ok=True)
        return folded

    def read(self, view: str) -> pd.DataFrame:
        """The whole history of one view (for notebooks and tests; Feast reads the folder itself)."""
        parts = self.parts(view)
        if not parts:
            return pd.DataFrame()
        return pa.concat_tables([pq.read_table(p) for p in parts]).to_pandas()

    def _write(self, view: str, kind: str, table: pa.Table) -> Path:
        folder = self.dataset(view)
        name = f"{kind}-{time.time_ns():019d}-{uuid.uuid4().hex[:8]}.parquet"
        staging = folder / f".{name}.tmp"  # a dot-name: readers of the folder skip it
        pq.write_table(table, staging)
        final = folder / name
        staging.replace(final)
        return final


def changed_rows(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """The rows that differ from the previous row of the same key (in time order); the first row of
    each key always stays. Lists (embeddings) are compared by presence, not by value."""
    if table.num_rows == 0:
        return table
    frame = table.to_pandas()
    frame = frame.sort_values([*keys, TIMESTAMP], kind="stable").reset_index(drop=True)
    values = [c for c in frame.columns if c not in (*keys, TIMESTAMP)]
    compared = pd.DataFrame(
        {c: frame[c].isna() if pa.types.is_list(table.schema.field(c).type) else frame[c] for c in values}
    )
    previous = compared.shift()
    same_key = (frame[list(keys)] == frame[list(keys)].shift()).all(axis=1)
    same_values = ((compared == previous) | (compared.isna() & previous.isna())).all(axis=1)
    kept = frame[~(same_key & same_values)]
    return pa.Table.from_pandas(kept, schema=table.schema, preserve_index=False)
