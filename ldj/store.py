"""The LDJ store: schema (SQLAlchemy Core), engine, migrations, and the research-usable views.

Keys are pseudonyms (strings), not surrogate integers, so files can arrive in any order and a
re-delivery lands on the same rows. Alembic migrations in `ldj/migrations` create and evolve the
schema; `tests/test_store.py` checks that the migrated schema equals this metadata.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from .settings import Settings, get_settings

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
PSEUDONYM = sa.String(32)

metadata = sa.MetaData()

organisations = sa.Table(
    "organisations", metadata,
    sa.Column("code", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200)),
)

teams = sa.Table(
    "teams", metadata,
    sa.Column("organisation", sa.String(32), sa.ForeignKey("organisations.code"), primary_key=True),
    sa.Column("code", sa.String(200), primary_key=True),
)

import_batches = sa.Table(
    "import_batches", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False),  # a file kind (catalog/delivery.yaml), an instrument's code
    sa.Column("organisation", sa.String(32)),
    sa.Column("period", sa.String(16)),
    sa.Column("file_name", sa.String(500), nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False, index=True),  # sha256 of the file bytes
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("delivered_by", sa.String(200)),
    sa.Column("imported_by", sa.String(200)),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("status", sa.String(16), nullable=False),  # loaded | replaced | rejected
    sa.Column("replaced_by", sa.Integer, sa.ForeignKey("import_batches.id")),
    sa.Column("rows_total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_loaded", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_quarantined", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_replaced", sa.Integer, nullable=False, server_default="0"),
    sa.Column("report", JSON),
    sa.Column("error", sa.Text),
    sa.Index("ix_import_batches_key", "organisation", "kind", "period"),
)

clients = sa.Table(
    "clients", metadata,
    sa.Column("pseudonym", PSEUDONYM, primary_key=True),
    sa.Column("organisation", sa.String(32), nullable=False, index=True),
    sa.Column("gender", sa.String(16)),
    sa.Column("lvb", sa.Boolean),
    sa.Column("objection", sa.Boolean, nullable=False),
    sa.Column("legal_basis", sa.String(200)),
    sa.Column("batch_id", sa.Integer, sa.ForeignKey("import_batches.id"), nullable=False, index=True),
)

professionals = sa.Table(
    "professionals", metadata,
    sa.Column("pseudonym", PSEUDONYM, primary_key=True),
    sa.Column("organisation", sa.String(32), nullable=False),
    sa.Column("discipline", sa.String(200)),
    sa.Column("experience_years", sa.Integer),
    sa.Column("batch_id", sa.Integer, sa.ForeignKey("import_batches.id"), nullable=False, index=True),
)

trajectories = sa.Table(
    "trajectories", metadata,
    sa.Column("pseudonym", PSEUDONYM, primary_key=True),
    sa.Column("client", PSEUDONYM, nullable=False, index=True),
    sa.Column("organisation", sa.String(32), nullable=False, index=True),
    sa.Column("team", sa.String(200)),
    sa.Column("professional", PSEUDONYM),
    sa.Column("intervention", sa.String(64), nullable=False, index=True),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date),
    sa.Column("end_reason", sa.String(32)),
    sa.Column("age_at_start", sa.Integer),
    sa.Column("diagnosis", sa.String(200)),
    sa.Column("techniques", JSON),
    sa.Column("context", sa.Text),
    sa.Column("outcomes", JSON),  # registered non-questionnaire outcomes, e.g. {"breakdown": false}
    sa.Column("remarks", sa.Text),
    sa.Column("batch_id", sa.Integer, sa.ForeignKey("import_batches.id"), nullable=False, index=True),
)

measurements = sa.Table(
    "measurements", metadata,
    sa.Column("pseudonym", PSEUDONYM, primary_key=True),  # of the administration id
    sa.Column("client", PSEUDONYM, nullable=False, index=True),
    sa.Column("trajectory", PSEUDONYM, nullable=False, index=True),
    sa.Column("organisation", sa.String(32), nullable=False),
    sa.Column("instrument", sa.String(64), nullable=False),
    sa.Column("informant", sa.String(16), nullable=False),
    sa.Column("moment", sa.String(16), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("items", JSON),  # {"1": 2, "2": null, ...} where delivered at item level
    sa.Column("scores", JSON, nullable=False),  # {"total_problems": {"raw": 41, "t": 66, "band": "clinical"}}
    sa.Column("free_text", JSON),  # screened free text, never exported without review
    sa.Column("batch_id", sa.Integer, sa.ForeignKey("import_batches.id"), nullable=False, index=True),
    sa.Index("ix_measurements_instrument_moment", "instrument", "informant", "moment"),
    sa.Index("ix_measurements_organisation_instrument", "organisation", "instrument"),
)

records = sa.Table(  # rows of a delivery file kind declared with `load: records` (catalog/delivery.yaml)
    "records", metadata,
    sa.Column("pseudonym", PSEUDONYM, primary_key=True),  # of the kind's key, keyed with the kind's name
    sa.Column("kind", sa.String(64), nullable=False, index=True),
    sa.Column("client", PSEUDONYM, nullable=False, index=True),
    sa.Column("trajectory", PSEUDONYM, nullable=False, index=True),
    sa.Column("organisation", sa.String(32), nullable=False),
    sa.Column("values", JSON, nullable=False),  # the typed row: identifiers pseudonymised, free text screened
    sa.Column("batch_id", sa.Integer, sa.ForeignKey("import_batches.id"), nullable=False, index=True),
)

quarantine = sa.Table(
    "quarantine", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.Integer, sa.ForeignKey("import_batches.id"), nullable=False, index=True),
    sa.Column("file_name", sa.String(500), nullable=False),
    sa.Column("row_number", sa.Integer, nullable=False),  # 1-based data row in the file (header excluded)
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("column", sa.String(100)),
    sa.Column("value", sa.Text),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("row", JSON),  # the row as delivered, identifiers pseudonymised and free text screened
)

# --- governance: accounts, APO data requests, projects, grants, access audit -----------------

users = sa.Table(
    "users", metadata,
    sa.Column("name", sa.String(100), primary_key=True),  # the login name, also the hub's user name
    sa.Column("display_name", sa.String(200)),
    sa.Column("email", sa.String(200)),
    sa.Column("organisation", sa.String(200)),  # an SEJN member's code, or an external institute's name
    sa.Column("roles", JSON, nullable=False),  # ["researcher", "apo", "steward", "member"]
    sa.Column("password_hash", sa.String(200)),  # embedded default only; production logs in through OIDC
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # the person shows their name to everyone; else others outside their projects see role and organisation
    sa.Column("show_name", sa.Boolean, nullable=False, server_default=sa.false()),
)

data_requests = sa.Table(
    "data_requests", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # new | amendment
    sa.Column("project_id", sa.Integer, index=True),  # an amendment's project (no FK: projects refer back)
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("applicant", sa.String(100), sa.ForeignKey("users.name"), nullable=False),
    sa.Column("applicant_organisation", sa.String(200), nullable=False),
    sa.Column("sejn_member", sa.Boolean, nullable=False),
    sa.Column("fee_eur", sa.Numeric(10, 2)),  # external applicants pay a fee
    sa.Column("criteria", JSON, nullable=False),  # the six APO criteria, the applicant's answers
    sa.Column("access_from", sa.Date),
    sa.Column("access_until", sa.Date),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("decision", sa.String(32)),
    sa.Column("conditions", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

request_entries = sa.Table(
    "request_entries", metadata,
    sa.Column("request_id", sa.Integer, sa.ForeignKey("data_requests.id"), primary_key=True),
    sa.Column("entry", sa.String(100), primary_key=True),
    sa.Column("variables", JSON, nullable=False),
)

request_members = sa.Table(
    "request_members", metadata,
    sa.Column("request_id", sa.Integer, sa.ForeignKey("data_requests.id"), primary_key=True),
    sa.Column("user_name", sa.String(100), sa.ForeignKey("users.name"), primary_key=True),
)

reviews = sa.Table(
    "reviews", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("data_requests.id"), nullable=False, index=True),
    sa.Column("round", sa.Integer, nullable=False),  # a revised request is reviewed again
    sa.Column("reviewer", sa.String(100), sa.ForeignKey("users.name"), nullable=False),
    sa.Column("scores", JSON, nullable=False),  # {"1": 4, ..., "6": 3}
    sa.Column("comments", JSON, nullable=False),  # {"1": "...", ...}
    sa.Column("vote", sa.String(32)),  # None when the reviewer has a conflict of interest
    sa.Column("comment", sa.Text),
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("request_id", "round", "reviewer"),
)

request_events = sa.Table(
    "request_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("data_requests.id"), nullable=False, index=True),
    sa.Column("from_status", sa.String(32)),
    sa.Column("to_status", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text),
)

projects = sa.Table(
    "projects", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("data_requests.id"), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # active | closed
    sa.Column("starts", sa.Date, nullable=False),
    sa.Column("ends", sa.Date, nullable=False),
    sa.Column("salt", sa.String(64), nullable=False),  # per-project pseudonyms
    sa.Column("final_report", sa.Text),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
)

grants = sa.Table(
    "grants", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
    sa.Column("user_name", sa.String(100), sa.ForeignKey("users.name"), nullable=False, index=True),
    sa.Column("entry", sa.String(100), nullable=False),
    sa.Column("variables", JSON, nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date, nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_by", sa.String(100)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

access_log = sa.Table(  # append-only (triggers, migrations 0002 and 0006); written by ldj.audit only
    "access_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("user_name", sa.String(100), nullable=False, index=True),
    sa.Column("project_id", sa.Integer),
    sa.Column("entry", sa.String(100)),
    sa.Column("variables", JSON),
    sa.Column("rows", sa.Integer),
    sa.Column("data_version", sa.String(64)),
    sa.Column("outcome", sa.String(16), nullable=False),  # ldj.audit.OUTCOMES
    sa.Column("reason", sa.Text),  # free text of entries before migration 0006; no longer written
    sa.Column("action", sa.String(32)),  # ldj.audit.ACTIONS (migration 0006)
    sa.Column("reason_code", sa.String(48)),  # ldj.audit.REASONS (migration 0006)
    sa.Column("details", JSON),  # the reason's fields, normalised (migration 0006)
)

# Tables whose rows are never changed or removed, and the triggers that make it so: per dialect,
# the trigger names each must have (migrations 0002, 0003 and 0006). `upgrade` checks them.
APPEND_ONLY = ("access_log", "request_events", "question_events", "release_events", "release_reviews")
APPEND_ONLY_TRIGGERS = {"sqlite": ("{table}_no_update", "{table}_no_delete"),
                        "postgresql": ("{table}_no_change", "{table}_no_truncate")}

extracts = sa.Table(
    "extracts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("entry", sa.String(100), nullable=False),
    sa.Column("variables", JSON, nullable=False),
    sa.Column("data_version", sa.String(64), nullable=False),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("removed_at", sa.DateTime(timezone=True)),  # the file was removed by retention (migration 0004)
    sa.Index("ix_extracts_lookup", "project_id", "entry", "data_version"),
)

# --- the Vraagbank: practitioners' questions, triage, votes, comments, pick-ups (migration 0003) ---

questions = sa.Table(
    "questions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # Markdown as typed; sanitised when rendered (ldj.markup)
    sa.Column("category", sa.String(16), nullable=False),  # target_group | approach | outcome
    sa.Column("asker", sa.String(100), sa.ForeignKey("users.name"), nullable=False, index=True),
    sa.Column("asker_organisation", sa.String(200)),
    sa.Column("status", sa.String(16), nullable=False, index=True),  # ldj.vraagbank.STATUSES
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True)),
    sa.Column("merged_into", sa.Integer, sa.ForeignKey("questions.id")),
    sa.Column("decline_reason", sa.Text),
    sa.Column("answer_summary", sa.Text),  # Markdown
    sa.Column("answer_url", sa.String(500)),
    sa.Column("answered_by", sa.String(100)),
    sa.Column("answered_at", sa.DateTime(timezone=True)),
)

question_tags = sa.Table(
    "question_tags", metadata,
    sa.Column("question_id", sa.Integer, sa.ForeignKey("questions.id"), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),  # instrument | intervention | age_group
    sa.Column("value", sa.String(64), primary_key=True),  # a code from the catalogue's data files
    sa.Index("ix_question_tags_kind_value", "kind", "value"),
)

question_votes = sa.Table(  # "ik wil dit ook weten": one per user per question
    "question_votes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("question_id", sa.Integer, sa.ForeignKey("questions.id"), nullable=False, index=True),
    sa.Column("user_name", sa.String(100), sa.ForeignKey("users.name"), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("carried_from", sa.Integer, sa.ForeignKey("questions.id")),  # the merged duplicate it came from
    sa.UniqueConstraint("question_id", "user_name"),
)

question_comments = sa.Table(
    "question_comments", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("question_id", sa.Integer, sa.ForeignKey("questions.id"), nullable=False, index=True),
    sa.Column("author", sa.String(100), sa.ForeignKey("users.name"), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # Markdown
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("hidden_at", sa.DateTime(timezone=True)),  # moderated by a steward; kept, not shown
    sa.Column("hidden_by", sa.String(100)),
)

question_pickups = sa.Table(
    "question_pickups", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("question_id", sa.Integer, sa.ForeignKey("questions.id"), nullable=False, index=True),
    sa.Column("picked_by", sa.String(100), sa.ForeignKey("users.name"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # student | researcher
    sa.Column("institution", sa.String(200), nullable=False),
    sa.Column("supervisor", sa.String(200)),
    sa.Column("planned_from", sa.Date, nullable=False),
    sa.Column("planned_until", sa.Date, nullable=False),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("data_requests.id")),  # the APO data request, once there
    sa.Column("entries", JSON, nullable=False),  # catalogue entries the project could use
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("withdrawn_at", sa.DateTime(timezone=True)),
)

studies = sa.Table(  # the research registry: member research beside the LDJ projects (migration 0005)
    "studies", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("organisation", sa.String(200), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),  # Markdown, as typed
    sa.Column("starts", sa.Date, nullable=False),
    sa.Column("ends", sa.Date),
    sa.Column("url", sa.String(500)),
    sa.Column("registered_by", sa.String(100), sa.ForeignKey("users.name"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("result", sa.Text),  # what it found, for practice (Markdown); set when finished
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("removed_at", sa.DateTime(timezone=True)),
)

question_events = sa.Table(  # append-only: triggers refuse UPDATE and DELETE (migration 0003)
    "question_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("question_id", sa.Integer, sa.ForeignKey("questions.id"), nullable=False, index=True),
    sa.Column("from_status", sa.String(16)),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text),
)

releases = sa.Table(  # the airlock: a release request of a project's checked outputs (ldj.airlock, migration 0008)
    "releases", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
    sa.Column("author", sa.String(100), sa.ForeignKey("users.name"), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),  # what the outputs show, for the checkers
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

release_files = sa.Table(  # one output of a release: the file kept in the data folder, its automatic findings
    "release_files", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False, index=True),
    sa.Column("output", sa.String(64), nullable=False),  # the ldj.safe output's name
    sa.Column("kind", sa.String(16), nullable=False),  # table | regression | histogram | custom
    sa.Column("file", sa.String(80), nullable=False),  # the file's name in the release folder
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # pass | fail | review, as re-checked at submission
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("comments", sa.Text),  # the researcher's comments and exception, as typed
    sa.Column("exception", sa.Text),
    sa.Column("public", sa.Boolean, nullable=False, server_default=sa.false()),  # the author offers it publicly (0009)
    sa.UniqueConstraint("release_id", "file"),
)

release_reviewers = sa.Table(  # the two output checkers who took a release request (migration 0009)
    "release_reviewers", metadata,
    sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), primary_key=True),
    sa.Column("reviewer", sa.String(100), sa.ForeignKey("users.name"), primary_key=True),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
)

release_reviews = sa.Table(  # append-only: each verdict on a file as it was (its sha256); the latest counts
    "release_reviews", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False, index=True),
    sa.Column("file", sa.String(80), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),  # the file reviewed: a changed file has no reviews yet
    sa.Column("reviewer", sa.String(100), sa.ForeignKey("users.name"), nullable=False),
    sa.Column("verdict", sa.String(8), nullable=False),  # approve | changes | reject
    sa.Column("public", sa.Boolean, nullable=False),  # the checker agrees the file may be public
    sa.Column("comment", sa.Text),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

notifications = sa.Table(  # what a person should know since her last visit (ldj.notifications, migration 0009)
    "notifications", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_name", sa.String(100), sa.ForeignKey("users.name"), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),  # ldj.notifications.KINDS: its text
    sa.Column("details", JSON, nullable=False),  # the text's fields
    sa.Column("link", sa.String(200)),  # a portal path, e.g. /vraagbank?vraag=3
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("read_at", sa.DateTime(timezone=True)),
)

release_events = sa.Table(  # append-only: triggers refuse UPDATE and DELETE (migration 0008)
    "release_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False, index=True),
    sa.Column("from_status", sa.String(16)),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text),
)



# Research-usable rows: the views research_clients / research_trajectories /
# research_measurements / research_records (created by the migrations) leave out objecting clients and clients whose
# objection status is not known yet. Every research-facing query reads them, never the base tables.


def research_usable(name: str) -> sa.TableClause:
    """A selectable over research-usable rows: `clients`, `trajectories`, `measurements` or `records`."""
    base = metadata.tables[name]
    return sa.table(f"research_{name}", *(sa.column(c.name, c.type) for c in base.columns))


def data_version(engine: sa.Engine) -> tuple[str, list[int]]:
    """The store's data version: a digest of the loaded import batches, and their ids.

    Extracts and entry snapshots are pinned to it, so an analysis can be repeated on the same data.
    """
    with engine.connect() as conn:
        ids = conn.execute(sa.select(import_batches.c.id).where(import_batches.c.status == "loaded")
                           .order_by(import_batches.c.id)).scalars().all()
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16], list(ids)


# --- engine and migrations ------------------------------------------------------------------

def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA cache_size=-131072")  # 128 MB page cache: index inserts stay in memory
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


@lru_cache(maxsize=8)
def _engine_for(url: str) -> sa.Engine:
    engine = make_engine(url)
    upgrade(engine)
    return engine


def get_engine(settings: Settings | None = None) -> sa.Engine:
    """The store's engine, migrated to the newest schema on first use."""
    settings = settings or get_settings()
    return _engine_for(settings.resolved_database_url)


