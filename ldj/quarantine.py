"""The quarantine and the batch log: what was rejected, why, and the export for the deliverer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from . import store


def _filters(q, batch_id: int | None, rule: str | None):
    if batch_id is not None:
        q = q.where(store.quarantine.c.batch_id == batch_id)
    if rule:
        q = q.where(store.quarantine.c.rule == rule)
    return q


def summary(batch_id: int | None = None, rule: str | None = None, engine: sa.Engine | None = None) -> list[dict]:
    """Rows in quarantine per batch and rule."""
    q = store.quarantine
    stmt = _filters(sa.select(q.c.batch_id, q.c.file_name, q.c.rule, sa.func.count().label("rows"))
                    .group_by(q.c.batch_id, q.c.file_name, q.c.rule).order_by(q.c.batch_id, q.c.rule), batch_id, rule)
    with (engine or store.get_engine()).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def rows(batch_id: int | None = None, rule: str | None = None, engine: sa.Engine | None = None) -> pd.DataFrame:
    q = store.quarantine
    stmt = _filters(sa.select(q.c.batch_id, q.c.file_name, q.c.row_number, q.c.rule, q.c.column, q.c.value,
                              q.c.message, q.c.row).order_by(q.c.batch_id, q.c.row_number, q.c.rule), batch_id, rule)
    with (engine or store.get_engine()).connect() as conn:
        return pd.DataFrame([dict(r._mapping) for r in conn.execute(stmt)],
                            columns=["batch_id", "file_name", "row_number", "rule", "column", "value", "message", "row"])


def export_csv(path: Path, batch_id: int | None = None, rule: str | None = None,
               engine: sa.Engine | None = None) -> int:
    """One line per problem, with the row's delivered values, as Dutch Excel opens it.

    Identifiers appear as pseudonyms: the organisation finds the row by file and row number.
    """
    frame = rows(batch_id, rule, engine)
    delivered = pd.DataFrame(frame["row"].tolist(), index=frame.index) if len(frame) else pd.DataFrame()
    out = pd.concat([
        frame[["file_name", "row_number", "rule", "column", "value", "message"]].rename(columns={
            "file_name": "Bestand", "row_number": "Regel", "rule": "Regel-id", "column": "Kolom",
            "value": "Waarde", "message": "Probleem"}),
        delivered,
    ], axis=1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, sep=";", index=False, encoding="utf-8-sig")
    return len(out)


def batches(engine: sa.Engine | None = None) -> list[dict]:
    b = store.import_batches
    with (engine or store.get_engine()).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(b).order_by(b.c.id))]
