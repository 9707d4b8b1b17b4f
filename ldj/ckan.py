"""Publish the catalogue's metadata to a CKAN organisation (brief section 6, `ldj catalog publish`).

One CKAN dataset per catalogue entry, named `ldj-<entry id>` (underscores become hyphens), with
DCAT-AP-NL / HealthDCAT-AP-style fields as CKAN extras. Only metadata leaves the platform: titles,
descriptions, themes, the data dictionary (variable names, types, labels and value labels, never a
row), and counts after disclosure control. The data itself is reached only through an APO request:
each dataset's `url` is the request page of the portal.

Disclosure control (`ldj.disclosure`): `number_of_unique_individuals` and `number_of_records` are
`controlled_count` values (rounded to `disclosure_rounding`). When an entry has fewer clients than
`disclosure_threshold`, `number_of_unique_individuals` is published as the text "< <threshold>", and
`number_of_records`, `temporal_start` and `temporal_end` are left out. Temporal coverage is the
first and last date of the entry widened to whole months (the extremes are single records' dates).

Idempotent: the desired dataset is computed and compared with what CKAN holds, on the fields this
module owns only (title, notes, url, licence, maintainer, visibility, tags, the extras in
`OWNED_EXTRAS`, the data-dictionary resource). Changed datasets are patched (foreign extras and
resources are kept), unchanged ones are not touched, and datasets of the organisation named `ldj-*`
that no longer match an entry are deleted, and purged when the token may (sysadmins only).

Reads use `package_list` and `package_show`, which CKAN answers from its database: no search index
is needed to publish. `package_list` lists public datasets only, so an `ldj-*` dataset made private
by hand is not deleted when its entry is withdrawn (it is patched back to public while the entry
exists). Tags are owned whole: they are the entry's themes. The dataset `ldj-factsheet` is never
deleted; with `attachments` its resources are exactly the attached files.
"""

from __future__ import annotations

import calendar
import csv
import hashlib
import io
import json
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .catalogue import Entry, entry_counts, load_entries
from .disclosure import controlled_count
from .instruments import load_instruments
from .settings import Settings

PREFIX = "ldj-"
FACTSHEET_DATASET = "ldj-factsheet"
DICTIONARY_RESOURCE = "Datawoordenboek (variabelen)"
ACCESS_RIGHTS = "restricted (via de Adviescommissie Praktijkonderzoek)"
ACCESS_RIGHTS_URI = "http://publications.europa.eu/resource/authority/access-right/RESTRICTED"
CONFORMS_TO = "LDJ-aanleverformaat"
PUBLISHER = "SEJN — Lerende Databank Jeugd"
CONTACT_POINT = "Adviescommissie Praktijkonderzoek (APO), Lerende Databank Jeugd, SEJN"
LICENSE_ID = "other-closed"  # metadata is public, the data is not open
DEFAULT_PORTAL_URL = "http://127.0.0.1:5006"
THEME_LABELS = {"doelgroep": ("Doelgroep", "Target group"), "aanpak": ("Aanpak", "Approach"),
                "resultaat": ("Resultaat", "Result")}

# The extras this module owns: compared, written and removed by publish(); any other extra stays.
OWNED_EXTRAS = ("identifier", "title_en", "description_en", "access_rights", "access_rights_uri", "contact_point",
                "publisher", "theme", "temporal_start", "temporal_end", "number_of_records",
                "number_of_unique_individuals", "disclosure_control", "sensitivity", "conforms_to", "language",
                "source", "instrument", "number_of_variables", "request_url")
OWNED_FIELDS = ("title", "notes", "url", "license_id", "maintainer", "private")


class PublishError(RuntimeError):
    """CKAN could not be reached or refused: the message names the URL and what to check."""


class NotAuthorisedError(PublishError):
    """CKAN refused an action for this token."""


@dataclass
class PublishReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would be " if self.dry_run else ""
        return (f"{len(self.created)} {verb}created, {len(self.updated)} {verb}updated, "
                f"{len(self.deleted)} {verb}deleted, {len(self.unchanged)} unchanged")


