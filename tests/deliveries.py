"""Small hand-made deliveries for the import tests, written the way Dutch Excel writes CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

TRAJECTORY_COLUMNS = [
    "Organisatie", "Periode", "Cliëntnummer", "Trajectnummer", "Team", "Geboortedatum", "Geslacht",
    "Diagnose bij start", "LVB", "Bezwaar", "Behandelaarnummer", "Discipline behandelaar", "Interventie",
    "Startdatum", "Einddatum", "Reden einde", "Technieken", "Contextfactoren", "Woont thuis bij einde",
]

CBCL_SCALES = [
    "Angstig/depressief", "Teruggetrokken/depressief", "Lichamelijke klachten", "Sociale problemen",
    "Denkproblemen", "Aandachtsproblemen", "Regelovertredend gedrag", "Agressief gedrag",
    "Internaliseren", "Externaliseren", "Totale problemen",
]
MEASUREMENT_COLUMNS = ["Organisatie", "Periode", "Cliëntnummer", "Trajectnummer", "Afnamenummer", "Vragenlijst",
                       "Informant", "Meetmoment", "Afnamedatum"]


def trajectory(client: str, traj: str, **over) -> dict:
    row = {
        "Organisatie": "ORG01", "Periode": "2024", "Cliëntnummer": client, "Trajectnummer": traj,
        "Team": "Team Noord", "Geboortedatum": "15-03-2010", "Geslacht": "M", "Diagnose bij start": "ADHD",
        "LVB": "nee", "Bezwaar": "nee", "Behandelaarnummer": "P001", "Discipline behandelaar": "gezinstherapeut",
        "Interventie": "MST", "Startdatum": "05-09-2022", "Einddatum": "20-02-2023", "Reden einde": "volgens plan",
        "Technieken": "oudertraining|gezinsgesprekken", "Contextfactoren": "", "Woont thuis bij einde": "ja",
    }
    row.update(over)
    return row


def cbcl(client: str, traj: str, admin: str, moment: str, total_t: float, **over) -> dict:
    row = {"Organisatie": "ORG01", "Periode": "2024", "Cliëntnummer": client, "Trajectnummer": traj,
           "Afnamenummer": admin, "Vragenlijst": "CBCL/6-18", "Informant": "ouder", "Meetmoment": moment,
           "Afnamedatum": "06-09-2022" if moment == "start" else "18-02-2023"}
    for scale in CBCL_SCALES:
        row[f"{scale} ruw"] = "15"
        row[f"{scale} T"] = "60"
    row["Totale problemen T"] = str(total_t).replace(".", ",")
    row.update(over)
    return row


def write_csv(path: Path, rows: list[dict], encoding: str = "utf-8-sig") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep=";", index=False, encoding=encoding)
    return path
