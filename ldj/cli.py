"""`ldj`: the data steward's command line. Heavy libraries are imported inside the commands."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import paths
from .policy import ROLES
from .settings import get_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """LDJ research portal: the steward's tools (import, synthetic data, quarantine, store)."""
    from .deployment import private_umask

    private_umask()  # what the commands write into the data folder is the service account's alone


# --- import ----------------------------------------------------------------------------------

@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--delivered-by", help="Who delivered the files (stored with the batch).")
@click.option("--imported-by", default=None, help="Who runs the import (default: the OS user).")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON lines.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal).")
@click.option("--brief", is_flag=True, help="One line per file instead of the full report.")
@click.option("--snapshots/--no-snapshots", default=True, show_default=True,
              help="Afterwards, build the new data version's catalogue snapshots, dashboard figures and factsheet "
                   "(ldj refresh); until then the portal shows the previous version.")
def ingest(files: tuple[Path, ...], delivered_by: str | None, imported_by: str | None, as_json: bool,
           progress: bool | None, brief: bool, snapshots: bool) -> None:
    """Import delivery files (CSV, XLSX, SPSS .sav) into the LDJ store.

    Exit status 2 when any file as a whole was unusable; the other files are still imported.
    """
    import getpass

    from .i18n import t
    from .refresh import import_delivery

    def show(report) -> None:
        if as_json:
            click.echo(json.dumps(report.to_json(), ensure_ascii=False))
        elif brief and not report.unusable:
            click.echo(report.lines()[0] if report.status != "loaded" else
                       f"{Path(report.file).name}: {report.rows_loaded} geladen, {report.rows_quarantined} in quarantaine")
        else:
            for line in report.lines():
                click.echo(line, err=report.unusable)

    reports = import_delivery(files, delivered_by=delivered_by, imported_by=imported_by or getpass.getuser(),
                              progress=progress, refresh_views=snapshots, on_report=show,
                              on_wait=lambda: click.echo(t("ver_waiting"), err=True), say=_say)
    sys.exit(2 if any(r.unusable for r in reports) else 0)


def _say(key: str, version: str) -> None:
    from .i18n import t

    click.echo(t(key, version=version), err=True)


@main.command()
@click.option("--batch", "batch_id", type=int, help="Only this import batch.")
@click.option("--rule", help="Only this rule (e.g. between:total_problems_t).")
@click.option("--export", "export_path", type=click.Path(path_type=Path),
              help="Write the rows as CSV (semicolon, UTF-8 with BOM) for the delivering organisation.")
def quarantine(batch_id: int | None, rule: str | None, export_path: Path | None) -> None:
    """Quarantined rows by batch and rule; --export writes them for the delivering organisation."""
    from . import quarantine as q

    if export_path:
        n = q.export_csv(export_path, batch_id=batch_id, rule=rule)
        click.echo(f"{n} regels geschreven naar {export_path}")
        return
    rows = q.summary(batch_id=batch_id, rule=rule)
    if not rows:
        click.echo("Geen rijen in quarantaine.")
        return
    click.echo(f"{'levering':>8}  {'bestand':<36} {'regel':<40} {'rijen':>6}")
    for r in rows:
        click.echo(f"{r['batch_id']:>8}  {r['file_name'][:36]:<36} {r['rule'][:40]:<40} {r['rows']:>6}")


@main.command()
def batches() -> None:
    """Import batches with provenance and counts."""
    from . import quarantine as q

    for b in q.batches():
        click.echo(f"{b['id']:>5} {b['status']:<9} {b['organisation'] or '-':<8} {b['kind']:<14} {b['period'] or '-':<8} "
                   f"{b['rows_loaded']:>8} geladen {b['rows_quarantined']:>6} quarantaine  {b['file_name']}")


@main.command()
def summary() -> None:
    """What the store holds: organisations, clients, trajectories, questionnaires per instrument."""
    from .summary import store_summary

    s = store_summary()
    click.echo(f"Organisaties: {s['organisations']}  cliënten: {s['clients']} (bezwaar: {s['objections']})  "
               f"trajecten: {s['trajectories']}  vragenlijsten: {s['measurements']}")
    for row in s["per_instrument"]:
        click.echo(f"  {row['instrument']:<14} {row['informant']:<12} {row['moment']:<10} {row['n']:>8}")
    click.echo(f"Quarantaine: {s['quarantined']} rijen in {s['batches']} leveringen")


@main.command("refresh")
@click.option("--full", is_flag=True, help="Read the whole store again instead of only what changed (the reference).")
def refresh_command(full: bool) -> None:
    """Build the current data version's derived files (snapshots, dashboard cube, factsheet) and show it."""
    from . import store
    from .refresh import refresh

    refresh(store.get_engine(), get_settings(), say=_say, full=full)


@main.command()
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def prune(dry_run: bool) -> None:
    """Remove derived files of old data versions and the extracts of projects that ended (retention)."""
    from . import store

    _prune(store.get_engine(), dry_run=dry_run)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _prune(engine, dry_run: bool) -> None:
    from . import retention
    from .i18n import t

    removals = retention.prune(engine, get_settings(), dry_run=dry_run)
    for r in removals:
        click.echo(t("ret_line", kind=r.kind, path=r.path, size=_megabytes(r.bytes), reason=r.reason))
    size = _megabytes(retention.total_bytes(removals))
    click.echo(t("ret_summary_dry" if dry_run else "ret_summary", n=len(removals), size=size) if removals
               else t("ret_nothing"))


# --- the governed catalogue -------------------------------------------------------------------

@main.group()
def catalog() -> None:
    """The governed catalogue: entries, dictionaries, live counts, the master Intake catalogue."""


def _catalogue():
    from . import store
    from .catalogue import load_entries
    from .instruments import load_instruments

    settings = get_settings()
    return store.get_engine(settings), load_entries(settings.catalog_dir), load_instruments(settings.catalog_dir)


