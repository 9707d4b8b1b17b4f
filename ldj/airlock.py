"""The airlock: a project's outputs leave a workspace only as a release request, checked and reviewed.

A researcher checks her outputs with `ldj.safe` in her workspace; `submit` turns that folder (its
`manifest.json` from `finalise()`) into a release request of her project. Every output is checked
again here from its metadata (`ldj.safe.check_paths`: the rules with this deployment's settings, and
whether each file is still the one written); a file without metadata goes in as `review`. The files
are copied into the data folder (`<data_dir>/releases/release-<id>/`, paths from `ldj.paths`), never
served from the workspace.

Workflow (`WORKFLOW`, on `ldj.workflow`; each step's policy action in brackets)::

    submitted -> in_review (release.review: the first checker takes it)
    in_review -> returned | approved | rejected (release.decide: one of its two checkers)
    returned -> submitted (release.submit: the author, with changed files)
    approved -> released (release.decide)
    submitted | in_review | returned -> withdrawn (release.withdraw: the author)

Review, as in OpenSAFELY's Airlock: two output checkers take a request (`claim`), neither its author
nor a member of its project (the policy's `not_member`). Each gives every file a verdict (`review_file`:
approve, ask for changes, reject; with a comment unless approving) and says whether it may be public.
A checker sees the other's verdict on a file only once she gave her own (`reviews`); the author sees
them once the request is decided. A verdict holds for the file as it was (its sha256): a file changed
by a resubmission has no reviews until it is reviewed again. Verdicts are append-only rows; the latest
of each checker on each file's current version counts.

A decision (`decide`) needs both checkers' verdicts on every file: approved when all approve; returned
when any asks for changes or rejects; rejected when both reject the same file. Releasing (`release`)
makes the files downloadable by the project's members, and by everyone where the author offered a file
as public and both checkers agreed (`download`); it puts the release as the answer on the Vraagbank
questions its project was picked up for, and tells the askers (`ldj.notifications`).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from . import audit, governance, notifications, paths, policy, safe, vraagbank, workflow
from .i18n import t
from .settings import Settings, get_settings
from .store import (projects, question_pickups, questions, release_events, release_files, release_reviewers,
                    release_reviews, releases, users)

SUBMITTED, IN_REVIEW, RETURNED, APPROVED, RELEASED, REJECTED, WITHDRAWN = (
    "submitted", "in_review", "returned", "approved", "released", "rejected", "withdrawn")
STATES = (SUBMITTED, IN_REVIEW, RETURNED, APPROVED, RELEASED, REJECTED, WITHDRAWN)
DECIDED = (RETURNED, APPROVED, RELEASED, REJECTED)  # the author and the project see the verdicts
APPROVE, CHANGES, REJECT = "approve", "changes", "reject"
VERDICTS = (APPROVE, CHANGES, REJECT)
DECISIONS = (RETURNED, APPROVED, REJECTED)
REVIEWERS = 2
TITLE_MAX = 200
COMMENT_MAX = 4000


def status_label(status: str) -> str:
    return t(f"al_status_{status}")


def verdict_label(verdict: str) -> str:
    return t(f"al_verdict_{verdict}")


WORKFLOW = workflow.Workflow(
    name="release", states=STATES, initial=SUBMITTED, table=releases, events=release_events,
    object_column="release_id", label=status_label,
    transitions=(workflow.Transition(SUBMITTED, IN_REVIEW, "release.review"),
                 *(workflow.Transition(IN_REVIEW, s, "release.decide") for s in DECISIONS),
                 workflow.Transition(RETURNED, SUBMITTED, "release.submit"),
                 workflow.Transition(APPROVED, RELEASED, "release.decide"),
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
    public: bool = False  # the author offers it publicly (public once released and both checkers agree)


@dataclass(frozen=True)
class Review:
    file: str
    reviewer: str
    verdict: str  # approve | changes | reject
    public: bool  # the checker agrees the file may be public
    comment: str | None
    at: datetime


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
    reviewers: tuple[str, ...] = ()
    members: frozenset[str] = frozenset()  # the project's people (for the policy's target)
    waiting_since: datetime | None = None  # when it last came to the checkers (submitted or resubmitted)

    def target(self, public: bool = False) -> policy.Target:
        """The policy's target of this request (`public`: of one of its files that is public)."""
        return policy.Target(owner=self.author, project=self.project_id, members=self.members, public=public)

    def file(self, name: str) -> ReleaseFile:
        for f in self.files:
            if f.file == name:
                return f
        raise governance.NotFound(t("al_unknown_file", id=self.id, file=name))


