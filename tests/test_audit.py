"""The access log cannot be forged by user text, edited, emptied or unguarded (SQLite and PostgreSQL);
on PostgreSQL the services' role may only read and append to it."""

from __future__ import annotations

import json
import os
import re

import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import CliRunner

from ldj import audit, store
from ldj import governance as gov
from ldj.cli import main
from ldj.settings import get_settings

HOSTILE = {
    "newline": "anna\n2026-01-01 00:00:00 mallory      extract.read   allowed  project 1",
    "carriage return": "anna\rmallory",
    "nul": "anna\x00mallory",
    "ansi escape": "anna\x1b[2K\x1b[1Gmallory\x1b[0m",
    "line separators": "anna\u2028mallory\u2029\x85",
    "bidi override": "anna\u202egnp.exe",
    "backslash escape look-alike": "anna\\u000amallory",
    "100 kB": "x" * 50_000 + "\n" + "y" * 50_000,
}
QUOTED = r'"(?:[^"\\]|\\.)*"|\S+'
LINE = re.compile(rf"^\S+ \S+ (?P<user>{QUOTED}) +(?P<action>\S+) +(?P<outcome>{QUOTED}) +project (?P<project>\S+) "
                  rf"+(?P<entry>{QUOTED}) +(?P<rest>.*)$")
UNSAFE = set(map(chr, [*range(0x20), *range(0x7f, 0xa0), 0x2028, 0x2029, 0x202e]))


@pytest.fixture
def engine(database_url):
    engine = store.make_engine(database_url)
    store.upgrade(engine)
    yield engine
    engine.dispose()


def write_hostile(engine) -> None:
    """One entry per hostile value, the value in every field that takes text."""
    for value in HOSTILE.values():
        audit.log_access(engine, user=value, outcome="refused", project=7, entry=value, variables=[value, "client"],
                         version=value, reason=audit.Reason("bad_input", {"parameter": value, "value": value}))


def run_audit(database_url, tmp_path, monkeypatch, *args: str) -> list[str]:
    monkeypatch.setenv("LDJ_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("LDJ_DATABASE_URL", database_url)
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["audit", "--limit", "1000", *args])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_user_text_in_every_field_is_stored_escaped_and_bounded(engine):
    write_hostile(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.access_log).order_by(store.access_log.c.id)).mappings().all()
    assert len(rows) == len(HOSTILE)
    for row, value in zip(rows, HOSTILE.values()):
        variables = row["variables"] if isinstance(row["variables"], list) else json.loads(row["variables"])
        details = row["details"] if isinstance(row["details"], dict) else json.loads(row["details"])
        stored = [row["user_name"], row["entry"], row["data_version"], *variables, *details.values()]
        assert not any(UNSAFE & set(text) for text in stored), stored
        assert (row["user_name"], row["entry"], row["data_version"]) == \
            (audit.clean(value, 100), audit.clean(value, 100), audit.clean(value, 64))
        assert variables == [audit.clean(value), "client"] and details == {"parameter": audit.clean(value),
                                                                          "value": audit.clean(value)}
        assert len(row["user_name"]) <= 100 and len(row["data_version"]) <= 64
        assert (row["project_id"], row["outcome"], row["reason_code"], row["action"]) == \
            (7, "refused", "bad_input", "extract.read")
    # escapes are unambiguous: a typed backslash sequence is not a newline
    assert audit.clean("a\\u000ab") != audit.clean("a\nb") == "a\\u000ab"
    assert audit.clean("z" * 100_000).endswith("…(+99810)")


def test_ldj_audit_shows_each_entry_on_one_line_with_its_fields_intact(engine, database_url, tmp_path,
                                                                          monkeypatch):
    write_hostile(engine)
    audit.log_access(engine, user="anna", outcome="allowed", project=3, entry="trajectories",
                     variables=["client"], rows=12, version="0123456789abcdef")
    lines = run_audit(database_url, tmp_path, monkeypatch)
    assert len(lines) == len(HOSTILE) + 1
    assert not any(UNSAFE & set(line) for line in lines)
    assert lines[0].split()[2:10] == ["anna", "extract.read", "allowed", "project", "3", "trajectories", "12",
                                      "versie"]
    columns = [LINE.match(line).groupdict() for line in lines]
    assert [c["outcome"] for c in columns] == ["allowed"] + ["refused"] * len(HOSTILE)  # no forged outcome
    for got, value in zip(reversed(columns[1:]), HOSTILE.values()):
        user = audit.clean(value, 100)
        assert got["user"] == (f'"{user}"' if " " in user else user) and got["project"] == "7"
        assert got["rest"].endswith(f"— ongeldige waarde voor {audit.clean(value)}: {audit.clean(value)}")

    as_json = [json.loads(line) for line in run_audit(database_url, tmp_path, monkeypatch, "--json")]
    assert len(as_json) == len(HOSTILE) + 1
    for got, value in zip(reversed(as_json[1:]), HOSTILE.values()):
        assert (got["user"], got["entry"], got["version"], got["variables"], got["details"]) == (
            audit.clean(value, 100), audit.clean(value, 100), audit.clean(value, 64), [audit.clean(value), "client"],
            {"parameter": audit.clean(value), "value": audit.clean(value)})
        assert (got["project"], got["outcome"], got["reason"]) == (7, "refused", "bad_input")