def dataset_name(entry_id: str) -> str:
    """The CKAN dataset name of an entry: `ldj-` + the id with `_` → `-`, lower case."""
    return PREFIX + entry_id.replace("_", "-").lower()


# --- the desired datasets ---------------------------------------------------------------------

@dataclass(frozen=True)
class Upload:
    """A file this module keeps as a resource: compared by its SHA-256 (`ldj_checksum`)."""
    name: str
    filename: str
    content: bytes
    description: str = ""
    format: str = "CSV"
    resource_type: str = "documentation"

    @property
    def checksum(self) -> str:
        return "sha256:" + hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class Desired:
    name: str
    package: dict[str, Any]  # OWNED_FIELDS + tags + extras (as a dict)
    resources: tuple[Upload, ...]


def dictionary_csv(entry: Entry) -> bytes:
    """The data dictionary as CSV: one row per variable, labels in Dutch and English. No data."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["variable", "type", "label_nl", "label_en", "values", "identifier"])
    for v in entry.variables:
        writer.writerow([v.name, v.type, v.label.get("nl", v.name), v.label.get("en", v.name),
                         "; ".join(f"{k} = {lab}" for k, lab in v.value_labels.items()),
                         "projectpseudoniem" if v.identifier else ""])
    return out.getvalue().encode("utf-8")


def _month_start(iso: str) -> str:
    return date.fromisoformat(iso).replace(day=1).isoformat()


def _month_end(iso: str) -> str:
    d = date.fromisoformat(iso)
    return d.replace(day=calendar.monthrange(d.year, d.month)[1]).isoformat()


def published_counts(counts: dict, settings: Settings) -> dict[str, str]:
    """The count and coverage extras of an entry, after disclosure control (see the module doc)."""
    clients = controlled_count(counts["clients"], settings)
    if clients is None:
        return {"number_of_unique_individuals": f"< {settings.disclosure_threshold}"}
    out = {"number_of_unique_individuals": str(clients)}
    rows = controlled_count(counts["rows"], settings)
    if rows is not None:
        out["number_of_records"] = str(rows)
    if counts.get("first"):
        out["temporal_start"] = _month_start(counts["first"])
    if counts.get("last"):
        out["temporal_end"] = _month_end(counts["last"])
    return out


def desired_dataset(entry: Entry, counts: dict, settings: Settings, request_url: str,
                    contact_point: str = CONTACT_POINT) -> Desired:
    themes_nl = ", ".join(THEME_LABELS.get(t, (t, t))[0].lower() for t in entry.themes)
    notes = (f"{entry.description.get('nl', '').strip()}\n\n"
             f"Toegang: de gegevens zelf zijn niet openbaar. Onderzoekers vragen ze aan bij de Adviescommissie "
             f"Praktijkonderzoek (APO) van de Lerende Databank Jeugd: {request_url}\n\n"
             f"Thema's: {themes_nl}. Het datawoordenboek staat als bijlage bij deze dataset.").strip()
    extras = {
        "identifier": entry.id,
        "title_en": entry.title.get("en", ""),
        "description_en": entry.description.get("en", ""),
        "access_rights": ACCESS_RIGHTS,
        "access_rights_uri": ACCESS_RIGHTS_URI,
        "contact_point": contact_point,
        "publisher": PUBLISHER,
        "theme": ", ".join(entry.themes),
        "disclosure_control": (f"Aantallen afgerond op {settings.disclosure_rounding}; minder dan "
                               f"{settings.disclosure_threshold} cliënten wordt niet getoond. "
                               "Periode in hele maanden."),
        "sensitivity": entry.sensitivity,
        "conforms_to": CONFORMS_TO,
        "language": "nl",
        "source": entry.source,
        "number_of_variables": str(len(entry.variables)),
        "request_url": request_url,
        **published_counts(counts, settings),
    }
    if entry.instrument:
        extras["instrument"] = entry.instrument
    package = {
        "title": entry.title.get("nl", entry.id),
        "notes": notes,
        "url": request_url,
        "license_id": LICENSE_ID,
        "maintainer": contact_point,
        "private": False,
        "tags": sorted(set(entry.themes)),
        "extras": {k: v for k, v in extras.items() if v not in (None, "")},
    }
    dictionary = Upload(name=DICTIONARY_RESOURCE, filename=f"datawoordenboek-{entry.id}.csv",
                        content=dictionary_csv(entry),
                        description=f"Variabelen van '{entry.title.get('nl', entry.id)}': naam, type, label en "
                                    "waardelabels. Bevat geen gegevens over personen.")
    return Desired(dataset_name(entry.id), package, (dictionary,))


def desired_datasets(engine: sa.Engine, settings: Settings, request_url: str,
                     contact_point: str = CONTACT_POINT, portal_url: str | None = None) -> dict[str, Desired]:
    """Every entry of `settings.catalog_dir` as the dataset CKAN should hold, keyed by name."""
    entries = load_entries(settings.catalog_dir)
    instruments = load_instruments(settings.catalog_dir)
    portal = (portal_url or getattr(settings, "portal_url", None) or DEFAULT_PORTAL_URL).rstrip("/")
    out: dict[str, Desired] = {}
    for entry in entries.values():
        name = dataset_name(entry.id)
        if name == FACTSHEET_DATASET or name in out:
            raise PublishError(f"entry {entry.id!r} maps to the dataset name {name!r}, which is taken")
        counts = entry_counts(engine, entry, instruments)
        url = request_url.format(portal=portal, entry=entry.id)
        out[name] = desired_dataset(entry, counts, settings, url, contact_point)
    return out


# --- comparing with CKAN ----------------------------------------------------------------------

def _owned_state(package: dict) -> dict[str, Any]:
    """The fields publish() owns of a package_show result, in the shape of Desired.package."""
    state = {k: package.get(k) for k in OWNED_FIELDS}
    state["private"] = bool(state["private"])
    state["tags"] = sorted(t["name"] for t in package.get("tags", []))
    state["extras"] = {e["key"]: e["value"] for e in package.get("extras", []) if e["key"] in OWNED_EXTRAS}
    return state


def _normalise(desired: dict) -> dict:
    out = {k: desired.get(k) for k in OWNED_FIELDS}
    out["private"] = bool(out["private"])
    out["tags"] = sorted(desired["tags"])
    out["extras"] = dict(desired["extras"])
    return out


def _patch_body(desired: dict, current: dict | None) -> dict:
    """The package_patch/package_create body: our fields, our extras plus anyone else's."""
    foreign = [e for e in (current or {}).get("extras", []) if e["key"] not in OWNED_EXTRAS]
    body = {k: desired[k] for k in OWNED_FIELDS}
    body["tags"] = [{"name": t} for t in desired["tags"]]
    body["extras"] = foreign + [{"key": k, "value": v} for k, v in sorted(desired["extras"].items())]
    return body