@catalog.command("list")
def catalog_list() -> None:
    """Every entry with its live counts (exact: for the steward's eyes)."""
    from .catalogue import entry_counts

    engine, entries, instruments = _catalogue()
    click.echo(f"{'item':<24} {'rijen':>8} {'cliënten':>9} {'org.':>5}  {'periode':<23} titel")
    for entry in entries.values():
        c = entry_counts(engine, entry, instruments)
        period = f"{c['first'] or '-'} – {c['last'] or '-'}"
        click.echo(f"{entry.id:<24} {c['rows']:>8} {c['clients']:>9} {c['organisations']:>5}  {period:<23} "
                   f"{entry.title['nl']}")


@catalog.command("show")
@click.argument("entry_id")
@click.option("--language", type=click.Choice(["nl", "en"]), default=None)
def catalog_show(entry_id: str, language: str | None) -> None:
    """One entry: description, counts and its data dictionary."""
    from .catalogue import entry_counts

    engine, entries, instruments = _catalogue()
    if entry_id not in entries:
        raise click.ClickException(f"onbekend catalogusitem '{entry_id}'; zie 'ldj catalog list'")
    entry = entries[entry_id]
    language = language or get_settings().language
    c = entry_counts(engine, entry, instruments)
    click.echo(f"{entry.id}: {entry.title[language]}\n{entry.description.get(language, '')}")
    click.echo(f"bron: {entry.source}  thema's: {', '.join(entry.themes)}  gevoeligheid: {entry.sensitivity}")
    click.echo(f"rijen: {c['rows']}  cliënten: {c['clients']}  organisaties: {c['organisations']}  "
               f"periode: {c['first']} – {c['last']}\n")
    click.echo(entry.dictionary(language).to_string(index=False))


@catalog.command("build")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder (default: <data_dir>/snapshots/<data version>, where extracts are made from).")
def catalog_build(out: Path | None) -> None:
    """Snapshot every entry to Parquet and write the master Intake catalogue (steward use).

    Run it after an import: project extracts are then cut from the snapshots at once."""
    from . import store
    from .catalogue import write_master_catalogue

    engine, entries, instruments = _catalogue()
    folder = out or paths.snapshot_folder(get_settings().data_dir, store.data_version(engine)[0])
    path = write_master_catalogue(engine, entries, instruments, folder, settings=get_settings())
    click.echo(f"Intake-catalogus geschreven: {path}")


# --- accounts, the APO workflow and the access log --------------------------------------------

def _gov():
    from . import governance, store

    return governance, store.get_engine(get_settings())


def _governed(fn):
    """Domain refusals (the policy's and the workflow's) become a plain message and exit status 1, never a
    traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .governance import GovernanceError
        from .policy import Refused

        try:
            return fn(*args, **kwargs)
        except (GovernanceError, Refused) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@main.group()
def users() -> None:
    """Accounts (the embedded default; production logs in through OpenID Connect)."""


@users.command("add")
@click.argument("name")
@click.option("--display-name", required=True)
@click.option("--organisation", required=True, help="Member code (ORG07) or institute name.")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES))
@click.option("--email")
@click.option("--password-stdin", is_flag=True, help="Read a password from standard input.")
@click.option("--show-name/--hide-name", default=False, show_default=True,
              help="Show the name to everyone; hidden, others outside the person's projects see role and organisation.")
@_governed
def users_add(name, display_name, organisation, roles, email, password_stdin, show_name) -> None:
    """Create an account."""
    gov, engine = _gov()
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    user = gov.add_user(engine, name, display_name=display_name, organisation=organisation, roles=roles,
                        email=email, password=password, show_name=show_name)
    click.echo(f"{user.name}: {', '.join(user.roles)} ({user.organisation})")


@users.command("set-show-name")
@click.argument("name")
@click.argument("show", type=click.Choice(["yes", "no"]))
@_governed
def users_set_show_name(name: str, show: str) -> None:
    """Whether NAME shows their name to everyone (yes) or a role and organisation to people outside
    their projects (no, the default). The person's own choice: set it on their request."""
    gov, engine = _gov()
    user = gov.set_show_name(engine, name, show == "yes")
    click.echo(f"{user.name}: {'naam zichtbaar' if user.show_name else 'naam verborgen (rol en organisatie)'}")


@users.command("list")
def users_list() -> None:
    """Every account with its roles."""
    gov, engine = _gov()
    for u in gov.list_users(engine):
        click.echo(f"{u.name:<16} {'actief' if u.active else 'inactief':<9} {','.join(u.roles):<28} "
                   f"{'naam' if u.show_name else '-':<5} {u.organisation or ''}")


@main.group()
def apo() -> None:
    """APO data requests: write, submit, review, decide, amend, close."""


def _entry_variables() -> dict[str, set[str]]:
    from .catalogue import load_entries

    return {e.id: set(e.variable_names) for e in load_entries(get_settings().catalog_dir).values()}


@apo.command("new")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--as", "actor", required=True, help="The applicant.")
@_governed
def apo_new(file: Path, actor: str) -> None:
    """A draft request from a YAML file (title, applicant_organisation, sejn_member, fee_eur, criteria,
    entries: {entry: [variables]}, members, access_from, access_until)."""
    import yaml

    gov, engine = _gov()
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    request_id = gov.create_request(
        engine, actor, title=data["title"], applicant_organisation=data["applicant_organisation"],
        sejn_member=bool(data["sejn_member"]), criteria=data["criteria"], entries=data["entries"],
        members=data.get("members", []), access_from=data.get("access_from"), access_until=data.get("access_until"),
        fee_eur=data.get("fee_eur"), catalogue=_entry_variables())
    click.echo(f"aanvraag {request_id} aangemaakt (concept)")


@apo.command("submit")
@click.argument("request_id", type=int)
@click.option("--as", "actor", required=True)
@_governed
def apo_submit(request_id: int, actor: str) -> None:
    """The applicant submits (or resubmits) a request."""
    gov, engine = _gov()
    click.echo(f"aanvraag {request_id}: {gov.status_label(gov.submit(engine, request_id, actor).status)}")


