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