def alembic_config(engine: sa.Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Migrate to `revision`; at the head, refuse to go on when an append-only guard is missing, so
    a migration (or anyone) that dropped or disabled one cannot do so silently."""
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        missing = missing_append_only_guards(conn) if revision == "head" else []
    if missing:
        raise RuntimeError("append-only guards missing or disabled: " + ", ".join(missing)
                           + "; the audit tables are not protected. Restore the triggers (see ldj/migrations/"
                           "versions/0006_structured_audit.py) before the store is used.")


def missing_append_only_guards(conn: sa.Connection) -> list[str]:
    """The append-only triggers that should exist, are enabled, and do not."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        present = set(conn.exec_driver_sql(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D'").scalars())
    else:
        present = set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars())
    wanted = APPEND_ONLY_TRIGGERS.get(dialect, APPEND_ONLY_TRIGGERS["sqlite"])
    return [name.format(table=table) for table in APPEND_ONLY for name in wanted
            if name.format(table=table) not in present]


SERVICE_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
APPEND_ONLY_PRIVILEGES = "SELECT, INSERT"


def grant_service_role(engine: sa.Engine, role: str) -> None:
    """PostgreSQL: let `role` (what the hub, portal, data service and `ldj ingest` connect as) use the
    store without owning it: read and write the ordinary tables, only read and append to the
    append-only ones (no UPDATE, DELETE, TRUNCATE, TRIGGER), use the sequences. Not owning the
    tables, it cannot drop or disable their triggers either. Run as the owner, after `ldj db upgrade`."""
    if engine.dialect.name != "postgresql":
        raise ValueError("roles and privileges are a PostgreSQL matter; on SQLite the file belongs to the "
                         "service account")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError(f"invalid role name {role!r}: lower-case letters, digits and _")
    with engine.begin() as conn:
        tables = [t for t in conn.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").scalars()]
        views = list(conn.exec_driver_sql(
            "SELECT viewname FROM pg_views WHERE schemaname = current_schema()").scalars())
        for table in tables:
            conn.exec_driver_sql(f'REVOKE ALL ON TABLE "{table}" FROM "{role}"')
            privileges = APPEND_ONLY_PRIVILEGES if table in APPEND_ONLY else SERVICE_TABLE_PRIVILEGES
            if table == "alembic_version":
                privileges = "SELECT"
            conn.exec_driver_sql(f'GRANT {privileges} ON TABLE "{table}" TO "{role}"')
        for view in views:
            conn.exec_driver_sql(f'GRANT SELECT ON TABLE "{view}" TO "{role}"')
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
        conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        for sequence in conn.exec_driver_sql(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()").scalars():
            conn.exec_driver_sql(f'GRANT USAGE, SELECT ON SEQUENCE "{sequence}" TO "{role}"')