@apo.command("start-review")
@click.argument("request_id", type=int)
@click.option("--as", "actor", required=True)
@_governed
def apo_start_review(request_id: int, actor: str) -> None:
    """A steward puts a submitted request before the APO."""
    gov, engine = _gov()
    click.echo(f"aanvraag {request_id}: {gov.status_label(gov.start_review(engine, request_id, actor).status)}")


@apo.command("review")
@click.argument("request_id", type=int)
@click.option("--as", "actor", required=True)
@click.option("--scores", required=True, help="Six scores 1-5, one per criterion: 4,4,3,5,4,4")
@click.option("--vote", type=click.Choice(["approve", "approve_with_conditions", "revise", "reject", "abstain"]),
              required=True)
@click.option("--comment", default=None)
@_governed
def apo_review(request_id: int, actor: str, scores: str, vote: str, comment: str | None) -> None:
    """An APO member's scores per criterion and vote."""
    gov, engine = _gov()
    values = [int(x) for x in scores.split(",")]
    if len(values) != 6:
        raise click.ClickException("geef zes scores, één per criterium")
    gov.review(engine, request_id, actor, dict(enumerate(values, start=1)), {}, None if vote == "abstain" else vote,
               comment)
    click.echo(f"beoordeling van {actor} op aanvraag {request_id} opgeslagen")


@apo.command("decide")
@click.argument("request_id", type=int)
@click.option("--as", "actor", required=True)
@click.option("--conditions", default=None)
@_governed
def apo_decide(request_id: int, actor: str, conditions: str | None) -> None:
    """The steward records the decision the votes give."""
    gov, engine = _gov()
    decision = gov.decide(engine, request_id, actor, conditions)
    extra = f"; project {decision.project_id}" if decision.project_id else ""
    click.echo(f"aanvraag {request_id}: {gov.status_label(decision.status)}{extra}")


@apo.command("list")
@click.option("--status", default=None)
def apo_list(status: str | None) -> None:
    """Requests, newest first."""
    gov, engine = _gov()
    for r in gov.list_requests(engine, status=status):
        click.echo(f"{r.id:>5} {r.kind:<10} {gov.status_label(r.status):<40} {r.applicant:<12} {r.title}")


@apo.command("show")
@click.argument("request_id", type=int)
@_governed
def apo_show(request_id: int) -> None:
    """A request with its history."""
    gov, engine = _gov()
    r = gov.get_request(engine, request_id)
    click.echo(f"aanvraag {r.id}: {r.title}\nstatus: {gov.status_label(r.status)}  aanvrager: {r.applicant} "
               f"({r.applicant_organisation})")
    for e in gov.request_history(engine, request_id):
        click.echo(f"  {e.at:%Y-%m-%d %H:%M}  {e.from_status or '-'} -> {e.to_status}  door {e.actor}"
                   + (f"  ({e.note})" if e.note else ""))


@apo.command("amend")
@click.argument("project_id", type=int)
@click.option("--as", "actor", required=True, help="The project's applicant.")
@click.option("--add-member", "members", multiple=True, help="Another researcher to give the project's data.")
@click.option("--add-entry", "add_entries", multiple=True, metavar="ENTRY:VAR,VAR",
              help="More data: an entry and its variables.")
@click.option("--extend-until", type=click.DateTime(formats=["%Y-%m-%d"]), default=None)
@click.option("--reason", required=True)
@_governed
def apo_amend(project_id: int, actor: str, members: tuple[str, ...], add_entries: tuple[str, ...],
              extend_until, reason: str) -> None:
    """An amendment (more people, data or time); it is reviewed like a new request."""
    gov, engine = _gov()
    entries = {}
    for spec in add_entries:
        entry, _, variables = spec.partition(":")
        entries[entry] = [v for v in variables.split(",") if v]
    request_id = gov.create_amendment(engine, project_id, actor, add_entries=entries or None,
                                      add_members=list(members) or None,
                                      extend_until=extend_until.date() if extend_until else None, reason=reason,
                                      catalogue=_entry_variables())
    click.echo(f"wijzigingsaanvraag {request_id} aangemaakt (concept) voor project {project_id}")


@apo.command("close")
@click.argument("project_id", type=int)
@click.option("--as", "actor", required=True)
@click.option("--report", "report_file", type=click.Path(exists=True, path_type=Path), required=True,
              help="The final report: what the results mean for practice.")
@_governed
def apo_close(project_id: int, actor: str, report_file: Path) -> None:
    """Close a project with its final report."""
    gov, engine = _gov()
    gov.close_project(engine, project_id, actor, report_file.read_text(encoding="utf-8"))
    click.echo(f"project {project_id} gesloten")


@apo.command("revoke")
@click.argument("grant_id", type=int)
@click.option("--as", "actor", required=True)
@_governed
def apo_revoke(grant_id: int, actor: str) -> None:
    """A steward revokes a grant; it counts from the next read."""
    gov, engine = _gov()
    click.echo("ingetrokken" if gov.revoke_grant(engine, grant_id, actor) else "was al ingetrokken")


@main.command()
@click.option("--user", default=None)
@click.option("--project", type=int, default=None)
@click.option("--outcome", type=click.Choice(["allowed", "refused", "stopped", "removed", "recorded"]), default=None,
              help="recorded: the events of data requests, Vraagbank questions and releases.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, every field apart.")
def audit(user: str | None, project: int | None, outcome: str | None, limit: int, as_json: bool) -> None:
    """The access log: who read which data, when, for which project, and whether it was allowed.

    One entry per line; values that came from a request are shown escaped (a newline as \\u000a)."""
    import json

    from . import audit as access_log
    from . import store

    settings = get_settings()
    engine = store.get_engine(settings)
    with engine.connect() as conn:
        missing = store.missing_append_only_guards(conn)
    if missing:
        click.echo(f"LET OP: append-only-beveiliging ontbreekt: {', '.join(missing)}", err=True)
    for entry in access_log.entries(engine, user=user, project=project, outcome=outcome, limit=limit):
        click.echo(json.dumps(entry.to_json(settings.language), ensure_ascii=True) if as_json
                   else entry.line(settings.language))


