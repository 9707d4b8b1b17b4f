"""Settings: every knob is an environment variable `LDJ_<NAME>` or a key in one TOML file.

Precedence: environment > settings file (`LDJ_SETTINGS_FILE`, default `ldj.toml` in the working
directory, optional) > defaults. The README lists every setting; `ldj settings` prints them.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LDJ_", extra="forbid")

    data_dir: Path = Field(Path("var"), description="Folder for the SQLite store, the pseudonym key and extracts.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the store; default SQLite at <data_dir>/ldj.sqlite. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db"
    )
    pseudonym_key_file: Path | None = Field(
        None, description="File holding the secret pseudonym key; default <data_dir>/pseudonym.key, created 0600 on first use."
    )
    catalog_dir: Path = Field(REPO_ROOT / "catalog", description="Instrument definitions, delivery format, interventions, catalogue entries.")
    expectations_dir: Path = Field(REPO_ROOT / "expectations", description="Great Expectations suites, one JSON file per delivery kind.")
    language: str = Field("nl", description="Language of messages and reports: nl or en.")
    ingest_chunk_rows: int = Field(50_000, description="Rows read, validated and loaded per chunk; bounds import memory.")
    ingest_workers: int = Field(1, description="Helper processes that read and validate ahead of the loader (0: none).")
    delivery_max_file_bytes: int = Field(4 * 2**30, description="Largest delivery file, in bytes; larger ones are "
                                         "refused before they are read.")
    delivery_max_rows: int = Field(20_000_000, description="Most data rows in one delivery file (lines of a CSV, "
                                   "cases of an SPSS file; an XLSX sheet also stops at Excel's 1,048,576).")
    delivery_max_columns: int = Field(2_000, description="Most columns in one delivery file.")
    delivery_max_cell_chars: int = Field(32_767, description="Longest cell, in characters (Excel's own limit).")
    delivery_max_line_bytes: int = Field(2**20, description="Longest line of a CSV delivery (one row with all its "
                                         "cells), in bytes.")
    delivery_max_unpacked_bytes: int = Field(4 * 2**30, description="Largest size an XLSX delivery may unpack to, "
                                             "in bytes (all its parts together).")
    delivery_max_inflation: int = Field(200, description="Most times larger a part of an XLSX delivery may unpack "
                                        "than it is packed (compression bombs unpack about 1,000 times).")
    disclosure_threshold: int = Field(10, description="Smallest number of clients behind a published count or statistic.")
    disclosure_rounding: int = Field(5, description="Published counts are rounded to a multiple of this (1: no rounding).")
    output_dir: Path = Field(Path("outputs"), description="ldj.safe: folder where checked outputs, their metadata "
                             "and the release manifest are written (in a workspace: relative to the notebook).")
    safe_threshold: int = Field(10, ge=1, description="ldj.safe: a table cell or histogram bin with fewer "
                                "contributors than this fails.")
    safe_p_ratio: float = Field(0.1, gt=0, lt=1, description="ldj.safe: p-percent rule; a magnitude cell fails when "
                                "its total minus the two largest contributions is less than this share of the largest.")
    safe_nk_n: int = Field(2, ge=1, description="ldj.safe: NK dominance rule, the number of largest contributors.")
    safe_nk_k: float = Field(0.9, gt=0, le=1, description="ldj.safe: NK dominance rule; a magnitude cell fails when "
                             "its safe_nk_n largest contributors make up this share of its total or more.")
    safe_min_dof: int = Field(10, ge=1, description="ldj.safe: fewest residual degrees of freedom of a regression.")
    safe_zeros_review: bool = Field(True, description="ldj.safe: an empty cell (no contributors) sends its table "
                                    "to review (a checker decides whether the zero is structural).")
    safe_suppress: bool = Field(False, description="ldj.safe: suppress failing cells by default (as ACRO's "
                                "suppress=True); a call can say otherwise.")
    release_preview_rows: int = Field(50, ge=1, description="Portal, output release page: how many rows of a table "
                                      "file (CSV) the checkers see as a preview; the whole file is checked all the same.")
    release_preview_bytes: int = Field(1_000_000, ge=1, description="Portal, output release page: a file larger than "
                                       "this gets no inline preview (text, image), only its findings.")
    outcome_start_window_days: int = Field(90, description="A start measurement counts for pre-post pairs and response when taken within this many days of the trajectory's start.")
    outcome_end_window_days: int = Field(90, description="An end measurement counts when taken within this many days of the trajectory's end.")
    data_service_url: str = Field("http://127.0.0.1:8000/services/ldj-data",
                                  description="Base URL of the data service, as workspaces reach it.")
    release_max_mb: int = Field(50, ge=1, le=2048, description="Largest upload of a release request from a "
                                "workspace (the whole ldj.safe folder), in MiB; the data service refuses a larger "
                                "one with 413 and reads no request body over twice this.")
    password_hash_cost: int = Field(17, ge=10, le=18, description="scrypt cost of new password hashes, as log2 N "
                                    "(17: N=2^17, about 0.3 s and 128 MiB per hash); stored hashes keep their own.")
    apo_decision_rule: str = Field("majority", description="How APO votes decide a request: majority or unanimous.")
    apo_min_votes: int = Field(2, description="Fewest votes cast before the steward can record a decision.")
    final_report_min_chars: int = Field(50, description="Shortest final report that can close a project.")
    portal_url: str = Field("http://127.0.0.1:8000/services/ldj-portal",
                            description="Base URL of the portal, for links in published metadata.")
    hub_ip: str = Field("127.0.0.1", description="Address the hub's proxy listens on (the public side).")
    hub_port: int = Field(8000, description="Port of the hub's proxy: the URL people open.")
    hub_api_port: int = Field(8081, description="Port of the hub's own API (loopback).")
    proxy_api_port: int = Field(8001, description="Port of configurable-http-proxy's API (loopback).")
    data_service_port: int = Field(8181, description="Port the data service listens on (loopback).")
    portal_port: int = Field(8182, description="Port the portal (a hub service) listens on (loopback).")
    portal_processes: int = Field(2, description="Processes serving the portal (sessions are spread over them); "
                                  "about one per core.")
    portal_allowed_origins: list[str] = Field(
        [], description="Host:port values browsers may open the portal from (websocket origin check); "
        "default: the hub's address and port, and localhost.")
    portal_session_check_seconds: int = Field(
        30, description="How long the portal trusts a check of a visitor's hub login (their OAuth token against the "
        "hub's API) before asking the hub again: after a hub logout the portal session ends within this time.")
    spawner: str = Field("local", description="Workspace spawner: local (demo), docker or kubernetes (docker/).")
    homes_dir: Path | None = Field(
        None, description="Folder of the local spawner's workspace homes, one private (0700) folder per workspace "
        "account; outside the data folder; default <data_dir>/../homes.")
    workspace_account_prefix: str = Field(
        "ldj-", description="Local spawner: each workspace runs as its own OS account, named this prefix plus the "
        "user name (created by the hub, which runs as root).")
    workspace_python: Path | None = Field(
        None, description="Local spawner: the Python that workspaces run (with jupyterhub and the notebook "
        "packages); must be readable by the workspace accounts. Default: the hub's own, or, when that lies where "
        "other accounts cannot read it, a virtual environment over the system Python with the hub's packages.")
    allow_shared_workspace_accounts: bool = Field(
        False, description="Local spawner on a hub that does not run as root: accept that every workspace runs as "
        "the hub's own account, which can read the data folder (the store, the pseudonym key); stewards see a "
        "warning. Without it such a hub refuses to start.")
    workspace_check_seconds: int = Field(60, description="How often running workspaces are checked against the grants.")
    idle_timeout_seconds: int = Field(3600, description="A workspace idle this long is stopped by the idle culler.")
    keep_data_versions: int = Field(2, description="Data versions whose derived files (catalogue snapshots, "
                                    "dashboard cube, factsheet cache) are kept, the current one included; older "
                                    "ones are removed after each import, except snapshots an active project's "
                                    "extracts were cut from.")
    progress: str = Field("auto", description="Progress bars: auto (when on a terminal), always or never.")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("LDJ_SETTINGS_FILE", "ldj.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'ldj.sqlite').resolve()}"

    @property
    def resolved_key_file(self) -> Path:
        return self.pseudonym_key_file or self.data_dir / "pseudonym.key"

    @property
    def resolved_homes_dir(self) -> Path:
        return (self.homes_dir or self.data_dir.resolve().parent / "homes").resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
