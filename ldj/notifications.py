"""Notifications: what a person should know since her last visit, shown on her start page.

A domain module adds one (`notify`) in its own transaction, with a kind from `KINDS` (its text in
`ldj.i18n`, formatted with the notification's details when it is shown, in the reader's language)
and a portal path to follow. A person reads only her own (`unread`, `mark_read`); the details are
plain values, never HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from . import policy
from .i18n import t
from .store import notifications

KINDS = {  # kind -> its text in ldj.i18n
    "release_decided": "nt_release_decided",
    "release_waiting": "nt_release_waiting",
    "question_answered": "nt_question_answered",
}
LINK_MAX = 200


@dataclass(frozen=True)
class Notification:
    id: int
    kind: str
    details: dict[str, Any]
    link: str | None
    created_at: datetime

    def text(self, language: str | None = None) -> str:
        """The text in `language`; a detail `{"text": key}` is itself a text, translated when read."""
        details = {k: t(v["text"], language) if isinstance(v, dict) else v for k, v in self.details.items()}
        return t(KINDS[self.kind], language, **details)


def notify(conn: sa.Connection, user_name: str, kind: str, link: str | None = None, **details: Any) -> None:
    """Tell `user_name` (in the caller's transaction). `link`: a portal path such as `/vraagbank?vraag=3`."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}: add it to ldj.notifications.KINDS and ldj.i18n")
    if link is not None and (not link.startswith("/") or link.startswith("//") or len(link) > LINK_MAX):
        raise ValueError(f"a notification links to a portal path, not {link!r}")
    conn.execute(notifications.insert().values(user_name=user_name, kind=kind, details=details, link=link,
                                               created_at=datetime.now(UTC)))


def unread(engine: sa.Engine, reader: policy.Actor | str, limit: int = 20) -> list[Notification]:
    """The reader's unread notifications, newest first."""
    actor = policy.actor_of(engine, reader)
    policy.check(actor, "notification.read")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(notifications).where(
            notifications.c.user_name == actor.name, notifications.c.read_at.is_(None))
            .order_by(notifications.c.id.desc()).limit(limit)).all()
    return [Notification(r.id, r.kind, dict(r.details), r.link,
                         r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=UTC)) for r in rows]


def mark_read(engine: sa.Engine, reader: policy.Actor | str, ids: list[int] | None = None) -> int:
    """Mark the reader's own notifications read (`ids`: these; None: all); returns how many."""
    actor = policy.actor_of(engine, reader)
    policy.check(actor, "notification.read")
    query = sa.update(notifications).where(notifications.c.user_name == actor.name,
                                           notifications.c.read_at.is_(None))
    if ids is not None:
        query = query.where(notifications.c.id.in_(ids))
    with engine.begin() as conn:
        return conn.execute(query.values(read_at=datetime.now(UTC))).rowcount
