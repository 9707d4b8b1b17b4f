"""`ldj`: the data steward's command line. Heavy libraries are imported inside the commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .settings import get_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """LDJ research portal: the steward's tools (import, synthetic data, quarantine, store)."""


# --- import ----------------------------------------------------------------------------------

@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--delivered-by", help="Who delivered the files (stored with the batch).")
@click.option("--imported-by", default=None, help="Who runs the import (default: the OS user).")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON lines.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal).")
@click.option("--brief", is_flag=True, help="One line per file instead of the full report.")
def ingest(files: tuple[Path, ...], delivered_by: str | None, imported_by: str | None, as_json: bool,
           progress: bool | None, brief: bool) -> None:
    """Import delivery files (CSV, XLSX, SPSS .sav) into the LDJ store.

    Exit status 2 when any file as a whole was unusable; the other files are still imported.
    """
    import getpass

    from .ingest import Ingestor

    ingestor = Ingestor(progress=progress, imported_by=imported_by or getpass.getuser())

    def show(report) -> None:
        if as_json:
            click.echo(json.dumps(report.to_json(), ensure_ascii=False))
        elif brief and not report.unusable:
            click.echo(report.lines()[0] if report.status != "loaded" else
                       f"{Path(report.file).name}: {report.rows_loaded} geladen, {report.rows_quarantined} in quarantaine")
        else:
            for line in report.lines():
                click.echo(line, err=report.unusable)

    reports = ingestor.ingest_many(_expand(files), delivered_by=delivered_by, on_report=show)
    sys.exit(2 if any(r.unusable for r in reports) else 0)


def _expand(files: tuple[Path, ...]) -> list[Path]:
    """Folders expand to their delivery files, trajectory files first."""
    out: list[Path] = []
    for f in files:
        if f.is_dir():
            found = sorted(p for p in f.iterdir() if p.suffix.lower() in (".csv", ".xlsx", ".sav"))
            out += sorted(found, key=lambda p: (0 if "traject" in p.name.lower() else 1, p.name))
        else:
            out.append(f)
    return out


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
              help="Folder (default: <data_dir>/catalogue).")
def catalog_build(out: Path | None) -> None:
    """Snapshot every entry to Parquet and write the master Intake catalogue (steward use)."""
    from .catalogue import write_master_catalogue

    engine, entries, instruments = _catalogue()
    path = write_master_catalogue(engine, entries, instruments, out or get_settings().data_dir / "catalogue")
    click.echo(f"Intake-catalogus geschreven: {path}")


# --- synthetic data --------------------------------------------------------------------------

@main.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--questionnaires", default=20_000, show_default=True, help="Total measurement rows.")
@click.option("--organisations", default=25, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--instruments", default=None, help="Comma-separated instrument codes (default: all).")
@click.option("--invalid-share", default=0.01, show_default=True, help="Share of deliberately invalid rows.")
@click.option("--format", "file_format", type=click.Choice(["csv", "xlsx"]), default="csv", show_default=True)
def synth(out_dir: Path, questionnaires: int, organisations: int, seed: int, instruments: str | None,
          invalid_share: float, file_format: str) -> None:
    """Generate realistic synthetic BergOp deliveries into OUT_DIR."""
    from .synth import generate

    result = generate(out_dir, questionnaires=questionnaires, organisations=organisations, seed=seed,
                      instruments=instruments.split(",") if instruments else None, invalid_share=invalid_share,
                      catalog_dir=get_settings().catalog_dir, file_format=file_format, progress=sys.stderr.isatty())
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
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the store to the newest schema."""
    from . import store

    engine = store.get_engine()
    click.echo(f"Schema bijgewerkt: {engine.url.render_as_string(hide_password=True)}")


@main.command("settings")
def show_settings() -> None:
    """Every setting, its current value and what it does."""
    from .settings import Settings

    s = get_settings()
    for name, f in Settings.model_fields.items():
        click.echo(f"LDJ_{name.upper():<22} = {getattr(s, name)!s:<40} {f.description}")


if __name__ == "__main__":  # pragma: no cover
    main()
