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
    # governance: accounts and the APO workflow (ldj.governance)

    # statuses, as shown to people
    "gov_status_draft": ("concept", "draft"),
    "gov_status_submitted": ("ingediend", "submitted"),
    "gov_status_in_review": ("in beoordeling", "in review"),
    "gov_status_revision_requested": ("herziening gevraagd", "revision requested"),
    "gov_status_approved": ("goedgekeurd", "approved"),
    "gov_status_approved_with_conditions": ("goedgekeurd onder voorwaarden", "approved with conditions"),
    "gov_status_rejected": ("afgewezen", "rejected"),
    "gov_status_closed": ("afgesloten", "closed"),
    "gov_a_decision": ("een besluit", "a decision"),
    "gov_nothing": ("niets (eindstatus)", "nothing (final status)"),
    # accounts
    "gov_unknown_user": ("onbekende gebruiker '{name}'", "unknown user '{name}'"),
    "gov_user_exists": ("gebruiker '{name}' bestaat al", "user '{name}' already exists"),
    "gov_user_name_empty": ("de gebruikersnaam is leeg", "the user name is empty"),
    "gov_user_inactive": ("gebruiker '{name}' is gedeactiveerd", "user '{name}' is deactivated"),
    "gov_bad_roles": ("onbekende rol(len): {roles}; toegestaan: {allowed}", "unknown role(s): {roles}; allowed: {allowed}"),
    "gov_missing_role": ("'{name}' heeft niet de rol '{role}' die hiervoor nodig is",
                         "'{name}' does not have the role '{role}' needed for this"),
    "gov_password_empty": ("het wachtwoord is leeg", "the password is empty"),
    # lookups
    "gov_unknown_request": ("aanvraag {id} bestaat niet", "request {id} does not exist"),
    "gov_unknown_project": ("project {id} bestaat niet", "project {id} does not exist"),
    "gov_unknown_grant": ("autorisatie {id} bestaat niet", "grant {id} does not exist"),
    # transitions
    "gov_illegal_transition": ("aanvraag {id} staat op {current} en kan niet naar {wanted}; vanuit {current} kan alleen: {allowed}",
                               "request {id} is {current} and cannot move to {wanted}; from {current} it can only move to: {allowed}"),
    "gov_changed_meanwhile": ("aanvraag {id} is intussen door iemand anders gewijzigd; probeer het opnieuw",
                              "request {id} was changed by someone else meanwhile; try again"),
    "gov_not_editable": ("aanvraag {id} staat op {current}; wijzigen kan alleen als concept of als herziening gevraagd is",
                         "request {id} is {current}; it can only be changed while draft or revision requested"),
    "gov_not_applicant": ("alleen de aanvrager ({applicant}) mag dit doen met aanvraag {id}, niet '{actor}'",
                          "only the applicant ({applicant}) may do this with request {id}, not '{actor}'"),
    # the request's content
    "gov_title_empty": ("de titel is leeg", "the title is empty"),
    "gov_organisation_empty": ("de organisatie van de aanvrager is leeg", "the applicant's organisation is empty"),
    "gov_criteria_unknown": ("onbekend criterium: {keys}; de criteria zijn: {allowed}",
                             "unknown criterion: {keys}; the criteria are: {allowed}"),
    "gov_criteria_missing": ("deze criteria zijn nog niet ingevuld: {keys}", "these criteria are not filled in yet: {keys}"),
    "gov_no_entries": ("de aanvraag noemt geen catalogusitems", "the request names no catalogue entries"),
    "gov_no_variables": ("catalogusitem '{entry}': noem de variabelen die nodig zijn",
                         "catalogue entry '{entry}': name the variables needed"),
    "gov_unknown_entry": ("onbekend catalogusitem '{entry}'", "unknown catalogue entry '{entry}'"),
    "gov_unknown_variables": ("catalogusitem '{entry}' heeft geen variabele(n) {variables}",
                              "catalogue entry '{entry}' has no variable(s) {variables}"),
    "gov_catalogue_needed": ("om catalogusitems te controleren is de catalogus nodig",
                             "the catalogue is needed to check catalogue entries"),
    "gov_no_period": ("de periode (van en tot) ontbreekt", "the period (from and until) is missing"),
    "gov_bad_period": ("de periode klopt niet: {start} ligt na {end}", "the period is wrong: {start} is after {end}"),
    "gov_fee_required": ("een externe aanvrager betaalt een vergoeding: leg het bedrag vast voor het indienen",
                         "an external applicant pays a fee: record the amount before submitting"),
    "gov_member_no_fee": ("SEJN-leden vragen kosteloos aan; er hoort geen vergoeding bij",
                          "SEJN members apply free of charge; no fee applies"),
    "gov_bad_fee": ("ongeldig bedrag voor de vergoeding: {fee}", "invalid fee amount: {fee}"),
    # reviews and decisions
    "gov_not_in_review": ("aanvraag {id} staat op {current}; beoordelen kan alleen als de aanvraag {in_review} is",
                          "request {id} is {current}; it can only be reviewed while {in_review}"),
    "gov_bad_scores": ("geef per criterium 1 tot en met 6 een score van 1 tot en met 5 ({detail})",
                       "give each criterion 1 to 6 a score from 1 to 5 ({detail})"),
    "gov_bad_comments": ("opmerkingen horen bij de criteria 1 tot en met 6 ({detail})",
                         "comments belong to criteria 1 to 6 ({detail})"),
    "gov_bad_vote": ("onbekende stem '{vote}'; mogelijk: {allowed}", "unknown vote '{vote}'; possible: {allowed}"),
    "gov_conflict_vote": ("'{reviewer}' heeft een belangenconflict bij aanvraag {id} ({reason}) en mag niet stemmen; "
                          "een beoordeling zonder stem (onthouding) kan wel",
                          "'{reviewer}' has a conflict of interest on request {id} ({reason}) and may not vote; "
                          "a review without a vote (abstention) is possible"),
    "gov_conflict_organisation": ("zelfde organisatie als de aanvrager: {organisation}",
                                  "same organisation as the applicant: {organisation}"),
    "gov_conflict_applicant": ("is de aanvrager", "is the applicant"),
    "gov_conflict_member": ("is lid van het project", "is a project member"),
    "gov_too_few_votes": ("te weinig stemmen voor een besluit: {votes} uitgebracht, minstens {minimum} nodig",
                          "too few votes for a decision: {votes} cast, at least {minimum} needed"),
    "gov_conditions_required": ("het besluit is {status}: leg de voorwaarden vast",
                                "the decision is {status}: record the conditions"),
    "gov_conditions_not_applicable": ("het besluit volgens de regel is {status}; voorwaarden horen alleen bij {awc}",
                                      "the rule's decision is {status}; conditions only belong to {awc}"),
    "gov_unknown_rule": ("onbekende besluitregel '{name}'; bekend: {known}", "unknown decision rule '{name}'; known: {known}"),
    "gov_bad_min_votes": ("het minimum aantal stemmen moet minstens 1 zijn", "the minimum number of votes must be at least 1"),
    # projects, amendments, grants
    "gov_project_not_active": ("project {id} is {status}, niet actief", "project {id} is {status}, not active"),
    "gov_not_project_member": ("'{name}' is geen lid van project {id}", "'{name}' is not a member of project {id}"),
    "gov_not_project_lead": ("alleen de aanvrager van project {id} of een datasteward mag dit, niet '{actor}'",
                             "only the applicant of project {id} or a data steward may do this, not '{actor}'"),
    "gov_amendment_empty": ("een wijziging voegt mensen, gegevens of tijd toe; deze voegt niets toe",
                            "an amendment adds people, data or time; this one adds nothing"),
    "gov_amendment_reason": ("geef de reden van de wijziging", "give the reason for the amendment"),
    "gov_already_member": ("'{name}' is al lid van project {id}", "'{name}' is already a member of project {id}"),
    "gov_extend_not_later": ("de nieuwe einddatum {until} ligt niet na de huidige einddatum {ends}",
                             "the new end date {until} is not after the current end date {ends}"),
    "gov_report_too_short": ("het eindverslag moet zeggen wat de resultaten betekenen voor de praktijk "
                             "(minstens {minimum} tekens, nu {length})",
                             "the final report must say what the results mean for practice "
                             "(at least {minimum} characters, now {length})"),
    # event notes
    "gov_note_created": ("aanvraag aangemaakt", "request created"),
    "gov_note_project_closed": ("project {id} afgesloten", "project {id} closed"),
    "report_rejected": ("{file}: AFGEWEZEN — {reason}", "{file}: REJECTED — {reason}"),
}


def t(key: str, language: str | None = None, **fields) -> str:
    if language is None:
        from .settings import get_settings

        language = get_settings().language
    nl, en = TEXTS[key]
    return (en if language == "en" else nl).format(**fields)
