"""ldj/settings.py: defaults, environment overrides, the TOML settings file and its precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ldj.settings import REPO_ROOT, Settings


@pytest.fixture(autouse=True)
def _empty_workdir(tmp_path, monkeypatch):
    """Run in an empty folder, so no ldj.toml of the developer is picked up."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_defaults(_empty_workdir):
    s = Settings()
    assert s.data_dir == Path("var")
    assert s.database_url is None
    assert s.resolved_database_url == f"sqlite:///{(_empty_workdir / 'var' / 'ldj.sqlite').resolve()}"
    assert s.resolved_key_file == Path("var") / "pseudonym.key"
    assert s.catalog_dir == REPO_ROOT / "catalog"
    assert s.expectations_dir == REPO_ROOT / "expectations"
    assert s.language == "nl"
    assert s.ingest_chunk_rows == 50_000
    assert s.progress == "auto"


def test_data_dir_from_environment_moves_store_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv("LDJ_DATA_DIR", str(tmp_path / "data"))
    s = Settings()
    assert s.data_dir == tmp_path / "data"
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'data' / 'ldj.sqlite').resolve()}"
    assert s.resolved_key_file == tmp_path / "data" / "pseudonym.key"


def test_database_url_and_key_file_from_environment(tmp_path, monkeypatch):
    url = "postgresql+psycopg://ldj:secret@db.example/ldj"
    monkeypatch.setenv("LDJ_DATABASE_URL", url)
    monkeypatch.setenv("LDJ_PSEUDONYM_KEY_FILE", str(tmp_path / "keys" / "ldj.key"))
    s = Settings()
    assert s.resolved_database_url == url
    assert s.resolved_key_file == tmp_path / "keys" / "ldj.key"


def test_chunk_rows_from_environment_is_an_integer(monkeypatch):
    monkeypatch.setenv("LDJ_INGEST_CHUNK_ROWS", "2500")
    assert Settings().ingest_chunk_rows == 2500
    monkeypatch.setenv("LDJ_INGEST_CHUNK_ROWS", "veel")
    with pytest.raises(ValidationError, match="ingest_chunk_rows"):
        Settings()


def test_environment_names_are_case_insensitive(monkeypatch):
    monkeypatch.setenv("ldj_language", "en")
    assert Settings().language == "en"


def test_settings_file_is_read(tmp_path, monkeypatch):
    toml = tmp_path / "conf" / "portal.toml"
    toml.parent.mkdir()
    toml.write_text(f'data_dir = "{tmp_path / "from-file"}"\ningest_chunk_rows = 5000\nlanguage = "en"\n')
    monkeypatch.setenv("LDJ_SETTINGS_FILE", str(toml))
    s = Settings()
    assert s.data_dir == tmp_path / "from-file"
    assert s.ingest_chunk_rows == 5000
    assert s.language == "en"
    assert s.resolved_key_file == tmp_path / "from-file" / "pseudonym.key"


def test_ldj_toml_in_the_working_directory_is_the_default_file(_empty_workdir):
    (_empty_workdir / "ldj.toml").write_text('ingest_chunk_rows = 1234\nprogress = "never"\n')
    s = Settings()
    assert s.ingest_chunk_rows == 1234
    assert s.progress == "never"


def test_environment_beats_settings_file(tmp_path, monkeypatch):
    toml = tmp_path / "ldj-settings.toml"
    toml.write_text('ingest_chunk_rows = 5000\nlanguage = "en"\n')
    monkeypatch.setenv("LDJ_SETTINGS_FILE", str(toml))
    monkeypatch.setenv("LDJ_INGEST_CHUNK_ROWS", "7")
    s = Settings()
    assert s.ingest_chunk_rows == 7  # environment
    assert s.language == "en"  # file, not overridden


def test_explicit_arguments_beat_environment_and_file(tmp_path, monkeypatch):
    toml = tmp_path / "ldj-settings.toml"
    toml.write_text("ingest_chunk_rows = 5000\n")
    monkeypatch.setenv("LDJ_SETTINGS_FILE", str(toml))
    monkeypatch.setenv("LDJ_INGEST_CHUNK_ROWS", "7")
    assert Settings(ingest_chunk_rows=3).ingest_chunk_rows == 3


def test_missing_settings_file_is_optional(tmp_path, monkeypatch):
    monkeypatch.setenv("LDJ_SETTINGS_FILE", str(tmp_path / "does-not-exist.toml"))
    assert Settings().ingest_chunk_rows == 50_000


def test_unknown_key_in_settings_file_is_refused(tmp_path, monkeypatch):
    toml = tmp_path / "ldj-settings.toml"
    toml.write_text('data_dir = "var"\nchunk_rows = 5000\n')  # a typo of ingest_chunk_rows
    monkeypatch.setenv("LDJ_SETTINGS_FILE", str(toml))
    with pytest.raises(ValidationError, match="chunk_rows"):
        Settings()


def test_wrong_type_in_settings_file_is_refused(tmp_path, monkeypatch):
    toml = tmp_path / "ldj-settings.toml"
    toml.write_text('ingest_chunk_rows = "veel"\n')
    monkeypatch.setenv("LDJ_SETTINGS_FILE", str(toml))
    with pytest.raises(ValidationError, match="ingest_chunk_rows"):
        Settings()


def test_unknown_keyword_argument_is_refused():
    with pytest.raises(ValidationError, match="chunk_rows"):
        Settings(chunk_rows=5)


def test_readme_documents_every_setting():
    from ldj.settings import REPO_ROOT, Settings

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    missing = [f"LDJ_{name.upper()}" for name in Settings.model_fields if f"`LDJ_{name.upper()}`" not in readme]
    assert missing == [], f"settings missing from the README: {missing}"
