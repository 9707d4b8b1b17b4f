"""The airlock: a project's outputs leave a workspace only as a release request, checked and reviewed.

A researcher checks her outputs with `ldj.safe` in her workspace; `submit` turns that folder (its
`manifest.json` from `finalise()`) into a release request of her project. Every output is checked
again here from its metadata (`ldj.safe.check_paths`: the rules with this deployment's settings, and
whether each file is still the one written); a file without metadata goes in as `review`. The files
are copied into the data folder (`<data_dir>/releases/release-<id>/`, paths from `ldj.paths`), never
served from the workspace.

Workflow (`WORKFLOW`, on `ldj.workflow`; each step's policy action in brackets)::

    submitted -> in_review (release.review; next step) -> returned | approved | rejected
    returned -> submitted (release.submit)
    approved -> released
    submitted | in_review | returned -> withdrawn (release.withdraw: the author)

This module holds the request, its files and its first and last steps (submit, withdraw); the review by
two independent output checkers, the release and the downloads come next (issue 13).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from . import governance, paths, policy, safe, workflow
from .i18n import t
from .settings import Settings, get_settings
from .store import release_events, release_files, releases

SUBMITTED, IN_REVIEW, RETURNED, APPROVED, RELEASED, REJECTED, WITHDRAWN = (
    "submitted", "in_review", "returned", "approved", "released", "rejected", "withdrawn")
STATES = (SUBMITTED, IN_REVIEW, RETURNED, APPROVED, RELEASED, REJECTED, WITHDRAWN)
TITLE_MAX = 200


def status_label(status: str) -> str:
    return t(f"al_status_{status}")


WORKFLOW = workflow.Workflow(
    name="release", states=STATES, initial=SUBMITTED, table=releases, events=release_events,
    object_column="release_id", label=status_label,
    transitions=(workflow.Transition(RETURNED, SUBMITTED, "release.submit"),
                 *(workflow.Transition(s, WITHDRAWN, "release.withdraw") for s in (SUBMITTED, IN_REVIEW, RETURNED))))


class AirlockError(workflow.DomainError):
    """A release request that cannot be made as asked (no manifest, nothing to release, a bad title)."""


@dataclass(frozen=True)
class ReleaseFile:
    output: str
    kind: str
    file: str
    sha256: str
    status: str  # pass | fail | review, as checked at submission
    reasons: list[dict]
    comments: str | None
    exception: str | None


@dataclass(frozen=True)
class Release:
    id: int
    project_id: int
    author: str
    title: str
    description: str
    status: str
    created_at: datetime
    files: tuple[ReleaseFile, ...]


def _project_target(engine: sa.Engine, project_id: int, owner: str | None = None) -> policy.Target:
    members = frozenset(governance.project_members(engine, project_id))
    return policy.Target(owner=owner, project=project_id, members=members)


def release_folder(settings: Settings, release_id: int) -> Path:
    return paths.within(settings.data_dir, "releases", f"release-{int(release_id)}")


def submit(engine: sa.Engine, author: policy.Actor | str, project_id: int, folder: Path, *, title: str,
           description: str, settings: Settings | None = None) -> int:
    """A release request of `project_id` from the ldj.safe output folder `folder`; returns its id.

    Refused (`policy.Refused`) unless the author holds an active grant on the project; `AirlockError`
    without a manifest, without outputs or without a title and description."""
    settings = settings or get_settings()
    actor = policy.actor_of(engine, author)
    policy.check(actor, "release.submit", _project_target(engine, project_id), settings.language)
    title, description = (title or "").strip(), (description or "").strip()
    if not title or len(title) > TITLE_MAX or not description:
        raise AirlockError(t("al_title_description", settings.language, limit=TITLE_MAX))
    folder = Path(folder)
    manifest = folder / safe.MANIFEST
    if not manifest.is_file():
        raise AirlockError(t("al_no_manifest", settings.language, folder=folder))
    checked = safe.check_paths([folder], settings)
    if not checked:
        raise AirlockError(t("al_nothing", settings.language, folder=folder))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        release_id = conn.execute(releases.insert().values(
            project_id=project_id, author=actor.name, title=title, description=description, status=SUBMITTED,
            created_at=now, updated_at=now)).inserted_primary_key[0]
        target = release_folder(settings, release_id)
        target.mkdir(parents=True, mode=0o700)
        for output in checked:
            names = [Path(output["path"]).name, *output.get("files", [])]  # a free file: itself only
            comments = "\n".join(output.get("comments") or []) or None
            for name in names:
                source = paths.within(folder, name)
                if not source.is_file():
                    continue  # a file the metadata lists but that is gone: the findings say "changed"
                kept = paths.within(target, name)
                shutil.copyfile(source, kept)
                with kept.open("rb") as copied:
                    digest = hashlib.file_digest(copied, "sha256").hexdigest()
                conn.execute(release_files.insert().values(
                    release_id=release_id, output=output["name"] or name, kind=output["kind"], file=name,
                    sha256=digest, status=output["status"], reasons=output["reasons"], comments=comments,
                    exception=output.get("exception")))
        workflow.created(conn, WORKFLOW, release_id, actor, t("al_note_submitted", settings.language,
                                                               files=len(checked)), project=project_id)
    return release_id


def get_release(engine: sa.Engine, release_id: int, viewer: policy.Actor | str) -> Release:
    """The release request, for the people of its project and the steward; else `policy.Refused`."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(releases).where(releases.c.id == release_id)).first()
    if row is None:
        raise governance.NotFound(t("al_not_found", id=release_id))
    policy.check(policy.actor_of(engine, viewer), "release.view", _project_target(engine, row.project_id, row.author))
    with engine.connect() as conn:
        files = conn.execute(sa.select(release_files).where(release_files.c.release_id == release_id)
                             .order_by(release_files.c.id)).all()
    return Release(row.id, row.project_id, row.author, row.title, row.description, row.status,
                   row.created_at, tuple(ReleaseFile(f.output, f.kind, f.file, f.sha256, f.status, list(f.reasons),
                                                     f.comments, f.exception) for f in files))


def list_releases(engine: sa.Engine, viewer: policy.Actor | str) -> list[Release]:
    """The release requests `viewer` may see (their projects'; the steward: all), newest first."""
    actor = policy.actor_of(engine, viewer)
    with engine.connect() as conn:
        ids = conn.execute(sa.select(releases.c.id).order_by(releases.c.id.desc())).scalars().all()
    found = []
    for release_id in ids:
        try:
            found.append(get_release(engine, release_id, actor))
        except policy.Refused:
            continue
    return found


def withdraw(engine: sa.Engine, release_id: int, author: policy.Actor | str, comment: str | None = None) -> None:
    """The author takes her request back (before it is decided); its files are removed."""
    actor = policy.actor_of(engine, author)
    settings = get_settings()
    with engine.begin() as conn:
        row = conn.execute(sa.select(releases).where(releases.c.id == release_id).with_for_update()).first()
        if row is None:
            raise governance.NotFound(t("al_not_found", id=release_id))
        workflow.move(conn, WORKFLOW, release_id, WITHDRAWN, actor, policy.Target(owner=row.author), comment,
                      from_state=row.status, project=row.project_id)
    shutil.rmtree(release_folder(settings, release_id), ignore_errors=True)


def history(engine: sa.Engine, release_id: int) -> list[workflow.Event]:
    with engine.connect() as conn:
        return workflow.history(conn, WORKFLOW, release_id)

