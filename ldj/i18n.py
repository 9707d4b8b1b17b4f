"""All user-facing texts in one place, Dutch first, English second.

`t(key, **fields)` formats the text in the configured language (`LDJ_LANGUAGE`). Portal pages,
CLI output and quarantine reasons all come from here.
"""

from __future__ import annotations

TEXTS: dict[str, tuple[str, str]] = {
    # whole-file problems (delivery.py)
    "err_missing_file": ("bestand bestaat niet", "file does not exist"),
    "err_empty": ("het bestand is leeg", "the file is empty"),
    "err_no_rows": ("het bestand heeft een kopregel maar geen gegevensregels", "the file has a header but no data rows"),
    "err_utf16": ("het bestand is als UTF-16 opgeslagen; sla het op als 'CSV UTF-8 (door komma's gescheiden)'",
                  "the file is saved as UTF-16; save it as 'CSV UTF-8'"),
    "err_encoding": ("onbekende tekencodering: het bestand is geen UTF-8 en geen Windows-1252",
                     "unknown encoding: the file is neither UTF-8 nor Windows-1252"),
    "err_binary": ("dit is geen tekstbestand (CSV); lever CSV, XLSX of SPSS (.sav) aan",
                   "this is not a text (CSV) file; deliver CSV, XLSX or SPSS (.sav)"),
    "err_zip_not_xlsx": ("dit lijkt een ZIP- of Office-bestand maar heeft geen .xlsx-extensie",
                         "this looks like a ZIP or Office file but does not have an .xlsx extension"),
    "err_not_spreadsheet": ("dit is geen geldig Excel-bestand (.xlsx); oude .xls-bestanden worden niet ondersteund",
                            "this is not a valid Excel file (.xlsx); old .xls files are not supported"),
    "err_not_spreadsheet_detail": ("dit is geen leesbaar Excel-bestand ({detail})", "this is not a readable Excel file ({detail})"),
    "err_not_sav": ("dit is geen SPSS-bestand (.sav)", "this is not an SPSS file (.sav)"),
    "err_not_sav_detail": ("dit SPSS-bestand is niet leesbaar: {detail}", "this SPSS file cannot be read: {detail}"),
    "err_csv_parse": ("de CSV-opmaak klopt niet: {detail}", "the CSV layout is broken: {detail}"),
    "err_no_instrument": ("de kolom Vragenlijst is leeg", "the instrument column is empty"),
    "err_many_instruments": ("het bestand bevat meerdere vragenlijsten ({names}); lever één bestand per vragenlijst",
                             "the file holds several instruments ({names}); deliver one file per instrument"),
    "err_unknown_instrument": ("onbekende vragenlijst '{name}'; bekend zijn: {known}",
                               "unknown instrument '{name}'; known: {known}"),
    "err_unknown_kind": ("onbekend soort bestand: geen kolom Vragenlijst (meetbestand) en geen Interventie/Startdatum (trajectbestand)",
                         "unknown kind of file: no instrument column (measurements) and no intervention/start date (trajectories)"),
    "err_duplicate_columns": ("kolommen komen dubbel voor: {columns}", "columns occur twice: {columns}"),
    "err_missing_columns": ("verplichte kolommen ontbreken: {columns}", "required columns are missing: {columns}"),
    "err_organisation_not_single": ("de kolom Organisatie moet in het hele bestand één waarde hebben (gevonden: {values})",
                                    "the organisation column must hold one value in the whole file (found: {values})"),
    "err_period_not_single": ("de kolom Periode moet in het hele bestand één waarde hebben (gevonden: {values})",
                              "the period column must hold one value in the whole file (found: {values})"),
    "err_no_suite": ("geen validatieset voor '{kind}' in {folder}; voer 'ldj expectations build' uit",
                     "no expectation suite for '{kind}' in {folder}; run 'ldj expectations build'"),
    # row problems
    "row_type_date": ("{label}: geen geldige datum (verwacht dd-mm-jjjj of jjjj-mm-dd)",
                      "{label}: not a valid date (expected dd-mm-yyyy or yyyy-mm-dd)"),
    "row_type_number": ("{label}: geen geldig getal", "{label}: not a valid number"),
    "row_type_boolean": ("{label}: verwacht ja of nee", "{label}: expected yes or no"),
    "row_not_null": ("{label}: verplicht veld is leeg", "{label}: required field is empty"),
    "row_in_set": ("{label}: waarde niet toegestaan (toegestaan: {values})", "{label}: value not allowed (allowed: {values})"),
    "row_between": ("{label}: waarde buiten bereik {min} – {max}", "{label}: value outside {min} – {max}"),
    "row_unique": ("{label}: komt vaker voor in het bestand", "{label}: occurs more than once in the file"),
    "row_after": ("{label}: ligt vóór {other}", "{label}: lies before {other}"),
    "row_regex": ("{label}: onjuiste opmaak", "{label}: wrong format"),
    "row_other_organisation": ("Organisatie: wijkt af van de rest van het bestand", "organisation differs from the rest of the file"),
    # ingest report
    "report_header": ("{file}: {kind}, organisatie {organisation}, periode {period}",
                      "{file}: {kind}, organisation {organisation}, period {period}"),
    "report_loaded": ("  geladen: {n} rijen", "  loaded: {n} rows"),
    "report_quarantined": ("  in quarantaine: {n} rijen", "  quarantined: {n} rows"),
    "report_rule": ("    {rule}: {n}", "    {rule}: {n}"),
    "report_replaced": ("  vervangen uit eerdere levering(en) {batches}: {n} rijen", "  replaced from earlier delivery {batches}: {n} rows"),
    "report_masked": ("  vrije tekst: {n} BSN/e-mail/telefoon gemaskeerd", "  free text: {n} BSN/e-mail/phone masked"),
    "report_ignored": ("  genegeerde kolommen (niet opgeslagen): {columns}", "  ignored columns (not stored): {columns}"),
    "report_duplicate": ("{file}: al geïmporteerd als levering {batch} op {when}; niets gewijzigd",
                         "{file}: already imported as batch {batch} on {when}; nothing changed"),
    "report_rejected": ("{file}: AFGEWEZEN — {reason}", "{file}: REJECTED — {reason}"),
}


def t(key: str, language: str | None = None, **fields) -> str:
    if language is None:
        from .settings import get_settings

        language = get_settings().language
    nl, en = TEXTS[key]
    return (en if language == "en" else nl).format(**fields)
