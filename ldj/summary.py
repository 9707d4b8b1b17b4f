"""A plain summary of what the store holds (counts, not disclosure-controlled: steward only)."""

from __future__ import annotations

import sqlalchemy as sa

from . import store


def store_summary(engine: sa.Engine | None = None) -> dict:
    engine = engine or store.get_engine()
    count = sa.func.count()
    m = store.measurements
    with engine.connect() as conn:
        scalar = lambda stmt: conn.execute(stmt).scalar_one()  # noqa: E731
        return {
            "organisations": scalar(sa.select(count).select_from(store.organisations)),
            "clients": scalar(sa.select(count).select_from(store.clients)),
            "objections": scalar(sa.select(count).select_from(store.clients).where(store.clients.c.objection)),
            "trajectories": scalar(sa.select(count).select_from(store.trajectories)),
            "measurements": scalar(sa.select(count).select_from(m)),
            "quarantined": scalar(sa.select(count).select_from(
                sa.select(store.quarantine.c.batch_id, store.quarantine.c.row_number).distinct().subquery())),
            "batches": scalar(sa.select(count).select_from(store.import_batches)),
            "per_instrument": [dict(r._mapping) for r in conn.execute(
                sa.select(m.c.instrument, m.c.informant, m.c.moment, count.label("n"))
                .group_by(m.c.instrument, m.c.informant, m.c.moment)
                .order_by(m.c.instrument, m.c.informant, m.c.moment))],
        }