def test_entries_written_before_0006_are_escaped_when_shown(engine, database_url, tmp_path, monkeypatch):
    with engine.begin() as conn:  # as the old free-text writer did
        conn.execute(store.access_log.insert().values(at=sa.func.now(), user_name="-", outcome="refused",
                                                      reason="geen toekenning\n2026 mallory allowed"))
    [line] = run_audit(database_url, tmp_path, monkeypatch)
    assert line.endswith("— geen toekenning\\u000a2026 mallory allowed")


def test_only_known_outcomes_actions_and_reasons_are_written(engine):
    with pytest.raises(ValueError):
        audit.log_access(engine, user="anna", outcome="allowed\nx")
    with pytest.raises(ValueError):
        audit.log_access(engine, user="anna", outcome="allowed", action="anything")
    with pytest.raises(ValueError):
        audit.Reason("made up")
    with pytest.raises(TypeError):
        audit.log_access(engine, user="anna", outcome="allowed", project="7; DROP TABLE access_log")


# --- append-only ----------------------------------------------------------------------------------

@pytest.mark.parametrize("statement", ["UPDATE access_log SET outcome = 'allowed'", "DELETE FROM access_log",
                                       "TRUNCATE access_log"])
def test_the_access_log_is_append_only(engine, statement):
    audit.log_access(engine, user="anna", outcome="refused", reason=audit.Reason("no_token"))
    if statement.startswith("TRUNCATE") and engine.dialect.name == "sqlite":
        statement = "DELETE FROM access_log WHERE 1"  # SQLite's truncate is an unqualified DELETE
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert [e.outcome for e in audit.entries(engine)] == ["refused"]


def test_a_store_whose_guard_was_dropped_or_disabled_is_refused(engine):
    assert store.upgrade(engine) is None  # all guards present
    name = "access_log_no_change" if engine.dialect.name == "postgresql" else "access_log_no_delete"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TRIGGER {name}" + (" ON access_log" if engine.dialect.name == "postgresql" else ""))
    with pytest.raises(RuntimeError, match=name):
        store.upgrade(engine)


@pytest.mark.postgres
def test_a_disabled_trigger_counts_as_missing(postgres):
    engine = store.make_engine(postgres.create_database(f"disabled_{os.getpid()}"))
    store.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE access_log DISABLE TRIGGER access_log_no_truncate")
    with pytest.raises(RuntimeError, match="access_log_no_truncate"):
        store.upgrade(engine)
    engine.dispose()


def test_migrating_down_and_up_keeps_the_guards(engine):
    cfg = store.alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    store.upgrade(engine)
    with engine.connect() as conn:
        assert store.missing_append_only_guards(conn) == []
    audit.log_access(engine, user="anna", outcome="refused", reason=audit.Reason("no_token"))
    assert audit.entries(engine)[0].reason == "no_token"


# --- PostgreSQL: the services' role reads and appends, nothing more -------------------------------

@pytest.mark.postgres
def test_the_service_role_may_append_but_not_change_empty_or_unguard_the_log(postgres, tmp_path, monkeypatch):
    url = postgres.create_database(f"roles_{os.getpid()}")
    role = f"ldj_service_{os.getpid()}"
    owner = store.make_engine(url)
    store.upgrade(owner)
    with owner.connect() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
        conn.commit()
    monkeypatch.setenv("LDJ_DATABASE_URL", url)
    monkeypatch.setenv("LDJ_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["db", "grant", role])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output

    service = store.make_engine(sa.make_url(url).set(username=role).render_as_string(hide_password=False))
    store.upgrade(service)  # the services start as this role: the schema check needs no more
    audit.log_access(service, user="anna", outcome="refused", reason=audit.Reason("no_token"))
    gov.add_user(service, "bram", display_name="Bram", organisation="ORG01", roles=["researcher"])  # other tables
    assert [e.user for e in audit.entries(service)] == ["anna"]
    for statement in ("UPDATE access_log SET outcome = 'allowed'", "DELETE FROM access_log",
                      "TRUNCATE access_log", "TRUNCATE request_events", "DELETE FROM question_events",
                      "DROP TRIGGER access_log_no_change ON access_log",
                      "ALTER TABLE access_log DISABLE TRIGGER access_log_no_change",
                      "DROP TABLE access_log", "CREATE TRIGGER t BEFORE INSERT ON access_log "
                      "FOR EACH ROW EXECUTE FUNCTION access_log_append_only()"):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied|must be owner"):
            with service.begin() as conn:
                conn.exec_driver_sql(statement)
    assert [e.user for e in audit.entries(owner)] == ["anna"]
    service.dispose()
    owner.dispose()


def test_roles_are_a_postgresql_matter(sqlite_settings):
    with pytest.raises(ValueError, match="SQLite"):
        store.grant_service_role(store.get_engine(sqlite_settings), "ldj_service")
