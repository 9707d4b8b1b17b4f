"""Paths in the data folder, built from validated ids only and checked to stay inside their folder.

Every path of a person-level file (a project's extracts, a data version's snapshots) is made here:
`within` joins the parts, resolves the result (symbolic links and `..` included) and refuses it
unless it lies inside the root. Callers pass ids that were already parsed (an `int` project, a
data version matching `VERSION`); the check is the second wall, not the first.
"""

from __future__ import annotations

import re
from pathlib import Path

VERSION = re.compile(r"[0-9a-f]{16}")  # store.data_version: the first 16 hex digits of a sha256
PART = re.compile(r"[0-9a-f]{32}")  # an organisation's part of a view (`ldj.parts.keys`): 32 hex digits of a sha256
ENTRY = re.compile(r"[a-z][a-z0-9_]{0,63}")  # a catalogue entry's id (catalog/entries/<id>.yaml)


class UnsafePath(ValueError):
    """A path that would leave its folder."""


def within(root: Path, *parts: str) -> Path:
    """`root/part/...`, refused (`UnsafePath`) unless it resolves to a place inside `root`."""
    base = Path(root).resolve()
    for part in parts:
        if not part or "/" in part or "\\" in part or "\x00" in part or part in (".", ".."):
            raise UnsafePath(f"ongeldig padonderdeel {part!r}")
    path = base.joinpath(*parts).resolve()
    if not path.is_relative_to(base) or path == base:
        raise UnsafePath(f"{path} ligt buiten {base}")
    return path


def is_version(value: object) -> bool:
    return isinstance(value, str) and VERSION.fullmatch(value) is not None


def _version(version: str) -> str:
    if not is_version(version):
        raise UnsafePath(f"ongeldige gegevensversie {version!r}")
    return version


def cube_folder(data_dir: Path, version: str) -> Path:
    """`<data_dir>/indicators/<version>/`: one data version's dashboard cube."""
    return within(data_dir, "indicators", _version(version))


def _part(key: str) -> str:
    if not isinstance(key, str) or PART.fullmatch(key) is None:
        raise UnsafePath(f"ongeldige deelsleutel {key!r}")
    return key


def _entry(entry: str) -> str:
    if not isinstance(entry, str) or ENTRY.fullmatch(entry) is None:
        raise UnsafePath(f"ongeldige catalogusingang {entry!r}")
    return entry


def cube_part_folder(data_dir: Path, key: str) -> Path:
    """`<data_dir>/cube-parts/<key>/`: one organisation's share of the cube inputs (`ldj.indicators`)."""
    return within(data_dir, "cube-parts", _part(key))


def snapshot_file(data_dir: Path, version: str, entry: str) -> Path:
    """`<data_dir>/snapshots/<version>/<entry>.parquet`: one catalogue entry's snapshot."""
    return within(data_dir, "snapshots", _version(version), f"{_entry(entry)}.parquet")


def snapshot_part_folder(data_dir: Path, key: str) -> Path:
    """`<data_dir>/snapshot-parts/<key>/`: one organisation's share of the catalogue's snapshots."""
    return within(data_dir, "snapshot-parts", _part(key))


def snapshot_part_file(data_dir: Path, key: str, entry: str) -> Path:
    """`<data_dir>/snapshot-parts/<key>/<entry>.parquet`: one organisation's rows of an entry's snapshot."""
    return within(data_dir, "snapshot-parts", _part(key), f"{_entry(entry)}.parquet")


def factsheet_cache_file(data_dir: Path, version: str, digest: str) -> Path:
    """`<data_dir>/factsheet/cache/<version>-<digest>.json`: a computed factsheet of a data version."""
    if re.fullmatch(r"[0-9a-f]{1,64}", digest) is None:
        raise UnsafePath(f"ongeldige samenvatting {digest!r}")
    return within(data_dir, "factsheet", "cache", f"{_version(version)}-{digest}.json")


def factsheet_pdf(data_dir: Path, version: str, language: str) -> Path:
    """`<data_dir>/factsheet/<version>-<language>/factsheet.pdf`: the printable factsheet."""
    if re.fullmatch(r"[a-z]{2}", language) is None:
        raise UnsafePath(f"ongeldige taal {language!r}")
    return within(data_dir, "factsheet", f"{_version(version)}-{language}", "factsheet.pdf")


def user_file(data_dir: Path, user: str, name: str) -> Path:
    """`<data_dir>/users/<login>/<name>`: a file made for one account (its catalogue)."""
    return within(data_dir, "users", user, name)


def snapshot_folder(data_dir: Path, version: str) -> Path:
    """`<data_dir>/snapshots/<version>/`: one data version's catalogue snapshots."""
    return within(data_dir, "snapshots", _version(version))


def extract_folder(data_dir: Path, project: int, version: str) -> Path:
    """`<data_dir>/extracts/project-<id>/<version>/`: a project's extracts of one data version."""
    if not isinstance(project, int) or isinstance(project, bool) or project < 1:
        raise UnsafePath(f"ongeldig project {project!r}")
    return within(data_dir, "extracts", f"project-{project}", _version(version))


def project_folder(data_dir: Path, project: int) -> Path:
    """`<data_dir>/extracts/project-<id>/`: all of a project's extracts."""
    if not isinstance(project, int) or isinstance(project, bool) or project < 1:
        raise UnsafePath(f"ongeldig project {project!r}")
    return within(data_dir, "extracts", f"project-{project}")