def _resource_changes(package: dict | None, uploads: tuple[Upload, ...],
                      exclusive: bool = False) -> list[tuple[Upload | None, dict | None]]:
    """The uploads that differ from CKAN's resources of the same name, with that resource if any.

    With `exclusive`, every other resource is a change too: (None, resource) means delete it.
    """
    existing = {r.get("name"): r for r in (package or {}).get("resources", [])}
    wanted = {up.name for up in uploads}
    changes: list[tuple[Upload | None, dict | None]] = [
        (None, r) for r in (package or {}).get("resources", []) if exclusive and r.get("name") not in wanted]
    for up in uploads:
        res = existing.get(up.name)
        if (res is None or res.get("ldj_checksum") != up.checksum or (res.get("description") or "") != up.description
                or (res.get("format") or "").upper() != up.format.upper()
                or res.get("resource_type") != up.resource_type or res.get("url_type") != "upload"):
            changes.append((up, res))
    return changes


# --- talking to CKAN --------------------------------------------------------------------------

class _Ckan:
    """ckanapi with every failure turned into a PublishError that names the URL."""

    def __init__(self, url: str, token: str | None):
        import ckanapi

        self.url = url.rstrip("/")
        self.errors = ckanapi.errors
        self.remote = ckanapi.RemoteCKAN(self.url, apikey=token or None, user_agent="ldj-catalog-publish")

    def __call__(self, action: str, **data) -> Any:
        import requests

        files = {k: data.pop(k) for k in [k for k, v in data.items() if isinstance(v, tuple)]}
        try:
            return self.remote.call_action(action, data, files=files or None,
                                           requests_kwargs={"timeout": 60})
        except self.errors.NotFound:
            raise
        except self.errors.NotAuthorized as exc:
            raise NotAuthorisedError(f"CKAN at {self.url} refused {action}: not authorised ({_message(exc)}). "
                                     "Check the API token: it may be wrong or expired, or its user may lack "
                                     "the rights to publish in the organisation.") from None
        except self.errors.ValidationError as exc:
            raise PublishError(f"CKAN at {self.url} rejected {action}: {_message(exc)}") from None
        except self.errors.CKANAPIError as exc:
            raise PublishError(f"CKAN at {self.url} failed on {action}: {_message(exc)}") from None
        except requests.RequestException as exc:
            raise PublishError(f"CKAN at {self.url} is not reachable ({type(exc).__name__}: {exc})") from None

    def show(self, name: str) -> dict | None:
        try:
            return self("package_show", id=name)
        except self.errors.NotFound:
            return None