def _project_target(conn: sa.Engine | sa.Connection, project_id: int, owner: str | None = None,
                    public: bool = False) -> policy.Target:
    members = frozenset(governance.project_members(conn, project_id))
    return policy.Target(owner=owner, project=project_id, members=members, public=public)


def release_folder(settings: Settings, release_id: int) -> Path:
    return paths.within(settings.data_dir, "releases", f"release-{int(release_id)}")


def _check_text(title: str | None, description: str | None, language: str | None) -> tuple[str, str]:
    title, description = (title or "").strip(), (description or "").strip()
    if not title or len(title) > TITLE_MAX or not description:
        raise AirlockError(t("al_title_description", language, limit=TITLE_MAX))
    return title, description


def _checked_outputs(folder: Path, settings: Settings) -> list[dict]:
    """The outputs of an ldj.safe folder, checked again with this deployment's rules."""
    folder = Path(folder)
    if not (folder / safe.MANIFEST).is_file():
        raise AirlockError(t("al_no_manifest", settings.language, folder=folder))
    checked = safe.check_paths([folder], settings)
    if not checked:
        raise AirlockError(t("al_nothing", settings.language, folder=folder))
    return checked


OUTPUT_NAME_MAX, FILE_NAME_MAX = 64, 80  # the columns of release_files


def _plan(folder: Path, checked: list[dict], language: str | None) -> list[tuple[dict, str, str, Path]]:
    """(output, its name, file name, source) for every file to keep, each name checked before anything is
    written: metadata naming a path, another folder or too long a name is refused (`AirlockError`)."""
    planned = []
    for output in checked:
        names = [Path(output["path"]).name, *output.get("files", [])]  # a free file: itself only
        output_name = str(output["name"] or names[0])
        if len(output_name) > OUTPUT_NAME_MAX:
            raise AirlockError(t("al_bad_name", language, name=output_name[:100], limit=OUTPUT_NAME_MAX))
        for name in names:
            try:
                if not isinstance(name, str) or len(name) > FILE_NAME_MAX:
                    raise paths.UnsafePath(str(name))
                source = paths.within(folder, name)
            except paths.UnsafePath:
                raise AirlockError(t("al_bad_name", language, name=str(name)[:100], limit=FILE_NAME_MAX)) from None
            if source.is_file():  # a file the metadata lists but that is gone: the findings say "changed"
                planned.append((output, output_name, name, source))
    return planned


def _store_files(conn: sa.Connection, release_id: int, folder: Path, checked: list[dict], public: set[str],
                 settings: Settings) -> tuple[int, int, int]:
    """Copy the outputs' files into the release folder and (re)write their rows; returns how many files
    changed, were added and were removed (a resubmission; a first submission adds them all)."""
    planned = _plan(folder, checked, settings.language)
    target = release_folder(settings, release_id)
    target.mkdir(parents=True, mode=0o700, exist_ok=True)
    before = {r.file: r for r in conn.execute(sa.select(release_files).where(release_files.c.release_id == release_id))}
    changed = added = 0
    for output, output_name, name, source in planned:
        kept = paths.within(target, name)
        shutil.copyfile(source, kept)
        with kept.open("rb") as copied:
            digest = hashlib.file_digest(copied, "sha256").hexdigest()
        values = dict(output=output_name, kind=output["kind"], sha256=digest, status=output["status"],
                      reasons=output["reasons"], comments="\n".join(output.get("comments") or []) or None,
                      exception=output.get("exception"), public=output_name in public or name in public)
        if name in before:
            changed += before[name].sha256 != digest
            conn.execute(sa.update(release_files).where(release_files.c.id == before[name].id).values(values))
        else:
            added += 1
            conn.execute(release_files.insert().values(release_id=release_id, file=name, **values))
    gone = set(before) - {name for _, _, name, _ in planned}
    for name in gone:
        conn.execute(sa.delete(release_files).where(release_files.c.id == before[name].id))
        paths.within(target, name).unlink(missing_ok=True)
    return changed, added, len(gone)