def _attachments(files: tuple[Path, ...], factsheet_pdf: str | None) -> dict[str, Path] | None:
    out = {p.name: p for p in files}
    if factsheet_pdf == "build":
        from .factsheet import build

        out["factsheet.pdf"] = build()["pdf"]
    elif factsheet_pdf:
        if not Path(factsheet_pdf).is_file():
            raise click.ClickException(f"{factsheet_pdf}: bestand bestaat niet")
        out["factsheet.pdf"] = Path(factsheet_pdf)
    return out or None


@catalog.command("publish")
@click.option("--ckan", "ckan_url", required=True, metavar="URL", help="Base URL of the CKAN site.")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File holding the CKAN API token (default: the environment variable LDJ_CKAN_API_TOKEN).")
@click.option("--organisation", default="sejn-ldj", show_default=True, help="CKAN organisation (created if missing).")
@click.option("--portal-url", default=None, help="Base URL of the portal, for the request links.")
@click.option("--attach", "attachments", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file (e.g. the factsheet PDF) kept as a resource of the dataset ldj-factsheet; repeatable.")
@click.option("--factsheet-pdf", "factsheet_pdf", is_flag=False, flag_value="build", default=None, metavar="[PATH]",
              help="Attach the factsheet PDF as resource 'factsheet.pdf' of ldj-factsheet; without PATH it is "
                   "built first (ldj factsheet build).")
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
def catalog_publish(ckan_url: str, token_file: Path | None, organisation: str, portal_url: str | None,
                    attachments: tuple[Path, ...], factsheet_pdf: str | None, dry_run: bool) -> None:
    """Publish the catalogue's metadata (never any data) to a CKAN organisation; a second run changes nothing."""
    import os

    from . import store
    from .ckan import PublishError, publish

    token = token_file.read_text(encoding="utf-8").strip() if token_file else os.environ.get("LDJ_CKAN_API_TOKEN")
    if not token:
        raise click.ClickException("geen CKAN API-token: zet LDJ_CKAN_API_TOKEN of geef --token-file")
    settings = get_settings()
    try:
        report = publish(store.get_engine(settings), settings, ckan_url, token, organisation=organisation,
                         dry_run=dry_run, portal_url=portal_url,
                         attachments=_attachments(attachments, factsheet_pdf))
    except PublishError as exc:
        raise click.ClickException(str(exc)) from None
    for label, names in (("nieuw", report.created), ("bijgewerkt", report.updated), ("verwijderd", report.deleted)):
        for name in names:
            click.echo(f"{label}: {name}")
    click.echo(report.summary())


@catalog.command("for-user")
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where to write it (default: <data_dir>/users/NAME/catalog.yaml).")
def catalog_for_user(name: str, out: Path | None) -> None:
    """The Intake catalogue a workspace holds: exactly NAME's active grants, read through the data service."""
    from . import governance
    from .catalogue import load_entries, write_user_catalogue

    settings = get_settings()
    engine = _gov()[1]
    grants = [{"project": g.project_id, "entry": g.entry, "variables": g.variables}
              for g in governance.active_grants(engine, name)]
    path = write_user_catalogue(load_entries(settings.catalog_dir), grants, settings.data_service_url,
                                out or paths.user_file(settings.data_dir, name, "catalog.yaml"))
    click.echo(f"{path} ({len(grants)} toekenningen)")


# --- the Vraagbank ----------------------------------------------------------------------------

def _vb():
    from . import store, vraagbank

    return vraagbank, store.get_engine(get_settings())


@main.group()
def vraagbank() -> None:
    """The Vraagbank: practitioners' questions; the steward's triage and export."""


@vraagbank.command("list")
@click.option("--status", "statuses", multiple=True, help="Status code (default: the public ones); repeatable.")
@click.option("--category", default=None, help="target_group, approach or outcome.")
@click.option("--tag", default=None, help="A tag code: cbcl_6_18, mst, 12-17 ...")
@click.option("--text", default=None, help="Words that must occur in the title or the question.")
@click.option("--request", "request_id", type=int, default=None,
              help="Only questions picked up with this APO data request linked.")
@click.option("--sort", type=click.Choice(["votes", "newest"]), default="votes", show_default=True)
@click.option("--as", "actor", default=None, help="View as this user (default: as the public).")
@_governed
def vraagbank_list(statuses, category, tag, text, request_id, sort, actor) -> None:
    """Questions with status, votes and title."""
    vb, engine = _vb()
    for q in vb.list_questions(engine, actor, status=list(statuses) or None, category=category, tag=tag, text=text,
                               request_id=request_id, sort=sort):
        click.echo(f"{q.id:>4} {vb.status_label(q.status):<13} {q.votes:>3} stemmen  {q.title}")


@vraagbank.command("queue")
@click.option("--as", "actor", required=True)
@_governed
def vraagbank_queue(actor: str) -> None:
    """Submitted questions waiting for triage, oldest first."""
    vb, engine = _vb()
    for q in vb.triage_queue(engine, actor):
        click.echo(f"{q.id:>4} {q.created_at:%Y-%m-%d} {q.asker_organisation or '':<8} {q.title}")


@vraagbank.command("show")
@click.argument("question_id", type=int)
@click.option("--as", "actor", default=None, help="View as this user (default: as the public).")
@_governed
def vraagbank_show(question_id: int, actor: str | None) -> None:
    """One question with its tags, comments, pick-ups and history (Markdown as typed)."""
    vb, engine = _vb()
    q = vb.get_question(engine, question_id, actor)
    click.echo(f"vraag {q.id}: {q.title}\n{vb.status_label(q.status)} · {vb.category_label(q.category)} · "
               f"{q.votes} stemmen · {q.asker_label}")
    for kind, codes in q.tags.items():
        if codes:
            click.echo(f"  {vb.tag_kind_label(kind)}: {', '.join(codes)}")
    click.echo(f"\n{q.body}\n")
    if q.merged_into:
        click.echo(f"samengevoegd met vraag {q.merged_into}")
    if q.decline_reason:
        click.echo(f"reden afwijzing: {q.decline_reason}")
    for p in q.pickups:
        state = "ingetrokken" if p.withdrawn_at else "actief"
        click.echo(f"opgepakt ({state}): {p.picked_by_label}, {vb.pickup_kind_label(p.kind)}, {p.institution}, "
                   f"begeleider {p.supervisor_label or '-'}, {p.planned_from} – {p.planned_until}"
                   + (f", aanvraag {p.request_id}" if p.request_id else ""))
    if q.answer_summary:
        click.echo(f"antwoord ({q.answered_at:%Y-%m-%d}): {q.answer_summary}\nverslag: {q.answer_url}")
    for c in q.comments:
        click.echo(f"- {c.created_at:%Y-%m-%d %H:%M} {c.author_label}: {c.body}")
    for e in q.events:
        click.echo(f"  {e.at:%Y-%m-%d %H:%M} {e.actor_label:<14} {e.from_status or '-'} -> {e.to_status}"
                   + (f"  {e.note}" if e.note else ""))


@vraagbank.command("publish")
@click.argument("question_id", type=int)
@click.option("--as", "actor", required=True)
@_governed
def vraagbank_publish(question_id: int, actor: str) -> None:
    """The steward publishes a submitted question."""
    vb, engine = _vb()
    vb.publish(engine, actor, question_id)
    click.echo(f"vraag {question_id} gepubliceerd")


@vraagbank.command("merge")
@click.argument("question_id", type=int)
@click.option("--into", "target", type=int, required=True, help="The question it duplicates.")
@click.option("--as", "actor", required=True)
@_governed
def vraagbank_merge(question_id: int, target: int, actor: str) -> None:
    """The steward merges a duplicate into another question; its votes carry over."""
    vb, engine = _vb()
    q = vb.merge_duplicate(engine, actor, question_id, target)
    click.echo(f"vraag {question_id} samengevoegd met vraag {target} (nu {q.votes} stemmen)")


@vraagbank.command("decline")
@click.argument("question_id", type=int)
@click.option("--reason", required=True, help="Why; the asker reads it.")
@click.option("--as", "actor", required=True)
@_governed
def vraagbank_decline(question_id: int, reason: str, actor: str) -> None:
    """The steward declines a question with a reason."""
    vb, engine = _vb()
    vb.decline(engine, actor, question_id, reason)
    click.echo(f"vraag {question_id} afgewezen")


@vraagbank.command("export")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="CSV file (default: standard output).")
@click.option("--as", "actor", required=True)
@_governed
def vraagbank_export(out: Path | None, actor: str) -> None:
    """Every question as CSV (semicolon-separated, for Excel); stewards only."""
    vb, engine = _vb()
    text = vb.export_csv(engine, actor)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8-sig", newline="")
        click.echo(str(out))