def _message(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    http = re.match(r"""\[['"]([^'"]*)['"], (\d{3}),""", str(arg))  # ckanapi: [url, status, body] of a non-API answer
    if http:
        return f"HTTP {http.group(2)} from {http.group(1)}: is this the address of a CKAN site?"
    if isinstance(arg, dict):
        arg = {k: v for k, v in arg.items() if k != "__type"}
        arg = arg.get("message") or json.dumps(arg, ensure_ascii=False)
    return str(arg)[:500]


def _upload(ckan: _Ckan, package_id: str, up: Upload, resource: dict | None) -> None:
    mimetype = mimetypes.guess_type(up.filename)[0] or "application/octet-stream"
    fields = dict(name=up.name, description=up.description, format=up.format, resource_type=up.resource_type,
                  ldj_checksum=up.checksum, upload=(up.filename, io.BytesIO(up.content), mimetype))
    if resource is None:
        ckan("resource_create", package_id=package_id, **fields)
    else:
        ckan("resource_patch", id=resource["id"], **fields)


def _ensure_organisation(ckan: _Ckan, organisation: str, dry_run: bool) -> str | None:
    """The organisation's id (created if missing); refuses early when the token cannot write to it."""
    try:
        org = ckan("organization_show", id=organisation, include_datasets=False, include_dataset_count=False,
                   include_users=False, include_groups=False, include_extras=False, include_tags=False,
                   include_followers=False)
    except ckan.errors.NotFound:
        if dry_run:
            return None
        org = ckan("organization_create", name=organisation, title="Lerende Databank Jeugd (SEJN)",
                   description="Metadata van de onderzoeksgegevens van de Lerende Databank Jeugd. "
                               "Toegang tot de gegevens via de Adviescommissie Praktijkonderzoek (APO).")
        return org["id"]
    writable = ckan("organization_list_for_user", permission="create_dataset")
    if not any(o["id"] == org["id"] for o in writable):
        raise PublishError(f"CKAN at {ckan.url}: the API token may not publish in organisation {organisation!r}. "
                           "It is missing, wrong or expired, or its user is not an editor or admin there.")
    return org["id"]


def _list_prefixed(ckan: _Ckan) -> list[str]:
    names, offset, page = [], 0, 1000
    while True:
        batch = ckan("package_list", limit=page, offset=offset)
        names += [n for n in batch if n.startswith(PREFIX)]
        if len(batch) < page:
            return names
        offset += page


def _sync(ckan: _Ckan, org_id: str | None, name: str, package: dict, uploads: tuple[Upload, ...],
          report: PublishReport, dry_run: bool, organisation: str, exclusive: bool = False) -> dict | None:
    current = ckan.show(name) if org_id is not None else None
    if current is not None and current.get("owner_org") != org_id:
        raise PublishError(f"CKAN at {ckan.url}: dataset {name!r} exists but belongs to another organisation, "
                           f"not {organisation!r}; rename or remove it there first")
    if current is None or current.get("state") != "active":
        report.created.append(name)
        if dry_run:
            return None
        body = _patch_body(package, current)
        if current is None:
            current = ckan("package_create", name=name, owner_org=org_id, **body)
        else:  # deleted earlier but not purged: bring it back
            current = ckan("package_patch", id=current["id"], state="active", **body)
        changes = _resource_changes(current, uploads, exclusive)
    else:
        changes = _resource_changes(current, uploads, exclusive)
        differs = _owned_state(current) != _normalise(package)
        if not differs and not changes:
            report.unchanged.append(name)
            return current
        report.updated.append(name)
        if dry_run:
            return current
        if differs:
            current = ckan("package_patch", id=current["id"], **_patch_body(package, current))
    for up, resource in changes:
        if up is None:
            ckan("resource_delete", id=resource["id"])
        else:
            _upload(ckan, current["id"], up, resource)
    return current


def _factsheet_package(attachments: dict[str, Path], portal: str) -> tuple[dict, tuple[Upload, ...]]:
    uploads = tuple(Upload(name=key, filename=Path(path).name, content=Path(path).read_bytes(),
                           description=f"Factsheet: {key}", format=Path(path).suffix.lstrip(".").upper() or "PDF",
                           resource_type="documentation")
                    for key, path in sorted(attachments.items()))
    package = {"title": "Lerende Databank Jeugd: factsheet", "url": portal, "license_id": LICENSE_ID,
               "notes": "Factsheets met geaggregeerde cijfers van de Lerende Databank Jeugd, na "
                        "onthullingscontrole. Bevat geen gegevens over personen.",
               "maintainer": CONTACT_POINT, "private": False, "tags": ["factsheet"],
               "extras": {"publisher": PUBLISHER, "language": "nl", "access_rights": "public"}}
    return package, uploads


def publish(engine: sa.Engine, settings: Settings, ckan_url: str, api_token: str | None,
            organisation: str = "sejn-ldj", request_url: str = "{portal}/aanvragen/nieuw?entry={entry}",
            dry_run: bool = False, *, portal_url: str | None = None, contact_point: str = CONTACT_POINT,
            attachments: dict[str, Path] | None = None) -> PublishReport:
    """Sync the catalogue's metadata to `organisation` on the CKAN at `ckan_url` (see the module doc).

    `request_url` is formatted with `portal` (portal_url, else `settings.portal_url` if that setting
    exists, else http://127.0.0.1:5006) and `entry` (the entry id). With `dry_run` nothing is
    written; the report says what would change. `attachments` (name → file, e.g. the factsheet
    PDF) are kept as resources of the dataset `ldj-factsheet`, compared by checksum.
    """
    ckan = _Ckan(ckan_url, api_token)
    try:  # reachable at all? A clear error before the counts are computed.
        ckan("status_show")
    except ckan.errors.NotFound:
        raise PublishError(f"CKAN at {ckan.url}: no CKAN action API there (status_show not found)") from None
    desired = desired_datasets(engine, settings, request_url, contact_point, portal_url)
    report = PublishReport(dry_run=dry_run)
    org_id = _ensure_organisation(ckan, organisation, dry_run)
    for name, want in desired.items():
        _sync(ckan, org_id, name, want.package, want.resources, report, dry_run, organisation)
    if attachments:
        portal = (portal_url or getattr(settings, "portal_url", None) or DEFAULT_PORTAL_URL).rstrip("/")
        package, uploads = _factsheet_package(attachments, portal)
        _sync(ckan, org_id, FACTSHEET_DATASET, package, uploads, report, dry_run, organisation, exclusive=True)
    if org_id is None:  # dry run against a CKAN without the organisation: nothing to delete
        return report
    for name in _list_prefixed(ckan):
        if name in desired or name == FACTSHEET_DATASET:
            continue
        current = ckan.show(name)
        if current is None or current.get("owner_org") != org_id or current.get("state") != "active":
            continue
        report.deleted.append(name)
        if dry_run:
            continue
        ckan("package_delete", id=current["id"])
        try:
            ckan("dataset_purge", id=current["id"])
        except NotAuthorisedError:
            pass  # purging needs a sysadmin: the dataset stays deleted (in CKAN's trash)
    return report