def submit(engine: sa.Engine, author: policy.Actor | str, project_id: int, folder: Path, *, title: str,
           description: str, public: list[str] | tuple[str, ...] = (), settings: Settings | None = None) -> int:
    """A release request of `project_id` from the ldj.safe output folder `folder`; returns its id.

    `public`: outputs (or files) the author offers for public download once released, if both checkers
    agree. Refused (`policy.Refused`) unless the author holds an active grant on the project;
    `AirlockError` without a manifest, without outputs or without a title and description."""
    settings = settings or get_settings()
    actor = policy.actor_of(engine, author)
    policy.check(actor, "release.submit", _project_target(engine, project_id), settings.language)
    title, description = _check_text(title, description, settings.language)
    checked = _checked_outputs(folder, settings)
    _plan(Path(folder), checked, settings.language)  # refuse bad names before anything is written
    now = datetime.now(UTC)
    release_id = None
    try:
        with engine.begin() as conn:
            release_id = conn.execute(releases.insert().values(
                project_id=project_id, author=actor.name, title=title, description=description, status=SUBMITTED,
                created_at=now, updated_at=now)).inserted_primary_key[0]
            # a folder left by a request that was never committed (SQLite reuses its id) is not this one's
            shutil.rmtree(release_folder(settings, release_id), ignore_errors=True)
            _store_files(conn, release_id, Path(folder), checked, set(public), settings)
            workflow.created(conn, WORKFLOW, release_id, actor, t("al_note_submitted", settings.language,
                                                                   files=len(checked)), project=project_id)
            _tell_checkers(conn, release_id, title)
    except BaseException:
        if release_id is not None:
            shutil.rmtree(release_folder(settings, release_id), ignore_errors=True)
        raise
    return release_id


def resubmit(engine: sa.Engine, release_id: int, author: policy.Actor | str, folder: Path, *,
             description: str | None = None, public: list[str] | tuple[str, ...] = (),
             settings: Settings | None = None) -> None:
    """The author answers a returned request with the folder as it is now: changed files lose their
    reviews (a verdict holds for the file it saw), new ones are added, missing ones removed."""
    settings = settings or get_settings()
    checked = _checked_outputs(folder, settings)
    with engine.begin() as conn:
        actor = policy.actor_of(conn, author)
        row = _row(conn, release_id, lock=True)
        target = _project_target(conn, row.project_id, row.author)
        policy.check(actor, "release.withdraw", target, settings.language)  # the author's own request
        title, description = _check_text(row.title, description or row.description, settings.language)
        changed, added, removed = _store_files(conn, release_id, Path(folder), checked, set(public), settings)
        workflow.move(conn, WORKFLOW, release_id, SUBMITTED, actor, target,
                      t("al_note_resubmitted", settings.language, changed=changed, added=added, removed=removed),
                      from_state=row.status, values={"description": description}, project=row.project_id)