@vraagbank.command("demo")
@_governed
def vraagbank_demo() -> None:
    """Demo questions in every status (after `ldj demo-accounts`); safe to run twice."""
    vb, engine = _vb()
    created = vb.seed_demo(engine, password=DEMO_PASSWORD)
    click.echo(f"Vraagbank: {created} demovragen toegevoegd")
    for name, display, _ in vb.DEMO_PRACTITIONERS:
        click.echo(f"  {name:<15} member      {display}")


@main.group()
def registry() -> None:
    """The research registry: LDJ projects and members' research without LDJ data."""


@registry.command("list")
@click.option("--kind", type=click.Choice(["ldj", "member"]), default=None, help="Only LDJ projects or members' research.")
@click.option("--text", default=None, help="Words that must occur in the title, organisation, description or result.")
@_governed
def registry_list(kind: str | None, text: str | None) -> None:
    """Every study in the registry, running ones first (as the public sees it)."""
    from . import registry as reg
    from . import store

    for st in reg.studies(store.get_engine(), kind=kind, text=text):
        click.echo(f"{st.kind:<6} {st.id:>4} {st.status:<8} {st.starts:%Y-%m-%d} {st.organisation[:20]:<20} {st.title}")


@registry.command("demo")
@_governed
def registry_demo() -> None:
    """Example registered studies for the demo (after `ldj demo-accounts`; safe to run twice)."""
    from . import registry as reg
    from . import store

    click.echo(f"Onderzoeksregister: {reg.demo(store.get_engine())} voorbeeldonderzoeken toegevoegd")


# --- the airlock: outputs leaving a workspace ---------------------------------------------------

@main.group()
def airlock() -> None:
    """The airlock: outputs written by ldj.safe, checked before they leave a workspace."""


@airlock.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per output: path, name, kind, status, reasons.")
def airlock_check(paths: tuple[Path, ...], as_json: bool) -> None:
    """Re-run the disclosure rules on outputs of ldj.safe from their metadata (files or folders);
    a file without metadata is `review`. Exit status 0 when every output passes, 1 otherwise."""
    from .i18n import t
    from .safe import check_paths, describe

    results = check_paths(list(paths))
    for result in results:
        click.echo(json.dumps(result, ensure_ascii=False) if as_json else f"{describe(result)}  [{result['path']}]")
    if not as_json:
        count = {status: sum(r["status"] == status for r in results) for status in ("pass", "fail", "review")}
        click.echo(t("safe_summary", n=len(results), passed=count["pass"], failed=count["fail"],
                     review=count["review"]))
    sys.exit(0 if results and all(r["status"] == "pass" for r in results) else 1)


