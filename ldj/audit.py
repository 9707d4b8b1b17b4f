"""The access log: one structured entry per access to person-level data, that user text cannot forge.

Every read through the data service (allowed or refused), every release request it refused (a
workspace's upload: `release.submit`), every workspace the lifecycle service stops, every extract file removed (a project ended, a client objected) and every event of a
workflow (`ldj.workflow`: a data request, a Vraagbank question or a release moved, created or
noted) is one row of the append-only `access_log` table, in the spirit of NEN 7513: who, which
data, when, for which project, the outcome, and why — the why as a reason *code* with typed
fields, never free text (a field may hold text someone typed, such as a workflow comment: it is
normalised like every other value).

Values that came from a request (a user name, a query argument, a path part) are normalised before
they are stored: control characters, Unicode line and paragraph separators and invisible format
characters are written as `\\uXXXX` escapes (a backslash as `\\\\`), and every value is cut to a
bounded length with the number of characters left off. A stored value is therefore always one line
of visible text, and `ldj audit` prints each entry on one line. Reading escapes again, for rows
written before this (migration 0006).

The table is append-only: triggers refuse UPDATE, DELETE and (PostgreSQL) TRUNCATE, and
`ldj.store.upgrade` refuses to run on without them. On PostgreSQL the services connect as a role
that may only SELECT and INSERT here (`ldj db grant`), so only the table's owner could remove the
triggers; on SQLite the database file belongs to the service account.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from . import store
from .i18n import TEXTS
from .settings import get_settings

ACTIONS = ("extract.read", "workspace.stop", "extract.remove", "workflow.event", "release.submit", "release.download")
OUTCOMES = ("allowed", "refused", "stopped", "removed", "recorded")
REASONS = (  # each has its text in ldj.i18n as `audit_<code>`, formatted with the entry's fields
    "no_token", "bad_input", "unknown_entry", "unknown_variables", "version_unavailable", "no_grant",
    "grant_revoked", "project_closed", "grant_expired", "account_inactive", "variables_not_granted", "refused",
    "no_active_grant", "project_ended", "objection",
    "transition", "created", "note",  # a workflow's events (ldj.workflow)
    "release_file",  # a released file downloaded (ldj.airlock)
    "too_large", "bad_release",  # a release request the data service did not take (ldj.dataservice)
)

MAX_CHARS = 200  # longest value a field keeps (escapes included); the rest is cut, and counted
MAX_ITEMS = 50  # most list items (variables) an entry keeps
# control characters, line and paragraph separators, invisible format characters (bidi overrides), surrogates
_INVISIBLE = r"\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff"
_UNSAFE = re.compile(rf"[\\{_INVISIBLE}]")
_UNSAFE_ON_SCREEN = re.compile(rf"[{_INVISIBLE}]")


def _escape(char: str) -> str:
    return "\\\\" if char == "\\" else f"\\u{ord(char):04x}"


def clean(value: Any, limit: int = MAX_CHARS) -> str:
    """`value` as one line of visible text of at most `limit` characters (see the module's doc)."""
    text = value if isinstance(value, str) else str(value)
    head = text[:limit]
    escaped = _UNSAFE.sub(lambda m: _escape(m.group()), head)
    if len(text) <= limit and len(escaped) <= limit:
        return escaped
    room = limit - len(f"…(+{len(text)})")  # the longest marker this value can need
    out, used, taken = [], 0, 0
    for char in head:
        piece = _escape(char) if _UNSAFE.match(char) else char
        if used + len(piece) > room:
            break
        out.append(piece)
        used += len(piece)
        taken += 1
    return "".join(out) + f"…(+{len(text) - taken})"


def _display(value: Any, limit: int = 4 * MAX_CHARS) -> str:
    """A stored value for the screen: escapes what is unsafe (again), keeps backslashes as stored."""
    text = "" if value is None else str(value)
    text = text if len(text) <= limit else text[:limit] + f"…(+{len(text) - limit})"
    return _UNSAFE_ON_SCREEN.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _field(value: Any) -> str:
    """A value as one column of a line: escaped, and in double quotes when it holds a space or a quote,
    so a value cannot pass for the next column."""
    text = _display(value)
    return f'"{text.replace(chr(34), chr(92) + chr(34))}"' if not text or re.search(r'[\s"]', text) else text


def _clean_field(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        items = [clean(v) for v in list(value)[:MAX_ITEMS]]
        return items + ([f"…(+{len(value) - MAX_ITEMS})"] if len(value) > MAX_ITEMS else [])
    return clean(value)


@dataclass(frozen=True)
class Reason:
    """Why: a code from `REASONS` and its fields (plain values, normalised when stored)."""

    code: str
    fields: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in REASONS:
            raise ValueError(f"unknown access-log reason {self.code!r}: add it to ldj.audit.REASONS and ldj.i18n")

    def text(self, language: str | None = None) -> str:
        return reason_text(self.code, self.fields, language)


def reason_text(code: str | None, fields: dict | None, language: str | None = None) -> str:
    """The reason in words, its fields filled in (as stored: already normalised)."""
    if not code:
        return ""
    values = defaultdict(lambda: "-", {k: ", ".join(map(str, v)) if isinstance(v, list) else v
                                       for k, v in (fields or {}).items()})
    nl, en = TEXTS.get(f"audit_{code}", (code, code))
    return (en if (language or get_settings().language) == "en" else nl).format_map(values)


def log_access(engine: sa.Engine | sa.Connection, *, user: str | None, outcome: str, action: str = "extract.read",
               project: int | None = None, entry: str | None = None, variables: list[str] | None = None,
               rows: int | None = None, version: str | None = None, reason: Reason | None = None) -> None:
    """Append one entry. Only `outcome`, `action` and the reason's code are trusted (checked against
    their lists); every other text is normalised and bounded, whoever supplied it. Given a connection,
    the entry is written in its transaction (it lands with what it records, or not at all)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown access-log outcome {outcome!r}")
    if action not in ACTIONS:
        raise ValueError(f"unknown access-log action {action!r}")
    if project is not None and (not isinstance(project, int) or isinstance(project, bool)):
        raise TypeError(f"project must be an int, not {type(project).__name__}")
    if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool)):
        raise TypeError(f"rows must be an int, not {type(rows).__name__}")
    details = {clean(k, 40): _clean_field(v) for k, v in (reason.fields if reason else {}).items()}
    insert = store.access_log.insert().values(
        at=datetime.now(timezone.utc), user_name=clean(user or "-", 100), action=action, outcome=outcome,
        project_id=project, entry=None if entry is None else clean(entry, 100),
        variables=None if variables is None else _clean_field(variables), rows=rows,
        data_version=None if version is None else clean(version, 64),
        reason_code=reason.code if reason else None, details=details or None)
    if isinstance(engine, sa.Connection):
        engine.execute(insert)
        return
    with engine.begin() as conn:
        conn.execute(insert)


# --- reading -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime
    user: str
    action: str | None
    outcome: str
    project: int | None
    entry: str | None
    variables: list[str] | None
    rows: int | None
    version: str | None
    reason: str | None  # the code; None for entries written before migration 0006
    details: dict[str, Any]
    legacy_reason: str | None  # the free text of entries written before migration 0006

    def message(self, language: str | None = None) -> str:
        if self.reason:
            return reason_text(self.reason, self.details, language)
        return self.legacy_reason or ""

    def to_json(self, language: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(timespec="seconds"), "user": self.user,
                "action": self.action, "outcome": self.outcome, "project": self.project, "entry": self.entry,
                "variables": self.variables, "rows": self.rows, "version": self.version, "reason": self.reason,
                "details": self.details, "message": self.message(language)}

    def line(self, language: str | None = None) -> str:
        """The entry as one line of text; every value from a request is escaped (`_display`)."""
        parts = [f"{self.at:%Y-%m-%d %H:%M:%S}", f"{_field(self.user):<12}", f"{self.action or '-':<14}",
                 f"{_field(self.outcome):<8}", f"project {self.project if self.project is not None else '-':<4}",
                 f"{_field(self.entry or '-'):<22}", f"{self.rows if self.rows is not None else '':>7}"]
        if self.version:
            parts.append(f"versie {_field(self.version)}")
        if self.variables:
            parts.append(_field(",".join(map(str, self.variables))))
        message = self.message(language)
        if message:
            parts.append(f"— {_display(message)}")
        return " ".join(parts)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def entries(engine: sa.Engine, *, user: str | None = None, project: int | None = None, outcome: str | None = None,
            limit: int = 50) -> list[Entry]:
    """The newest entries first, optionally of one user, project or outcome."""
    log = store.access_log
    stmt = sa.select(log).order_by(log.c.id.desc()).limit(limit)
    for column, value in ((log.c.user_name, user), (log.c.project_id, project), (log.c.outcome, outcome)):
        if value is not None:
            stmt = stmt.where(column == value)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [Entry(r["id"], r["at"], r["user_name"], r["action"], r["outcome"], r["project_id"], r["entry"],
                  _json(r["variables"]), r["rows"], r["data_version"], r["reason_code"], _json(r["details"]) or {},
                  r["reason"]) for r in rows]