def _row(conn: sa.Connection, release_id: int, *, lock: bool = False):
    query = sa.select(releases).where(releases.c.id == release_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise governance.NotFound(t("al_not_found", id=release_id))
    return row


def _reviewers(conn: sa.Connection, release_id: int) -> tuple[str, ...]:
    return tuple(conn.execute(sa.select(release_reviewers.c.reviewer).where(
        release_reviewers.c.release_id == release_id).order_by(release_reviewers.c.claimed_at)).scalars())


def _files(conn: sa.Connection, release_id: int) -> tuple[ReleaseFile, ...]:
    rows = conn.execute(sa.select(release_files).where(release_files.c.release_id == release_id)
                        .order_by(release_files.c.id)).all()
    return tuple(ReleaseFile(f.output, f.kind, f.file, f.sha256, f.status, list(f.reasons), f.comments, f.exception,
                             bool(f.public)) for f in rows)


def _current_reviews(conn: sa.Connection, release_id: int, files: tuple[ReleaseFile, ...]) -> dict[str, dict[str, Review]]:
    """file -> reviewer -> her latest verdict on the file as it is now."""
    sha = {f.file: f.sha256 for f in files}
    current: dict[str, dict[str, Review]] = {f.file: {} for f in files}
    for r in conn.execute(sa.select(release_reviews).where(release_reviews.c.release_id == release_id)
                          .order_by(release_reviews.c.id)):
        if sha.get(r.file) == r.sha256:
            current[r.file][r.reviewer] = Review(r.file, r.reviewer, r.verdict, bool(r.public), r.comment,
                                                 workflow._aware(r.at))
    return current


def _releases(conn: sa.Connection, actor: policy.Actor, rows: list) -> list[Release]:
    """The requests of `rows` that `actor` may see (`release.view`), each with its files, checkers,
    project members and waiting time: a few queries for all of them, not a round per request."""
    members = {pid: frozenset(governance.project_members(conn, pid)) for pid in {r.project_id for r in rows}}
    rows = [r for r in rows if policy.allows(actor, "release.view", policy.Target(
        owner=r.author, project=r.project_id, members=members[r.project_id]))]
    ids = [r.id for r in rows]
    files: dict[int, list[ReleaseFile]] = {i: [] for i in ids}
    for f in conn.execute(sa.select(release_files).where(release_files.c.release_id.in_(ids))
                          .order_by(release_files.c.id)):
        files[f.release_id].append(ReleaseFile(f.output, f.kind, f.file, f.sha256, f.status, list(f.reasons),
                                               f.comments, f.exception, bool(f.public)))
    reviewers: dict[int, list[str]] = {i: [] for i in ids}
    for r in conn.execute(sa.select(release_reviewers).where(release_reviewers.c.release_id.in_(ids))
                          .order_by(release_reviewers.c.claimed_at)):
        reviewers[r.release_id].append(r.reviewer)
    e = release_events
    waiting = dict(conn.execute(sa.select(e.c.release_id, sa.func.max(e.c.at)).where(
        e.c.release_id.in_(ids), e.c.to_status == SUBMITTED).group_by(e.c.release_id)).all())
    return [Release(r.id, r.project_id, r.author, r.title, r.description, r.status, workflow._aware(r.created_at),
                    tuple(files[r.id]), tuple(reviewers[r.id]), members[r.project_id],
                    workflow._aware(waiting[r.id]) if r.id in waiting else None) for r in rows]


def get_release(engine: sa.Engine, release_id: int, viewer: policy.Actor | str) -> Release:
    """The release request, for the people of its project, the checkers and the steward; else `policy.Refused`."""
    with engine.connect() as conn:
        row = _row(conn, release_id)
        actor = policy.actor_of(conn, viewer)
        policy.check(actor, "release.view", _project_target(conn, row.project_id, row.author))
        return _releases(conn, actor, [row])[0]


def list_releases(engine: sa.Engine, viewer: policy.Actor | str, *, status: str | tuple[str, ...] | None = None,
                  project: int | None = None) -> list[Release]:
    """The release requests `viewer` may see (their projects'; checkers and the steward: all), newest first."""
    query = sa.select(releases).order_by(releases.c.id.desc())
    if status is not None:
        query = query.where(releases.c.status.in_((status,) if isinstance(status, str) else status))
    if project is not None:
        query = query.where(releases.c.project_id == project)
    with engine.connect() as conn:
        return _releases(conn, policy.actor_of(conn, viewer), conn.execute(query).all())


def may_claim(release: Release, checker: policy.Actor) -> bool:
    """Whether `checker` may take the request now (what `claim` allows: the policy, a request waiting for a
    checker, one short, not hers yet), for offering only the buttons that work."""
    return (release.status in (SUBMITTED, IN_REVIEW) and len(release.reviewers) < REVIEWERS
            and checker.name not in release.reviewers and policy.allows(checker, "release.review", release.target()))


def claim(engine: sa.Engine, release_id: int, checker: policy.Actor | str) -> None:
    """A checker takes the request as one of its two reviewers; the first moves it into review."""
    with engine.begin() as conn:
        actor = policy.actor_of(conn, checker)
        row = _row(conn, release_id, lock=True)
        target = _project_target(conn, row.project_id, row.author)
        policy.check(actor, "release.review", target)
        reviewers = _reviewers(conn, release_id)
        if actor.name in reviewers:
            raise AirlockError(t("al_already_reviewer", id=release_id))
        if len(reviewers) >= REVIEWERS:
            raise AirlockError(t("al_two_reviewers", id=release_id, reviewers=", ".join(reviewers)))
        if row.status not in (SUBMITTED, IN_REVIEW):
            raise WORKFLOW.illegal(release_id, row.status, IN_REVIEW)
        conn.execute(release_reviewers.insert().values(release_id=release_id, reviewer=actor.name,
                                                       claimed_at=datetime.now(UTC)))
        if row.status == SUBMITTED:
            workflow.move(conn, WORKFLOW, release_id, IN_REVIEW, actor, target, t("al_note_claimed"),
                          from_state=row.status, project=row.project_id)
        else:
            workflow.record(conn, WORKFLOW, release_id, actor, t("al_note_claimed"), project=row.project_id)


def _reviewer_of(conn: sa.Connection, actor: policy.Actor, row) -> policy.Target:
    """The policy's target for a checker's step, once she is one of the request's two checkers."""
    target = _project_target(conn, row.project_id, row.author)
    policy.check(actor, "release.review", target)
    if actor.name not in _reviewers(conn, row.id):
        raise AirlockError(t("al_not_reviewer", id=row.id))
    return target


def review_file(engine: sa.Engine, release_id: int, checker: policy.Actor | str, file: str, verdict: str,
                comment: str | None = None, *, public: bool = False) -> Review:
    """One checker's verdict on one file (as it is now); a later verdict of hers replaces it.

    On a resubmitted request the first verdict moves it into review again."""
    return _review(engine, release_id, checker, verdict, comment, public, lambda files: [file])[0]


def review_output(engine: sa.Engine, release_id: int, checker: policy.Actor | str, output: str, verdict: str,
                  comment: str | None = None, *, public: bool = False) -> list[Review]:
    """One checker's verdict on an output: on each of its files (the result and its ldj.safe metadata), at once."""
    return _review(engine, release_id, checker, verdict, comment, public,
                   lambda files: [f.file for f in files.values() if f.output == output] or [output])


def _review(engine: sa.Engine, release_id: int, checker: policy.Actor | str, verdict: str, comment: str | None,
            public: bool, chosen: Callable[[dict[str, ReleaseFile]], list[str]]) -> list[Review]:
    if verdict not in VERDICTS:
        raise AirlockError(t("al_bad_verdict", verdict=verdict, allowed=", ".join(VERDICTS)))
    comment = (comment or "").strip()[:COMMENT_MAX] or None
    if verdict != APPROVE and not comment:
        raise AirlockError(t("al_comment_needed"))
    with engine.begin() as conn:
        actor = policy.actor_of(conn, checker)
        row = _row(conn, release_id, lock=True)
        target = _reviewer_of(conn, actor, row)
        if row.status == SUBMITTED:  # resubmitted: her verdict takes it into review again
            workflow.move(conn, WORKFLOW, release_id, IN_REVIEW, actor, target, from_state=row.status,
                          project=row.project_id)
        elif row.status != IN_REVIEW:
            raise WORKFLOW.illegal(release_id, row.status, IN_REVIEW)
        files = {f.file: f for f in _files(conn, release_id)}
        names = chosen(files)
        unknown = [name for name in names if name not in files]
        if unknown:
            raise governance.NotFound(t("al_unknown_file", id=release_id, file=unknown[0]))
        now = datetime.now(UTC)
        given = []
        for name in names:
            conn.execute(release_reviews.insert().values(
                release_id=release_id, file=name, sha256=files[name].sha256, reviewer=actor.name, verdict=verdict,
                public=bool(public), comment=comment, at=now))
            workflow.record(conn, WORKFLOW, release_id, actor, t("al_note_reviewed", file=name),
                            project=row.project_id)
            given.append(Review(name, actor.name, verdict, bool(public), comment, now))
        return given


def reviews(engine: sa.Engine, release_id: int, viewer: policy.Actor | str) -> dict[str, list[Review]]:
    """The current verdicts per file that `viewer` may see: a checker her own, and the other's on a file
    once she gave hers; once the request is decided, whoever `release.verdicts` allows (the project's
    people, the steward). Before that nobody but the two checkers sees a verdict."""
    with engine.connect() as conn:
        actor = policy.actor_of(conn, viewer)
        row = _row(conn, release_id)
        target = _project_target(conn, row.project_id, row.author)
        policy.check(actor, "release.view", target)
        current = _current_reviews(conn, release_id, _files(conn, release_id))
        reviewers = _reviewers(conn, release_id)
    if actor.name in reviewers:  # the other's verdict on a file once she gave her own
        visible = {f: (by if actor.name in by else {}) for f, by in current.items()}
    elif row.status in DECIDED and policy.allows(actor, "release.verdicts", target):
        visible = current
    else:
        visible = {f: {} for f in current}
    return {f: sorted(by.values(), key=lambda r: r.reviewer) for f, by in visible.items()}


def decide(engine: sa.Engine, release_id: int, checker: policy.Actor | str, decision: str,
           comment: str | None = None) -> None:
    """One of the two checkers decides, once both reviewed every file (see the module's rules)."""
    if decision not in DECISIONS:
        raise AirlockError(t("al_bad_decision", decision=decision, allowed=", ".join(DECISIONS)))
    with engine.begin() as conn:
        actor = policy.actor_of(conn, checker)
        row = _row(conn, release_id, lock=True)
        target = _reviewer_of(conn, actor, row)
        WORKFLOW.check(release_id, row.status, decision)
        reviewers = _reviewers(conn, release_id)
        current = _current_reviews(conn, release_id, _files(conn, release_id))
        missing = [f"{f} ({r})" for f, by in current.items() for r in reviewers if r not in by]
        if len(reviewers) < REVIEWERS:
            missing.append(t("al_status_submitted"))
        if missing:
            raise AirlockError(t("al_reviews_incomplete", missing=", ".join(missing)))
        verdicts = [r.verdict for by in current.values() for r in by.values()]
        if decision == APPROVED and any(v != APPROVE for v in verdicts):
            raise AirlockError(t("al_approve_needs_all"))
        if decision == RETURNED and all(v == APPROVE for v in verdicts):
            raise AirlockError(t("al_return_needs_changes"))
        if decision == REJECTED and not any(all(r.verdict == REJECT for r in by.values()) for by in current.values()):
            raise AirlockError(t("al_reject_needs_both"))
        workflow.move(conn, WORKFLOW, release_id, decision, actor, target, (comment or "").strip() or None,
                      from_state=row.status, project=row.project_id)
        notifications.notify(conn, row.author, "release_decided", f"/uitvoer?id={release_id}", title=row.title,
                             status={"text": f"al_status_{decision}"})


def release(engine: sa.Engine, release_id: int, checker: policy.Actor | str, comment: str | None = None) -> list[int]:
    """One of the two checkers releases an approved request; returns the Vraagbank questions it answers."""
    with engine.begin() as conn:
        actor = policy.actor_of(conn, checker)
        row = _row(conn, release_id, lock=True)
        target = _reviewer_of(conn, actor, row)
        workflow.move(conn, WORKFLOW, release_id, RELEASED, actor, target, (comment or "").strip() or None,
                      from_state=row.status, project=row.project_id)
        for member in {row.author, *target.members}:
            notifications.notify(conn, member, "release_decided", f"/uitvoer?id={release_id}", title=row.title,
                                 status={"text": f"al_status_{RELEASED}"})
        answered = []
        for question in _questions_of(conn, row.project_id):
            if question.status == vraagbank.PICKED_UP:
                vraagbank.answer_with_release(conn, question.id, policy.actor_of(conn, row.author), row.description,
                                              target.members | {row.author})
                workflow.record(conn, WORKFLOW, release_id, actor, t("al_note_answered", question=question.id),
                                project=row.project_id)
                answered.append(question.id)
            if question.status in (vraagbank.PICKED_UP, vraagbank.ANSWERED):
                notifications.notify(conn, question.asker, "question_answered", f"/vraagbank?vraag={question.id}",
                                     title=question.title, project=row.project_id)
        return answered


def _questions_of(conn: sa.Connection, project_id: int) -> list:
    """The Vraagbank questions picked up for the project (pick-up -> its data request -> the project)."""
    return conn.execute(
        sa.select(questions.c.id, questions.c.title, questions.c.status, questions.c.asker).distinct()
        .join(question_pickups, question_pickups.c.question_id == questions.c.id)
        .join(projects, projects.c.request_id == question_pickups.c.request_id)
        .where(projects.c.id == project_id, question_pickups.c.withdrawn_at.is_(None))
        .order_by(questions.c.id)).all()


def questions_for(engine: sa.Engine, project_id: int) -> list[tuple[int, str]]:
    """The published Vraagbank questions (id, title) the project was picked up for: what its releases answer."""
    with engine.connect() as conn:
        return [(q.id, q.title) for q in _questions_of(conn, project_id) if q.status in (vraagbank.PICKED_UP, vraagbank.ANSWERED)]


def released_per_project(conn: sa.Connection) -> dict[int, int]:
    """Project id -> how many release requests it has released (for the registry and the factsheet)."""
    return dict(conn.execute(sa.select(releases.c.project_id, sa.func.count()).where(releases.c.status == RELEASED)
                             .group_by(releases.c.project_id)).all())


def released_for_question(engine: sa.Engine, question_id: int) -> list[Release]:
    """The released requests of the projects a question was picked up for (its answer), oldest first.

    What anyone may see of them: title, description and the files that are public."""
    with engine.connect() as conn:
        ids = conn.execute(
            sa.select(releases.c.id).distinct()
            .join(projects, projects.c.id == releases.c.project_id)
            .join(question_pickups, question_pickups.c.request_id == projects.c.request_id)
            .where(question_pickups.c.question_id == question_id, question_pickups.c.withdrawn_at.is_(None),
                   releases.c.status == RELEASED).order_by(releases.c.id)).scalars().all()
        found = []
        for release_id in ids:
            row = _row(conn, release_id)
            files = _files(conn, release_id)
            public = _public_files(conn, release_id, files)
            found.append(Release(row.id, row.project_id, row.author, row.title, row.description, row.status,
                                 workflow._aware(row.created_at), tuple(f for f in files if f.file in public)))
        return found


def public_files(engine: sa.Engine, release: Release) -> set[str]:
    """Of a released request, the files everyone may download (offered as public, both checkers agreed)."""
    if release.status != RELEASED:
        return set()
    with engine.connect() as conn:
        return _public_files(conn, release.id, release.files)


def _public_files(conn: sa.Connection, release_id: int, files: tuple[ReleaseFile, ...]) -> set[str]:
    """Files the author offered as public that both checkers approved as public."""
    current = _current_reviews(conn, release_id, files)
    return {f.file for f in files if f.public and len(current[f.file]) >= REVIEWERS
            and all(r.public and r.verdict == APPROVE for r in current[f.file].values())}


def download(engine: sa.Engine, release_id: int, file: str, viewer: policy.Actor | str,
             settings: Settings | None = None) -> Path:
    """The path of a released file, for the project's members and the steward, and for everyone when the
    file is public; written to the access log."""
    settings = settings or get_settings()
    with engine.begin() as conn:
        actor = policy.actor_of(conn, viewer)
        row = _row(conn, release_id)
        files = {f.file: f for f in _files(conn, release_id)}
        if row.status != RELEASED or file not in files:
            raise governance.NotFound(t("al_not_released", id=release_id))
        public = file in _public_files(conn, release_id, tuple(files.values()))
        policy.check(actor, "release.download", _project_target(conn, row.project_id, row.author, public=public))
        audit.log_access(conn, user=actor.name or "-", action="release.download", outcome="allowed",
                         project=row.project_id, reason=audit.Reason("release_file", {"id": release_id, "file": file}))
    return paths.within(release_folder(settings, release_id), files[file].file)


def withdraw(engine: sa.Engine, release_id: int, author: policy.Actor | str, comment: str | None = None,
             settings: Settings | None = None) -> None:
    """The author takes her request back (before it is decided); its files are removed."""
    actor = policy.actor_of(engine, author)
    settings = settings or get_settings()
    with engine.begin() as conn:
        row = _row(conn, release_id, lock=True)
        workflow.move(conn, WORKFLOW, release_id, WITHDRAWN, actor, policy.Target(owner=row.author), comment,
                      from_state=row.status, project=row.project_id)
    shutil.rmtree(release_folder(settings, release_id), ignore_errors=True)


def history(engine: sa.Engine, release_id: int) -> list[workflow.Event]:
    with engine.connect() as conn:
        return workflow.history(conn, WORKFLOW, release_id)


def _tell_checkers(conn: sa.Connection, release_id: int, title: str) -> None:
    """Every active output checker hears of a new request (her start page shows it)."""
    for name, roles in conn.execute(sa.select(users.c.name, users.c.roles).where(users.c.active.is_(True))):
        if policy.CHECKER in (roles or ()):
            notifications.notify(conn, name, "release_waiting", f"/uitvoer?id={release_id}", title=title)


def demo(engine: sa.Engine, settings: Settings | None = None) -> int | None:
    """A release request of the demo researcher's project waiting for the demo checkers (`make demo`,
    after `ldj demo-accounts`); its table is made with ldj.safe from made-up counts. Safe to run twice:
    returns the new request's id, or None when the project already has one."""
    settings = settings or get_settings()
    grants = governance.active_grants(engine, "onderzoeker")
    if not grants:
        raise governance.NotFound(t("vb_demo_accounts_missing", names="onderzoeker"))
    project_id = grants[0].project_id
    with engine.connect() as conn:
        if conn.execute(sa.select(releases.c.id).where(releases.c.project_id == project_id)).first():
            return None
    with tempfile.TemporaryDirectory(prefix="ldj-demo-release-") as tmp:
        folder = Path(tmp) / "outputs"
        session = safe.OutputSession(folder, settings=settings)
        frame = pd.DataFrame({"interventie": ["MST"] * 60 + ["IAG"] * 80 + ["FFT"] * 7,
                              "lvb": (["ja"] * 25 + ["nee"] * 35) + (["ja"] * 30 + ["nee"] * 50) + ["ja"] * 7})
        session.crosstab(frame["interventie"], frame["lvb"])
        session.add_comments(session.outputs()[0]["name"], "FFT heeft te weinig trajecten: die rij vervalt.")
        note = Path(tmp) / "samenvatting.txt"
        note.write_text("MST werkt voor jongeren met en zonder LVB ongeveer even goed (demo).", encoding="utf-8")
        session.custom_output(str(note), "Samenvatting voor de praktijk, zonder cijfers")
        session.finalise()
        custom = next(o["name"] for o in session.outputs() if o["kind"] == "custom")
        return submit(engine, "onderzoeker", project_id, folder, title="Uitval per interventie en LVB (demo)",
                      description="Trajecten per interventie, met en zonder LVB; een samenvatting voor de praktijk.",
                      public=[custom], settings=settings)


# --- read-only helpers for the portal (ldj.portal.airlock) ------------------------------------------

def kept_file(release: Release, name: str, settings: Settings | None = None) -> Path:
    """The kept copy of a file of `release` (a request its holder was allowed to read), for a preview on its
    page; not a download (that is `download`, once released)."""
    return paths.within(release_folder(settings or get_settings(), release.id), release.file(name).file)


def download_target(engine: sa.Engine, release_id: int, file: str) -> policy.Target:
    """The policy's target of downloading a file (`release.download`: the project, and `public` when the
    file is public), for a route that checks before it answers; `governance.NotFound` unless released."""
    with engine.connect() as conn:
        row = _row(conn, release_id)
        files = _files(conn, release_id)
        if row.status != RELEASED or file not in {f.file for f in files}:
            raise governance.NotFound(t("al_not_released", id=release_id))
        return _project_target(conn, row.project_id, row.author, public=file in _public_files(conn, release_id, files))