@airlock.command("submit")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--project", "project_id", type=int, required=True)
@click.option("--as", "actor", required=True, help="The researcher of the project who submits.")
@click.option("--title", required=True)
@click.option("--description", required=True, help="What the outputs show, for the output checkers.")
@_governed
def airlock_submit(folder: Path, project_id: int, actor: str, title: str, description: str) -> None:
    """A release request of the project from a finalised ldj.safe folder (its manifest.json)."""
    from . import airlock as al

    release_id = al.submit(_gov()[1], actor, project_id, folder, title=title, description=description)
    click.echo(f"vrijgaveverzoek {release_id}: {al.status_label(al.SUBMITTED)}")


@airlock.command("list")
@click.option("--as", "actor", required=True, help="Whose view: the project's people see theirs, the steward all.")
@_governed
def airlock_list(actor: str) -> None:
    """Release requests, newest first."""
    from . import airlock as al

    for r in al.list_releases(_gov()[1], actor):
        click.echo(f"{r.id:>5} project {r.project_id:<5} {al.status_label(r.status):<36} {r.author:<12} {r.title}")


@airlock.command("show")
@click.argument("release_id", type=int)
@click.option("--as", "actor", required=True)
@_governed
def airlock_show(release_id: int, actor: str) -> None:
    """A release request: its files with their findings, and its history."""
    from . import airlock as al

    engine = _gov()[1]
    r = al.get_release(engine, release_id, actor)
    click.echo(f"vrijgaveverzoek {r.id}: {r.title}\nstatus: {al.status_label(r.status)}  project: {r.project_id}  "
               f"door: {r.author}\n{r.description}")
    verdicts = al.reviews(engine, release_id, actor)
    click.echo(f"controleurs: {', '.join(r.reviewers) or '-'}")
    for f in r.files:
        rules = ", ".join(dict.fromkeys(reason["rule"] for reason in f.reasons)) or "-"
        click.echo(f"  {f.status:<7} {f.kind:<11} {f.file}  ({rules}){'  [openbaar aangeboden]' if f.public else ''}")
        for v in verdicts.get(f.file, []):
            click.echo(f"      {v.reviewer}: {al.verdict_label(v.verdict)}{' (mag openbaar)' if v.public else ''}"
                       f"{'  ' + repr(v.comment) if v.comment else ''}")
    for e in al.history(engine, release_id):
        click.echo(f"  {e.at:%Y-%m-%d %H:%M} {e.actor}: {e.from_state or '-'} -> {e.to_state}"
                   f"{'  ' + repr(e.comment) if e.comment else ''}")


@airlock.command("withdraw")
@click.argument("release_id", type=int)
@click.option("--as", "actor", required=True)
@click.option("--comment", default=None)
@_governed
def airlock_withdraw(release_id: int, actor: str, comment: str | None) -> None:
    """The author takes her release request back; its copied files are removed."""
    from . import airlock as al

    al.withdraw(_gov()[1], release_id, actor, comment)
    click.echo(f"vrijgaveverzoek {release_id}: {al.status_label(al.WITHDRAWN)}")


@airlock.command("demo")
@_governed
def airlock_demo() -> None:
    """A release request of the demo project waiting for the demo checkers (after `ldj demo-accounts`)."""
    from . import airlock as al

    release_id = al.demo(_gov()[1])
    click.echo(f"Airlock: vrijgaveverzoek {release_id} wacht op controle-a en controle-b" if release_id
               else "Airlock: het demoproject heeft al een vrijgaveverzoek")


@airlock.command("claim")
@click.argument("release_id", type=int)
@click.option("--as", "actor", required=True, help="An output checker outside the project.")
@_governed
def airlock_claim(release_id: int, actor: str) -> None:
    """An output checker takes the request as one of its two checkers."""
    from . import airlock as al

    engine = _gov()[1]
    al.claim(engine, release_id, actor)
    click.echo(f"vrijgaveverzoek {release_id}: {al.status_label(al.get_release(engine, release_id, actor).status)}")


@airlock.command("review")
@click.argument("release_id", type=int)
@click.argument("file")
@click.argument("verdict", type=click.Choice(["approve", "changes", "reject"]))
@click.option("--as", "actor", required=True)
@click.option("--comment", default=None, help="Why (needed unless approving).")
@click.option("--public", is_flag=True, help="The checker agrees the file may be public once released.")
@_governed
def airlock_review(release_id: int, file: str, verdict: str, actor: str, comment: str | None, public: bool) -> None:
    """A checker's verdict on one file of the request."""
    from . import airlock as al

    al.review_file(_gov()[1], release_id, actor, file, verdict, comment, public=public)
    click.echo(f"vrijgaveverzoek {release_id}, {file}: {al.verdict_label(verdict)}")


@airlock.command("decide")
@click.argument("release_id", type=int)
@click.argument("decision", type=click.Choice(["returned", "approved", "rejected", "released"]))
@click.option("--as", "actor", required=True)
@click.option("--comment", default=None)
@_governed
def airlock_decide(release_id: int, decision: str, actor: str, comment: str | None) -> None:
    """One of the two checkers returns, approves or rejects the request, or releases an approved one."""
    from . import airlock as al

    engine = _gov()[1]
    if decision == al.RELEASED:
        answered = al.release(engine, release_id, actor, comment)
        if answered:
            click.echo(f"antwoord op vraag {', '.join(map(str, answered))}")
    else:
        al.decide(engine, release_id, actor, decision, comment)
    click.echo(f"vrijgaveverzoek {release_id}: {al.status_label(decision)}")

# --- the access policy ------------------------------------------------------------------------

@main.group("policy")
def policy_group() -> None:
    """The one access policy (ldj.policy): who may do what."""


@policy_group.command("table")
@click.option("--update", "document", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Rewrite the table between the policy-table markers of this file (docs/security.md).")
def policy_table(document: Path | None) -> None:
    """The role × action table as Markdown, generated from ldj.policy.RULES."""
    from .policy import table_markdown, with_table

    if document is None:
        click.echo(table_markdown(), nl=False)
        return
    try:
        document.write_text(with_table(document.read_text(encoding="utf-8")), encoding="utf-8")
    except ValueError as exc:
        raise click.ClickException(f"{document}: {exc}") from None
    click.echo(f"{document}: tabel bijgewerkt")


# --- the running stack ------------------------------------------------------------------------

DEMO_PASSWORD = "demo-ldj-2026"
DEMO_ACCOUNTS = (  # name, display name, organisation, roles
    ("steward", "Sanne de Steward", "SEJN", ["steward"]),
    ("apo-jansen", "Prof. Jansen (APO)", "Universiteit Utrecht", ["apo"]),
    ("apo-bakker", "Dr. Bakker (APO)", "Radboud Universiteit", ["apo"]),
    ("apo-visser", "Dr. Visser (APO)", "ORG02", ["apo"]),
    ("onderzoeker", "Olga Onderzoeker (met project)", "ORG01", ["researcher"]),
    ("student", "Sam Student (zonder project)", "Hogeschool Utrecht", ["researcher"]),
    ("praktijk", "Pim Praktijk (ORG01)", "ORG01", ["member"]),
    ("controle-a", "Carla Controleur (CBS)", "CBS", ["checker"]),
    ("controle-b", "Cor Controleur (UvA)", "Universiteit van Amsterdam", ["checker"]),
)


@main.command("demo-accounts")
@_governed
def demo_accounts() -> None:
    """Demo logins (one password) and an approved project for `onderzoeker`; safe to run twice."""
    from datetime import date, timedelta

    gov, engine = _gov()
    existing = {u.name for u in gov.list_users(engine)}
    for name, display, organisation, roles in DEMO_ACCOUNTS:
        if name not in existing:
            gov.add_user(engine, name, display_name=display, organisation=organisation, roles=roles,
                         password=DEMO_PASSWORD)
    if not gov.active_grants(engine, "onderzoeker"):
        criteria = {"aim_question": "Werkt MST even goed voor jongeren met een LVB als zonder?",
                    "fit_with_aims": "Wat werkt voor wie: precies de vraag van het LDJ.",
                    "answerable_with_ldj": "Ja: CBCL-paren, interventie en het LVB-kenmerk.",
                    "analyses": "Regressie van de verandering in T-score op LVB, met case-mix.",
                    "practical_relevance": "Teams weten of MST voor deze jongeren aangepast moet worden.",
                    "researchers": "Promovendus met begeleiding door een hoogleraar."}
        request = gov.create_request(
            engine, "onderzoeker", title="MST voor jongeren met een LVB", applicant_organisation="ORG01",
            sejn_member=True, criteria=criteria, members=[], access_from=date.today(),
            access_until=date.today() + timedelta(days=365), catalogue=_entry_variables(),
            entries={"trajectories": ["trajectory", "client", "intervention", "age_at_start", "gender", "lvb"],
                     "cbcl_6_18_pairs": ["trajectory", "client", "intervention", "age_at_start", "gender",
                                         "total_problems_start", "total_problems_end"]})
        gov.submit(engine, request, "onderzoeker")
        gov.start_review(engine, request, "steward")
        for reviewer in ("apo-jansen", "apo-bakker"):
            gov.review(engine, request, reviewer, {i: 4 for i in range(1, 7)}, {}, "approve")
        gov.decide(engine, request, "steward")
    if len(gov.list_requests(engine)) < 4:
        _demo_requests(gov, engine)
    click.echo(f"Demo-logins (wachtwoord voor allemaal: {DEMO_PASSWORD}):")
    for name, display, _, roles in DEMO_ACCOUNTS:
        click.echo(f"  {name:<12} {', '.join(roles):<11} {display}")


def _demo_requests(gov, engine) -> None:
    """Requests in review, submitted and in draft, so the APO pages of the demo have work to show."""
    from datetime import date, timedelta

    def new(applicant: str, title: str, aim: str, entries: dict) -> int:
        criteria = {"aim_question": aim, "fit_with_aims": "Wat werkt voor wie, in de dagelijkse praktijk.",
                    "answerable_with_ldj": "Ja: de gevraagde catalogusitems bevatten de uitkomsten en kenmerken.",
                    "analyses": "Beschrijvend, daarna multilevel-regressie met organisatie als niveau.",
                    "practical_relevance": "Teams krijgen per doelgroep te zien wat de hulp opleverde.",
                    "researchers": "Masterstudent, begeleid door een universitair docent."}
        return gov.create_request(engine, applicant, title=title, applicant_organisation="Hogeschool Utrecht",
                                  sejn_member=True, criteria=criteria, members=[], access_from=date.today(),
                                  access_until=date.today() + timedelta(days=180), catalogue=_entry_variables(),
                                  entries=entries)

    pairs = {"cbcl_6_18_pairs": ["trajectory", "client", "intervention", "age_at_start", "gender",
                                 "total_problems_start", "total_problems_end"]}
    in_review = new("student", "Probleemgedrag bij start van pleegzorg", "Neemt de ernst bij start van pleegzorg toe?",
                    pairs)
    gov.submit(engine, in_review, "student")
    gov.start_review(engine, in_review, "steward")
    gov.review(engine, in_review, "apo-jansen", {i: 4 for i in range(1, 7)}, {1: "Heldere vraag."}, "approve")
    submitted = new("student", "Uitval bij dagbehandeling", "Welke jongeren maken dagbehandeling niet af?",
                    {"trajectories": ["trajectory", "client", "intervention", "end_reason", "age_at_start"]})
    gov.submit(engine, submitted, "student")
    new("onderzoeker", "OBVL en gezinsbehandeling (concept)", "Daalt opvoedingsbelasting tijdens IAG?",
        {"obvl_pairs": ["trajectory", "client", "intervention", "total_start", "total_end"]})


@main.command()
def serve() -> None:
    """Start the hub (with its proxy and the data service) on the data folder; Ctrl-C stops it all.

    First the data folder is made the service account's alone (modes fixed, other owners refused), and
    the local spawner is checked: as root every workspace gets its own OS account; otherwise the hub
    refuses unless LDJ_ALLOW_SHARED_WORKSPACE_ACCOUNTS=true."""
    import signal
    import subprocess

    from . import deployment
    from .i18n import t
    from .settings import REPO_ROOT

    settings = get_settings()
    try:
        deployment.check_workspace_accounts(settings)
        for line in deployment.secure_data_dir(settings):
            click.echo(line, err=True)
        if settings.spawner == "local":
            deployment.prepare_homes(settings)
            deployment.workspace_python(settings)
    except deployment.DeploymentError as exc:
        raise click.ClickException(str(exc)) from None
    if deployment.shared_workspace_accounts(settings):
        click.echo(t("dep_shared_warning"), err=True)
    config = REPO_ROOT / "hub" / "jupyterhub_config.py"
    env = {**os.environ, "LDJ_DATA_DIR": str(settings.data_dir.resolve())}
    url = f"http://{settings.hub_ip}:{settings.hub_port}/"
    click.echo(f"LDJ-portaal: {url}  (werkomgevingen: {url}hub/home; stoppen met Ctrl-C)")
    hub = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)], env=env,
                           cwd=settings.data_dir.resolve())
    try:
        hub.wait()
    except KeyboardInterrupt:
        hub.send_signal(signal.SIGINT)
        try:
            hub.wait(timeout=30)
        except subprocess.TimeoutExpired:
            hub.kill()
    finally:
        proxy = settings.data_dir.resolve() / "hub" / "proxy.pid"  # the hub stops its proxy; make sure
        if proxy.exists():
            try:
                os.kill(int(proxy.read_text().strip()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass


# --- synthetic data --------------------------------------------------------------------------

@main.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--questionnaires", default=20_000, show_default=True, help="Total measurement rows.")
@click.option("--organisations", default=25, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--instruments", default=None, help="Comma-separated instrument codes (default: all).")
@click.option("--invalid-share", default=0.01, show_default=True, help="Share of deliberately invalid rows.")
@click.option("--format", "file_format", type=click.Choice(["csv", "xlsx"]), default="csv", show_default=True)
@click.option("--lead-share", type=float, default=None,
              help="Share of all questionnaires from ORG01, a large provider (default: sizes drawn like the rest).")
def synth(out_dir: Path, questionnaires: int, organisations: int, seed: int, instruments: str | None,
          invalid_share: float, file_format: str, lead_share: float | None) -> None:
    """Generate realistic synthetic BergOp deliveries into OUT_DIR."""
    from .synth import generate

    result = generate(out_dir, questionnaires=questionnaires, organisations=organisations, seed=seed,
                      instruments=instruments.split(",") if instruments else None, invalid_share=invalid_share,
                      catalog_dir=get_settings().catalog_dir, file_format=file_format, progress=sys.stderr.isatty(),
                      lead_share=lead_share)
    click.echo(f"{len(result.paths)} bestanden geschreven naar {out_dir}")


# --- definitions and store -------------------------------------------------------------------

@main.group()
def expectations() -> None:
    """The validation suites in expectations/."""


@expectations.command("build")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder (default: the setting).")
def expectations_build(out: Path | None) -> None:
    """(Re)build the suites from catalog/delivery.yaml and the instrument definitions."""
    from .delivery import load_spec
    from .expectations import write_suites

    settings = get_settings()
    for path in write_suites(load_spec(settings.catalog_dir), out or settings.expectations_dir):
        click.echo(str(path))


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/delivery-format.md"), show_default=True)
def docs(out: Path) -> None:
    """Write the delivery format documentation from the catalogue definitions."""
    from .delivery import load_spec
    from .docs import delivery_format_markdown

    out.write_text(delivery_format_markdown(load_spec(get_settings().catalog_dir)), encoding="utf-8")
    click.echo(str(out))


@main.command()
def instruments() -> None:
    """The instrument definitions in the catalogue."""
    from .instruments import load_instruments

    for inst in load_instruments(get_settings().catalog_dir).values():
        click.echo(f"{inst.code:<14} {inst.level:<6} {','.join(inst.informants):<24} {inst.name.get('nl')}")


@main.group()
def factsheet() -> None:
    """The factsheet: what the LDJ holds, disclosure-controlled."""


@factsheet.command("build")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for factsheet.html, .pdf and .json (default: <data_dir>/factsheet/).")
@click.option("--language", type=click.Choice(["nl", "en"]), default=None, help="Language (default: LDJ_LANGUAGE).")
def factsheet_build(out: Path | None, language: str | None) -> None:
    """Write the factsheet as HTML, PDF (A4) and JSON from the live numbers."""
    from .factsheet import build
    from .i18n import t

    paths = build(out, language=language)
    click.echo(t("fs_built", language, paths=", ".join(str(p) for p in paths.values())))


@main.group()
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the store to the newest schema."""
    from . import store

    engine = store.get_engine()
    click.echo(f"Schema bijgewerkt: {engine.url.render_as_string(hide_password=True)}")


@db.command("grant")
@click.argument("role")
def db_grant(role: str) -> None:
    """PostgreSQL: let ROLE (the services' login) use the store without owning it; the audit tables
    only to read and append. Run as the tables' owner after `ldj db upgrade`."""
    from . import store

    try:
        store.grant_service_role(store.get_engine(), role)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"rechten toegekend aan {role}")


@main.command("settings")
def show_settings() -> None:
    """Every setting, its current value and what it does."""
    from .settings import Settings

    s = get_settings()
    for name, f in Settings.model_fields.items():
        click.echo(f"LDJ_{name.upper():<22} = {getattr(s, name)!s:<40} {f.description}")


if __name__ == "__main__":  # pragma: no cover
    main()
