"""Synthetic BergOp deliveries: realistic, seedable and fast.

`generate()` writes, per organisation, one trajectory file and one measurement file per
instrument (and one file of every other kind catalog/delivery.yaml declares with `synth: per_trajectory`),
in exactly the format `ldj ingest` reads (catalog/delivery.yaml plus the instrument definitions): Dutch column labels, ``;`` as separator, decimal comma, dates as dd-mm-jjjj, and
the encodings Dutch Excel produces (UTF-8 with BOM, Windows-1252, plain UTF-8, alternating by
organisation). Everything that varies between organisations, intervention types and clients is
drawn from one seed, so the same call writes the same bytes.

The figures (severity at the start, change, response, objections, ...) follow section 3 of the
brief. A client's latent severity drives correlated scale scores and item answers, so the
outcome measures (pre-post pairs, reliable change, clinical bands) behave as in practice.

Generation is vectorised with numpy and runs organisation by organisation, so memory stays
bounded by the largest organisation: 112,000 CBCLs take a few seconds, a million well under a
minute.

Deliberately invalid rows (`invalid_share`) are spread over the rules in `TRAJECTORY_RULES` and
`MEASUREMENT_RULES`; `SynthResult` records how many of each went into which file, and how many
BSN-like numbers (passing the eleven-test) and person names (from catalog/names.yaml, with and
without cues such as "mevrouw" or "mijn zoon") were planted in free text. Names are drawn from a
random stream of their own, so planting them changes no other value.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .delivery import Column, DeliverySpec, FileKind, load_spec
from .instruments import Instrument, load_instruments
from .pseudonyms import NAMES_FILE, name_screen

# --- fixed vocabulary -------------------------------------------------------------------------

PERIOD = "2024"
FIRST_START = np.datetime64("2012-01-01", "D")
EXTRACT_DATE = np.datetime64("2024-12-31", "D")  # the end of the delivered period
_DATE_BASE = np.datetime64("1980-01-01", "D")
_DATE_END = np.datetime64("2040-12-31", "D")

TRAJECTORY_RULES = (
    "unknown_intervention",
    "end_before_start",
    "birth_date_future",
    "empty_client_id",
    "unparseable_date",
)
MEASUREMENT_RULES = (
    "t_out_of_range",
    "raw_negative",
    "item_out_of_range",
    "unknown_informant",
    "empty_client_id",
    "unparseable_date",
    "duplicate_administration_id",
)

INFORMANTS = ("parent", "youth", "teacher", "professional")
INFORMANT_LABELS = {"parent": "ouder", "youth": "jongere", "teacher": "leerkracht", "professional": "behandelaar"}
MOMENT_LABELS = ("start", "tussen", "eind", "follow-up")  # start, during, end, follow_up
ENCODINGS = ("utf-8-sig", "utf-8-sig", "cp1252", "utf-8-sig", "utf-8", "utf-8-sig")  # by organisation index

# Chance that an eligible trajectory gets a series of an instrument from this informant.
_INFORMANT_P = {"parent": 0.93, "youth": 0.65, "teacher": 0.40, "professional": 0.60}
_SOLE_INFORMANT_P = {"parent": 0.93, "youth": 0.80, "teacher": 0.55, "professional": 0.75}
_INFORMANT_T_SHIFT = {"parent": 0.0, "youth": -3.0, "teacher": -4.0, "professional": 0.0}

# Per intervention type: age at start (whole years, inclusive), share of boys, mean change in
# total-problems T for completers, and severity at start relative to the average (T points).
# Unknown codes fall back on their setting, so a new row in interventions.yaml just works.
_INTERVENTION = {
    "mst": dict(age=(12, 18), boys=0.68, dt=-7.5, sev=1.5, pop=1.0),
    "iag": dict(age=(4, 17), boys=0.58, dt=-6.5, sev=1.0, pop=1.2),
    "ash": dict(age=(0, 17), boys=0.52, dt=-5.0, sev=1.5, pop=0.8),
    "vib": dict(age=(0, 12), boys=0.55, dt=-4.5, sev=-2.5, pop=0.7),
    "ambulante_gezinsbehandeling": dict(age=(2, 17), boys=0.56, dt=-6.0, sev=0.0, pop=2.0),
    "dagbehandeling": dict(age=(2, 12), boys=0.70, dt=-6.5, sev=1.0, pop=0.9),
    "residentiele_behandeling": dict(age=(8, 18), boys=0.58, dt=-5.5, sev=3.0, pop=1.0),
    "gezinshuis": dict(age=(0, 17), boys=0.52, dt=-4.5, sev=1.5, pop=0.7),
    "pleegzorg": dict(age=(0, 17), boys=0.50, dt=-4.0, sev=-1.0, pop=1.6),
    "therapeutische_pleegzorg": dict(age=(0, 17), boys=0.52, dt=-5.0, sev=2.0, pop=0.6),
    "multidimensionale_pleegzorg": dict(age=(12, 17), boys=0.60, dt=-6.5, sev=2.5, pop=0.4),
    "kamertraining": dict(age=(16, 18), boys=0.55, dt=-4.5, sev=-0.5, pop=0.6),
}
_SETTING_DEFAULT = {
    "ambulant": dict(age=(4, 17), boys=0.56, dt=-6.0, sev=0.0, pop=1.0),
    "daghulp": dict(age=(2, 12), boys=0.65, dt=-6.0, sev=1.0, pop=0.8),
    "verblijf": dict(age=(6, 17), boys=0.56, dt=-5.0, sev=2.0, pop=0.8),
    "pleegzorg": dict(age=(0, 17), boys=0.50, dt=-4.5, sev=0.0, pop=1.0),
}
_LIVING_AT_HOME_P = {"ambulant": 0.88, "daghulp": 0.90, "verblijf": 0.35, "pleegzorg": 0.12}

_TECHNIQUES = {
    "mst": ["gezinsgesprekken", "oudertraining", "netwerkinterventies", "CGT-technieken", "schoolinterventies", "veiligheidsplan"],
    "ash": ["crisisinterventie", "veiligheidsplan", "netwerkberaad", "gezinsgesprekken"],
    "vib": ["video-opnames", "video-feedback", "oudertraining"],
    "kamertraining": ["zelfstandigheidstraining", "budgettraining", "woonvaardigheden", "arbeidstoeleiding"],
    "ambulant": ["gezinsgesprekken", "oudertraining", "psycho-educatie", "video-feedback", "CGT-technieken", "systeemgesprekken", "netwerkberaad"],
    "daghulp": ["groepsbehandeling", "sociale-vaardigheidstraining", "oudertraining", "schoolbegeleiding", "psycho-educatie"],
    "verblijf": ["groepsbehandeling", "sociale-vaardigheidstraining", "agressieregulatietraining", "EMDR", "traumabehandeling", "gezinsgesprekken"],
    "pleegzorg": ["matching", "pleegoudertraining", "bezoekregeling", "begeleiding pleegouders", "traumasensitief opvoeden", "EMDR"],
}

_DIAGNOSES = np.array(["ADHD", "gedragsstoornis", "angststoornis", "depressie", "autisme",
                       "hechtingsproblematiek", "trauma", "geen", ""], dtype=object)
_DIAGNOSIS_P = np.array([0.20, 0.16, 0.10, 0.07, 0.12, 0.08, 0.10, 0.12, 0.05])

_TEAM_NAMES = ["Team Noord", "Team Zuid", "Team Oost", "Team West", "Team Centrum", "Team Stad",
               "Team Regio", "Team Jeugd & Gezin", "Team Kust", "Team Rivierenland", "Team Spoed",
               "Team Pleegzorg", "Team Wonen", "Team Behandeling"]
_DISCIPLINES = np.array(["gezinsbehandelaar", "gezinstherapeut", "GZ-psycholoog", "orthopedagoog",
                         "pedagogisch medewerker", "pleegzorgbegeleider", "maatschappelijk werker",
                         "systeemtherapeut", "jeugdhulpverlener"], dtype=object)
_LEGAL_BASES = ["gerechtvaardigd belang", "toestemming", "wettelijke taak"]
_END_REASONS = ("planned", "dropout_client", "dropout_provider", "moved", "other")
_END_REASON_P = np.array([0.66, 0.14, 0.07, 0.06, 0.07])
_END_REASON_LABELS = {  # variants: an organisation writes one of them consistently
    "planned": ["volgens plan", "afgerond"],
    "dropout_client": ["voortijdig door cliënt", "voortijdig door client"],
    "dropout_provider": ["voortijdig door instelling"],
    "moved": ["verhuizing"],
    "other": ["overig"],
}
_CONTEXT = ["scheiding ouders", "schulden", "huiselijk geweld", "psychische problemen ouder",
            "verslaving ouder", "schoolverzuim", "contact met justitie", "huisvestingsproblemen",
            "eerdere hulp gestopt", "pesten op school", "overlijden ouder", "broer/zus in zorg",
            "ouders oneens over aanpak; omgang onder druk", 'moeder noemt het "een zwaar jaar"']
_REMARKS = ["overgedragen aan collega", "verlenging aangevraagd", "wachttijd 6 weken",
            "start uitgesteld i.v.m. vakantie", "gezin verhuisd binnen regio", "na afsluiting nazorg via wijkteam",
            "intake door ander team, dossier overgenomen"]
_COMMENTS = ["Fijne begeleiding gehad.", "Meer contact was prettig geweest.", "De behandelaar luisterde goed",
             "Te veel wisselingen van begeleiders", "Ons kind gaat weer naar school!", "Duidelijke afspraken, dank",
             "Wachttijd was lang; daarna ging het goed", "Niet alles was nuttig", "Heel tevreden", "Soms lastig te bereiken"]
_BSN_TEMPLATES = ["bsn {} genoemd in verslag", "moeder (BSN {}) vraagt om afschrift", "o.v.v. {} bij gemeente",
                  "dossier {} overgedragen", "burgerservicenummer: {}"]
# One name per template: {first} a listed first name (also the ambiguous ones after a cue), {plain}
# a first name that is not also a word, {surname} as listed ("De Vries"), {full} "Daan de Vries".
_NAME_REMARKS = ["overleg met mevrouw {surname} (school)", "contact met juf {first} over verzuim",
                 "{full} belde over de afspraak", "broer {first} ook aangemeld", "gesprek met {plain} en moeder",
                 "dhr. {surname} (vader) was er niet bij"]
_NAME_COMMENTS = ["Mijn zoon {first} heeft veel geleerd.", "mevrouw {surname} was fijn", "Bedankt {first}!",
                  "Gesprek met {plain} en haar moeder hielp.", "Juf {first} was heel fijn.", "{plain} was een topper",
                  "De heer {surname} luisterde goed.", "{full} deed het super"]
_FUTURE_BIRTH = np.datetime64("2031-03-14", "D")
_BAD_DATES = np.array(["31-02-2021", "gisteren"], dtype=object)


# --- result --------------------------------------------------------------------------------------

@dataclass
class FileInfo:
    path: Path
    kind: str  # "trajectories", an instrument code or another kind of catalog/delivery.yaml
    organisation: str
    encoding: str | None  # None for xlsx
    rows: int
    invalid: dict[str, int] = field(default_factory=dict)  # rule -> rows made invalid by it
    bsn: int = 0  # BSN-like numbers planted in free text
    names: int = 0  # person names planted in free text
    questionnaires: bool = False  # a measurement file: its rows are questionnaires


@dataclass
class SynthResult:
    out_dir: Path
    paths: list[Path]
    files: dict[str, FileInfo]  # file name -> what is in it
    organisations: list[str]
    clients: int
    trajectories: int
    questionnaires: int
    bsn_numbers: list[str]
    seconds: float = 0.0
    planted_names: list[str] = field(default_factory=list)  # as written in the files

    @property
    def invalid_by_rule(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for info in self.files.values():
            for rule, n in info.invalid.items():
                out[rule] = out.get(rule, 0) + n
        return out

    @property
    def invalid_rows(self) -> int:
        return sum(self.invalid_by_rule.values())

    @property
    def bsn_injected(self) -> int:
        return len(self.bsn_numbers)

    @property
    def names_injected(self) -> int:
        return len(self.planted_names)

    def questionnaires_by_instrument(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for info in self.files.values():
            if info.questionnaires:
                out[info.kind] = out.get(info.kind, 0) + info.rows
        return out


# --- catalogue --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Intervention:
    code: str
    aliases: tuple[str, ...]
    setting: str
    weeks: float
    age: tuple[int, int]
    boys: float
    dt: float
    sev: float
    pop: float
    techniques: tuple[str, ...]


def _interventions(catalog_dir: Path) -> list[_Intervention]:
    rows = yaml.safe_load((catalog_dir / "interventions.yaml").read_text(encoding="utf-8"))
    out = []
    for row in rows:
        code = str(row["code"])
        setting = str(row.get("setting", "ambulant"))
        prof = _INTERVENTION.get(code) or _SETTING_DEFAULT.get(setting, _SETTING_DEFAULT["ambulant"])
        techniques = _TECHNIQUES.get(code) or _TECHNIQUES.get(setting, _TECHNIQUES["ambulant"])
        out.append(_Intervention(code, tuple(str(a) for a in row.get("aliases") or [code]), setting,
                                 float(row.get("typical_weeks", 26)), **prof, techniques=tuple(techniques)))
    return out


def _synth_kind(spec: DeliverySpec, synth: str) -> FileKind:
    """The kind of file catalog/delivery.yaml has the synthesiser write as `synth` (trajectories, measurements)."""
    return next(kind for kind in spec.kinds if kind.synth == synth)


def _labels(columns: list[Column]) -> list[tuple[str, str]]:
    return [(c.name, c.label) for c in columns]


def instrument_headers(inst: Instrument) -> list[tuple[str, str]]:
    """(canonical column, Dutch export label) of an instrument's own columns, in file order."""
    preferred: dict[str, str] = {}
    for label, column in inst.extra_labels.items():
        preferred.setdefault(column, label)
    out = []
    if inst.level == "item":
        out += [(f"item_{i}", f"Vraag {i}") for i in range(1, inst.item_count + 1)]
    for s in inst.delivered_scales:
        nl = s.label.get("nl", s.code)
        out.append((s.raw_column, preferred.get(s.raw_column, f"{nl} ruw")))
        if s.t_range is not None:
            out.append((s.t_column, preferred.get(s.t_column, f"{nl} T")))
    out += [(c, preferred.get(c, c)) for c in inst.free_text]
    return out


def _end_only(inst: Instrument) -> bool:
    """Measured only at the end of care (client satisfaction)."""
    return tuple(inst.moments) == ("end",)


@dataclass(frozen=True)
class _InstSpec:
    inst: Instrument
    end_only: bool
    age: tuple[int, int] | None
    headers: list[tuple[str, str]]
    alias_choices: tuple[str, ...]


def _inst_specs(instruments: dict[str, Instrument], codes: list[str]) -> list[_InstSpec]:
    out = []
    for code in codes:
        inst = instruments[code]
        age = (int(inst.age_range[0]), int(inst.age_range[1])) if inst.age_range else None
        aliases = tuple(inst.aliases) or (inst.code,)
        out.append(_InstSpec(inst, _end_only(inst), age, instrument_headers(inst), aliases))
    return out


# --- organisations ------------------------------------------------------------------------------

@dataclass
class _Org:
    index: int
    code: str
    encoding: str
    interventions: np.ndarray  # indices into the intervention list
    mix: np.ndarray  # probabilities over `interventions`
    alias: dict[int, str]
    teams: list[str]
    client_format: int
    response: float
    p_start: float
    objection: float
    breakdown: float
    legal_basis: str
    end_labels: dict[str, str]
    uptake: dict[str, float]
    inst_alias: dict[str, str]
    severity: float
    change: float


def _org_profile(index: int, n_orgs: int, ivs: list[_Intervention], specs: list[_InstSpec], seed: int) -> _Org:
    rng = np.random.default_rng([seed, 0, index])
    width = max(2, len(str(n_orgs)))
    pop = np.array([iv.pop for iv in ivs])
    k = int(rng.integers(min(3, len(ivs)), min(9, len(ivs)) + 1))
    chosen = np.sort(rng.choice(len(ivs), size=k, replace=False, p=pop / pop.sum()))
    mix = rng.dirichlet(pop[chosen] * 3.0)
    alias = {}
    for i in chosen:
        names = ivs[i].aliases
        alias[int(i)] = names[0] if rng.random() < 0.75 or len(names) == 1 else names[int(rng.integers(1, len(names)))]
    teams = list(rng.choice(_TEAM_NAMES, size=int(rng.integers(2, 7)), replace=False))
    end_labels = {r: v[int(rng.integers(len(v)))] for r, v in _END_REASON_LABELS.items()}
    # each organisation works with a subset of the instruments (all of them when only one or two are asked for)
    used = rng.random(len(specs)) < (1.0 if len(specs) <= 2 else 0.6)
    if not used.any():
        used[int(rng.integers(len(specs)))] = True
    if index == 0:  # the demo's own organisation (ORG01, login `praktijk`) uses every instrument
        used[:] = True
    uptake = {s.inst.code: float(rng.uniform(0.80, 1.0)) if u else 0.0 for s, u in zip(specs, used)}
    inst_alias = {s.inst.code: s.alias_choices[0] if rng.random() < 0.7 else
                  s.alias_choices[int(rng.integers(len(s.alias_choices)))] for s in specs}
    return _Org(
        index=index, code=f"ORG{index + 1:0{width}d}", encoding=ENCODINGS[index % len(ENCODINGS)],
        interventions=chosen, mix=mix, alias=alias, teams=teams,
        client_format=int(rng.integers(3)), response=float(rng.uniform(0.50, 0.76)),
        p_start=float(rng.uniform(0.84, 0.96)), objection=float(rng.uniform(0.015, 0.05)),
        breakdown=float(rng.uniform(0.15, 0.25)), legal_basis=_LEGAL_BASES[int(rng.integers(len(_LEGAL_BASES)))],
        end_labels=end_labels, uptake=uptake, inst_alias=inst_alias,
        severity=float(rng.normal(0, 1.5)), change=float(rng.normal(0, 0.8)),
    )


# --- trajectories -------------------------------------------------------------------------------

def _days(d: np.datetime64) -> int:
    return int(d.astype("datetime64[D]").astype(np.int64))


def _trajectories(org: _Org, n: int, ivs: list[_Intervention], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Canonical trajectory values (numbers and codes, no text yet) for `n` trajectories."""
    iv = org.interventions[rng.choice(len(org.interventions), size=n, p=org.mix)]
    age_lo = np.array([x.age[0] for x in ivs], dtype=float)[iv]
    age_hi = np.array([x.age[1] for x in ivs], dtype=float)[iv] + 1.0
    age = age_lo + (age_hi - age_lo) * rng.beta(1.3, 1.3, size=n)
    age = np.minimum(age, age_hi - 1e-3)

    # start dates 2012..2024 with a density rising threefold (BergOp use grew)
    c = 2.0
    u = rng.random(n)
    frac = (-1.0 + np.sqrt(1.0 + 2.0 * c * (1.0 + c / 2.0) * u)) / c
    first, last = _days(FIRST_START), _days(EXTRACT_DATE)
    start = first + np.floor(frac * (last - first + 1)).astype(np.int64)
    birth = start - np.round(age * 365.25).astype(np.int64)

    boys = np.array([x.boys for x in ivs])[iv]
    g = rng.random(n)
    gender = np.where(g < 0.01, 2, np.where(g < 0.01 + 0.99 * boys, 0, 1)).astype(np.int8)  # 0 M, 1 V, 2 X
    lvb = np.where(rng.random(n) < 0.02, -1, (rng.random(n) < 0.08).astype(np.int8)).astype(np.int8)
    objection = (rng.random(n) < org.objection).astype(np.int8)

    # clients with more than one trajectory: same birth date, gender, LVB and objection
    client = np.arange(n)
    repeat = rng.random(n) < 0.10
    first_ones = np.flatnonzero(~repeat)
    if len(first_ones):
        src = first_ones[rng.integers(len(first_ones), size=n)]
        new_start = birth[src] + np.round(age * 365.25).astype(np.int64)
        repeat &= (new_start >= first) & (new_start <= last)
        client = np.where(repeat, src, client)
        birth = np.where(repeat, birth[src], birth)
        start = np.where(repeat, new_start, start)
        gender = np.where(repeat, gender[src], gender)
        lvb = np.where(repeat, lvb[src], lvb)
        objection = np.where(repeat, objection[src], objection)

    weeks = np.array([x.weeks for x in ivs])[iv]
    sigma = np.where(np.array([x.setting == "pleegzorg" for x in ivs])[iv], 0.65, 0.45)
    dur = np.maximum(14, np.round(weeks * 7 * rng.lognormal(0.0, sigma))).astype(np.int64)
    end = start + dur
    running = end > last
    extra = (~running) & (end > last - 365) & (rng.random(n) < 0.20)  # ended but not yet registered
    running |= extra

    reason = rng.choice(len(_END_REASONS), size=n, p=_END_REASON_P).astype(np.int8)
    setting = np.array([x.setting for x in ivs], dtype=object)[iv]
    code = np.array([x.code for x in ivs], dtype=object)[iv]
    foster = setting == "pleegzorg"
    breakdown = np.where(running | ~foster, -1, (rng.random(n) < org.breakdown).astype(np.int8)).astype(np.int8)
    reason = np.where((breakdown == 1) & (reason == 0), np.where(rng.random(n) < 0.6, 2, 1), reason).astype(np.int8)
    home_p = np.array([_LIVING_AT_HOME_P.get(x.setting, 0.8) for x in ivs])[iv]
    home_p = np.where(code == "kamertraining", 0.10, home_p)
    at_home = np.where(running, -1, (rng.random(n) < home_p).astype(np.int8)).astype(np.int8)
    at_home = np.where(rng.random(n) < 0.05, -1, at_home).astype(np.int8)  # not registered
    crisis = np.where(running | (code != "ash"), -1, (rng.random(n) < 0.78).astype(np.int8)).astype(np.int8)
    fidelity = np.where(running | (code != "mst"), -1, (rng.random(n) < 0.80).astype(np.int8)).astype(np.int8)

    # latent severity: total-problems T at the start (parent view) and change to the end
    year = 2012.0 + frac * 13.0
    sev = np.array([x.sev for x in ivs])[iv]
    t0 = 63.3 + 0.4 * np.maximum(0.0, year - 2015.0) + sev + org.severity + 1.0 * (lvb == 1) + rng.normal(0, 8.0, n)
    dt_mean = np.array([x.dt for x in ivs])[iv] + org.change - 0.8  # dropouts and floors pull it back up
    responder = rng.random(n) < 0.35
    delta = np.where(responder, rng.normal((dt_mean + 0.65) / 0.35, 6.0), rng.normal(-1.0, 2.5, n))
    delta = np.where(reason == 1, delta * 0.5, delta)  # dropouts change less

    return dict(iv=iv, age=age, start=start, end=np.where(running, -1, end), running=running, dur=dur,
                birth=birth, gender=gender, lvb=lvb, objection=objection, client=client, reason=reason,
                breakdown=breakdown, at_home=at_home, crisis=crisis, fidelity=fidelity, t0=t0, delta=delta,
                resp=rng.random(n) < org.response)


# --- measurement plan ---------------------------------------------------------------------------

def _plan(tr: dict[str, np.ndarray], org: _Org, specs: list[_InstSpec], rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Which questionnaires exist: per instrument, rows of (trajectory, informant, moment, date)."""
    n = len(tr["start"])
    age_floor = np.floor(tr["age"]).astype(int)
    start, end, running = tr["start"], tr["end"], tr["running"]
    last = _days(EXTRACT_DATE)
    horizon = np.where(running, last, end)  # end of the observed trajectory
    span = np.maximum(horizon - start, 1)
    ended = ~running
    plans = {}
    for spec in specs:
        inst = spec.inst
        elig = np.ones(n, dtype=bool)
        if spec.age:
            elig &= (age_floor >= spec.age[0]) & (age_floor <= spec.age[1])
        elig &= rng.random(n) < org.uptake[inst.code]
        parts = []
        for inf in inst.informants:
            ok = elig.copy()
            if inf == "youth":
                lo = spec.age[0] if spec.age else 0
                ok &= age_floor >= (lo if lo >= 8 else 11)
            elif inf == "teacher":
                ok &= (age_floor >= 4) & (age_floor <= 18)
            p = (_SOLE_INFORMANT_P if len(inst.informants) == 1 else _INFORMANT_P)[inf]
            idx = np.flatnonzero(ok & (rng.random(n) < p))
            m = len(idx)
            inf_i = INFORMANTS.index(inf)
            if spec.end_only:
                e = idx[ended[idx] & tr["resp"][idx] & (rng.random(m) < 0.75)]
                d = end[e] - rng.integers(0, 15, len(e))
                parts.append((e, inf_i, 2, np.maximum(d, start[e]), np.ones(len(e))))
                continue
            has_start = rng.random(m) < org.p_start
            s = idx[has_start]
            gap = np.minimum(22, np.maximum(1, span[s] // 4))
            d = np.minimum(start[s] + rng.integers(0, 1 << 30, len(s)) % gap, horizon[s])
            parts.append((s, inf_i, 0, d, np.zeros(len(s))))
            has_end = ended[idx] & tr["resp"][idx] & np.where(has_start, rng.random(m) < 0.96, rng.random(m) < 0.30)
            e = idx[has_end]
            gap = np.minimum(15, np.maximum(1, span[e] // 4))
            d = end[e] - rng.integers(0, 1 << 30, len(e)) % gap
            parts.append((e, inf_i, 2, d, np.ones(len(e))))
            dur_ok = span[idx] >= 16 * 7
            during = idx[dur_ok & (rng.random(m) < 0.15)]
            f = rng.uniform(0.3, 0.7, len(during))
            parts.append((during, inf_i, 1, start[during] + np.round(f * span[during]).astype(np.int64), f))
            second = during[rng.random(len(during)) < 0.25]
            f = rng.uniform(0.72, 0.9, len(second))
            parts.append((second, inf_i, 1, start[second] + np.round(f * span[second]).astype(np.int64), f))
            fu = e[rng.random(len(e)) < 0.10]
            d = end[fu] + rng.integers(90, 366, len(fu))
            keep = d <= last
            parts.append((fu[keep], inf_i, 3, d[keep], np.ones(int(keep.sum()))))
        if parts:
            traj = np.concatenate([p[0] for p in parts]).astype(np.int64)
            plans[inst.code] = dict(
                traj=traj,
                inf=np.concatenate([np.full(len(p[0]), p[1], np.int8) for p in parts]),
                moment=np.concatenate([np.full(len(p[0]), p[2], np.int8) for p in parts]),
                date=np.concatenate([p[3] for p in parts]).astype(np.int64),
                frac=np.concatenate([p[4] for p in parts]).astype(float),
            )
    return plans


# --- scores -------------------------------------------------------------------------------------

def _row_t(tr, plan, inf_offset, rng) -> np.ndarray:
    """Total-problems-like T per questionnaire, from the trajectory's latent severity and change."""
    j = plan["traj"]
    moment = plan["moment"]
    change = tr["delta"][j] * np.where(moment == 0, 0.0, np.where(moment == 1, plan["frac"], 1.0))
    change = change + np.where(moment == 3, rng.normal(-1.0, 3.0, len(j)), 0.0)
    shift = np.array([_INFORMANT_T_SHIFT[i] for i in INFORMANTS])[plan["inf"]]
    return tr["t0"][j] + change + shift + inf_offset[j, plan["inf"]] + rng.normal(0, 1.2, len(j))


def _scores(spec: _InstSpec, tr, plan, inf_offset, rng, seed: int) -> dict[str, np.ndarray]:
    """Instrument columns (canonical names) for the planned questionnaires; NaN = not answered."""
    inst = spec.inst
    n_traj = len(tr["start"])
    j = plan["traj"]
    n = len(j)
    t_row = _row_t(tr, plan, inf_offset, rng)
    z = (t_row - 65.0) / 9.0
    out: dict[str, np.ndarray] = {}
    scales = inst.scales
    unique = rng.normal(0, 1, (n_traj, max(1, len(scales))))  # scale-specific part, stable per trajectory

    stable = np.random.default_rng([seed, 3, zlib.crc32(inst.code.encode())])
    scale_shift = stable.normal(0, 1.5, max(1, len(scales)))
    if inst.level == "item" and inst.item_count:
        lo, hi = float(inst.item_min or 0), float(inst.item_max if inst.item_max is not None else 1)
        k = hi - lo
        item_scale = {}
        for si, s in enumerate(scales):
            for i in s.items:
                item_scale.setdefault(i, si)
        difficulty = stable.normal(0, 0.06, max(1, inst.item_count))
        for i in range(1, inst.item_count + 1):
            si = item_scale.get(i)
            s = scales[si] if si is not None else None
            zs = z if s is None else 0.75 * z + 0.66 * unique[j, si]
            hb = bool(s and s.higher_is_better)
            center = 0.32 if hb else 0.42
            x = np.clip(center + difficulty[i - 1] + 0.28 * (0.6 * zs + 0.8 * rng.normal(0, 1, n)), 0, 1)
            flip = (s is not None and i in s.reverse) != hb
            if flip:
                x = 1.0 - x
            ans = lo + np.round(x * k)
            ans[rng.random(n) < 0.03] = np.nan
            out[f"item_{i}"] = ans

    delivered = inst.delivered_scales
    anchor = next((s for s in delivered if "total" in s.code and s.t_range is not None), None)
    if anchor is None:
        anchor = next((s for s in delivered if s.t_range is not None and s.t_range[0] < 50), None)
    for s in delivered:
        si = scales.index(s)
        if s.t_range is not None:
            t_lo, t_hi = s.t_range
            if s is anchor:
                t = t_row.copy()
                if s.higher_is_better:
                    t = 90.0 - t
            else:
                syndrome = t_lo >= 50
                mean, sd, rho = (61.0, 8.0, 0.65) if syndrome else (63.5, 9.0, 0.85)
                mean += scale_shift[si]
                zz = rho * z + np.sqrt(1 - rho**2) * unique[j, si]
                t = (40.0 - sd * zz) if s.higher_is_better else (mean + sd * zz)
                t = t + rng.normal(0, 1.5, n)
            t = np.clip(np.round(t), t_lo, t_hi)
            out[s.t_column] = t
            if s.raw_range is not None:
                r_lo, r_hi = s.raw_range
                pos = np.clip((t - t_lo) / (t_hi - t_lo), 0, 1)
                # monotone in T; syndrome-type scales (T floor 50) start a little above the raw minimum
                frac = 0.08 + 0.92 * pos**1.3 if t_lo >= 50 else pos**2.5
                out[s.raw_column] = np.round(r_lo + (r_hi - r_lo) * frac)
        elif s.raw_range is not None:
            r_lo, r_hi = s.raw_range
            x = np.clip(0.33 + 0.12 * z + 0.10 * rng.normal(0, 1, n), 0, 1)
            if s.higher_is_better:
                x = 1.0 - x
            v = r_lo + (r_hi - r_lo) * x
            out[s.raw_column] = np.round(v, 2) if (r_hi - r_lo) <= 10 else np.round(v)
    for name in inst.free_text:
        text = np.full(n, "", dtype=object)
        has = rng.random(n) < 0.35
        text[has] = np.array(_COMMENTS, dtype=object)[rng.integers(len(_COMMENTS), size=int(has.sum()))]
        out[name] = text
    return out


# --- formatting ---------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _date_table() -> np.ndarray:
    days = pd.date_range(str(_DATE_BASE), str(_DATE_END), freq="D")
    return np.asarray(days.strftime("%d-%m-%Y"), dtype=object)


def _fmt_dates(days: np.ndarray, file_format: str) -> np.ndarray:
    """dd-mm-jjjj strings (csv) or datetime values (xlsx); negative sentinel = empty."""
    days = np.asarray(days, dtype=np.int64)
    missing = days < 0
    if file_format == "xlsx":
        out = pd.to_datetime(np.where(missing, 0, days), unit="D").to_pydatetime().astype(object)
        out[missing] = None
        return out
    idx = np.clip(days - _days(_DATE_BASE), 0, len(_date_table()) - 1)
    out = _date_table()[idx]
    out[missing] = ""
    return out


def _fmt_bool(values: np.ndarray) -> np.ndarray:
    return np.array(["nee", "ja", ""], dtype=object)[np.where(values < 0, 2, values)]


def _fmt_number(values: np.ndarray, file_format: str, decimals: bool):
    values = np.asarray(values, dtype=float)
    if decimals:
        if file_format == "xlsx":
            return values
        out = np.char.replace(np.char.mod("%.2f", values), ".", ",").astype(object)
        out[np.isnan(values)] = ""
        return out
    missing = np.isnan(values)
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(numbers.astype(str), width)).astype(object)


def _gapped(rng: np.random.Generator, n: int, start: int, max_gap: int = 12) -> np.ndarray:
    return start + np.cumsum(rng.integers(1, max_gap + 1, n))


def _client_ids(fmt: int, numbers: np.ndarray) -> np.ndarray:
    if fmt == 0:
        return _ids("C", numbers, 6)
    if fmt == 1:
        return _ids("", numbers, 7)  # digits only, leading zeros: read identifiers as text
    return _ids("CL-", numbers, 5)


def _bsn(rng: np.random.Generator, n: int) -> list[str]:
    """`n` nine-digit numbers that pass the eleven-test (9*d1 + 8*d2 + ... + 2*d8 - d9 = 0 mod 11)."""
    out: list[str] = []
    weights = np.arange(9, 1, -1)
    while len(out) < n:
        d = rng.integers(0, 10, (max(8, 2 * n), 8))
        d[:, 0] = rng.integers(1, 10, len(d))
        check = (d * weights).sum(axis=1) % 11
        ok = check < 10
        for row, c in zip(d[ok], check[ok]):
            out.append("".join(map(str, row)) + str(c))
    return out[:n]


def _choose_rows(rng, n: int, k: int, rules: list[str]) -> dict[str, np.ndarray]:
    """`k` distinct rows of `n`, spread over `rules` as evenly as chance allows."""
    k = min(k, n)
    if k == 0 or not rules:
        return {}
    rows = rng.choice(n, size=k, replace=False)
    which = np.array(rules)[rng.permutation(np.arange(k) % len(rules))]
    return {r: rows[which == r] for r in rules if (which == r).any()}


def _write(frame: pd.DataFrame, path: Path, encoding: str, file_format: str) -> None:
    if file_format == "xlsx":
        with pd.ExcelWriter(path, engine="openpyxl", date_format="DD-MM-YYYY", datetime_format="DD-MM-YYYY") as xw:
            frame.to_excel(xw, index=False)
    else:
        frame.to_csv(path, sep=";", index=False, encoding=encoding, lineterminator="\r\n", decimal=",")


# --- one organisation -------------------------------------------------------------------------

@dataclass
class _Counters:
    administration: int = 5_000_000
    professional: int = 100
    bsn: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _NamePool:
    first: np.ndarray  # listed first names, ambiguous ones included: used after a cue
    plain: np.ndarray  # first names that are not also words: masked without a cue
    surnames: np.ndarray  # ambiguous ones included: always after a cue or a first name

    def writable_in(self, encoding: str | None) -> _NamePool:
        """The names a file in `encoding` can hold (Windows-1252 has no ğ, ı, ş)."""
        if encoding is None:
            return self

        def keep(names: np.ndarray) -> np.ndarray:
            return np.array([n for n in names if n.encode(encoding, "ignore").decode(encoding) == n], dtype=object)

        return _NamePool(keep(self.first), keep(self.plain), keep(self.surnames))


def _name_pool(catalog_dir: Path) -> _NamePool:
    path = catalog_dir / "names.yaml"
    screen = name_screen(path if path.exists() else NAMES_FILE)
    plain = np.array(screen.first_names, dtype=object)
    return _NamePool(np.array(screen.first_names + screen.ambiguous_first_names, dtype=object), plain,
                     np.array(screen.surnames + screen.ambiguous_surnames, dtype=object))


def _plant_names(rng: np.random.Generator, text: np.ndarray, share: float, templates: list[str],
                 pool: _NamePool, sep: str, counters: _Counters) -> int:
    """Append a sentence with one person name to a `share` of the cells of `text` (in place)."""
    rows = np.flatnonzero(rng.random(len(text)) < share)
    for row in rows:
        template = templates[int(rng.integers(len(templates)))]
        first = pool.first[int(rng.integers(len(pool.first)))]
        plain = pool.plain[int(rng.integers(len(pool.plain)))]
        surname = pool.surnames[int(rng.integers(len(pool.surnames)))]
        if "{full}" in template:  # particles in lower case after a first name: "Daan van den Berg"
            parts = surname.split()
            name = " ".join([plain, *(p.lower() for p in parts[:-1]), parts[-1]])
        else:
            name = first if "{first}" in template else plain if "{plain}" in template else surname
        sentence = template.format(first=name, plain=name, surname=name, full=name)
        before = text[row]
        text[row] = f"{before}{' ' if before[-1:] in ('.', '!', '?') else sep}{sentence}" if before else sentence
        counters.names.append(name)
    return len(rows)


def _organisation(org: _Org, n: int, ivs, specs, delivery: DeliverySpec, out_dir: Path, file_format: str,
                  invalid_share: float, seed: int, counters: _Counters,
                  name_pool: _NamePool) -> tuple[list[FileInfo], int, int, int]:
    rng = np.random.default_rng([seed, 1, org.index])
    tr = _trajectories(org, n, ivs, rng)
    plans = _plan(tr, org, specs, rng)

    # keep the trajectories with questionnaires and a quarter of those without (response: none)
    has_q = np.zeros(n, dtype=bool)
    for p in plans.values():
        has_q[p["traj"]] = True
    keep = has_q | (rng.random(n) < 0.25)
    kept = np.flatnonzero(keep)
    order = kept[np.lexsort((kept, tr["start"][kept]))]  # trajectory numbers follow the start date
    new_index = np.full(n, -1, dtype=np.int64)
    new_index[order] = np.arange(len(order))
    m = len(order)

    ext = ".xlsx" if file_format == "xlsx" else ".csv"
    enc = None if file_format == "xlsx" else org.encoding
    name_pool = name_pool.writable_in(enc)
    infos: list[FileInfo] = []

    # identifiers
    traj_ids = _ids("T", _gapped(rng, m, int(rng.integers(1000, 90000)), 6), 6)
    client_of = tr["client"][order]
    uniq_clients, client_pos = np.unique(client_of, return_inverse=True)
    client_numbers = _gapped(rng, len(uniq_clients), int(rng.integers(100, 20000)), 9)[rng.permutation(len(uniq_clients))]
    client_ids = _client_ids(org.client_format, client_numbers)[client_pos]

    # professionals, per team
    n_prof = max(2 * len(org.teams), m // 30)
    prof_team = rng.permutation(np.arange(n_prof) % len(org.teams))  # every team has professionals
    prof_ids = _ids("P", np.arange(counters.professional, counters.professional + n_prof), 5)
    counters.professional += n_prof + int(rng.integers(0, 50))
    prof_disc = _DISCIPLINES[rng.integers(len(_DISCIPLINES), size=n_prof)]
    prof_exp = np.minimum(40, np.round(rng.gamma(2.0, 4.5, n_prof))).astype(np.int64)
    prof = rng.integers(n_prof, size=m)
    no_prof = rng.random(m) < 0.05
    team = np.array(org.teams, dtype=object)[prof_team[prof]]

    iv = tr["iv"][order]
    start = tr["start"][order]
    end = tr["end"][order]
    reason = np.where(end < 0, -1, tr["reason"][order])
    reason_labels = np.array([org.end_labels[r] for r in _END_REASONS] + [""], dtype=object)

    # techniques: a random non-empty subset per trajectory, looked up by bit mask
    tech = np.full(m, "", dtype=object)
    for i in np.unique(iv):
        rows = np.flatnonzero(iv == i)
        names = ivs[i].techniques
        bits = rng.random((len(rows), len(names))) < min(0.9, 2.2 / len(names))
        bits[np.arange(len(rows)), rng.integers(len(names), size=len(rows))] = True
        masks = bits @ (1 << np.arange(len(names)))
        table = np.array(["|".join(nm for b, nm in enumerate(names) if mask >> b & 1) for mask in range(1 << len(names))], dtype=object)
        tech[rows] = table[masks]
    tech[rng.random(m) < 0.10] = ""

    ctx_table = np.array([a if a == b else f"{a}, {b}" for a in _CONTEXT for b in _CONTEXT], dtype=object)
    context = ctx_table[rng.integers(len(ctx_table), size=m)]
    context[rng.random(m) < 0.45] = ""
    remarks = np.full(m, "", dtype=object)
    has_rem = rng.random(m) < 0.12
    remarks[has_rem] = np.array(_REMARKS, dtype=object)[rng.integers(len(_REMARKS), size=int(has_rem.sum()))]

    # BSN-like numbers in free text (the ingest must mask them)
    n_bsn = int(rng.binomial(m, 0.002))
    bsn_rows = rng.choice(m, size=min(n_bsn, m), replace=False)
    numbers = _bsn(rng, len(bsn_rows))
    for row, number in zip(bsn_rows, numbers):  # a handful per organisation
        text = _BSN_TEMPLATES[int(rng.integers(len(_BSN_TEMPLATES)))].format(number)
        if rng.random() < 0.5:
            remarks[row] = text
        else:
            context[row] = f"{context[row]}, {text}" if context[row] else text
    counters.bsn += numbers
    # person names in free text (the ingest must mask them), from a stream of their own
    name_rng = np.random.default_rng([seed, 5, org.index])
    n_names = _plant_names(name_rng, remarks, 0.002, _NAME_REMARKS, name_pool, "; ", counters)
    n_names += _plant_names(name_rng, context, 0.002, _NAME_REMARKS, name_pool, ", ", counters)

    legal = np.where(rng.random(m) < 0.1, np.array(_LEGAL_BASES, dtype=object)[rng.integers(3, size=m)], org.legal_basis)
    legal[rng.random(m) < 0.05] = ""

    birth = tr["birth"][order].copy()
    intervention = np.array([org.alias.get(int(i), ivs[i].aliases[0]) for i in range(len(ivs))], dtype=object)[iv]
    start_text = _fmt_dates(start, file_format)

    # invalid trajectory rows
    k = int(rng.binomial(m, invalid_share)) if invalid_share > 0 else 0
    chosen = _choose_rows(rng, m, k, list(TRAJECTORY_RULES))
    cid = client_ids.copy()
    if "unknown_intervention" in chosen:
        intervention[chosen["unknown_intervention"]] = "Yoga"
    if "end_before_start" in chosen:
        r = chosen["end_before_start"]
        end = end.copy()
        end[r] = start[r] - rng.integers(1, 90, len(r))
        reason = reason.copy()
        reason[r] = np.where(reason[r] < 0, 0, reason[r])
    if "birth_date_future" in chosen:
        r = chosen["birth_date_future"]
        birth[r] = _days(_FUTURE_BIRTH) + rng.integers(0, 700, len(r))
    if "empty_client_id" in chosen:
        cid[chosen["empty_client_id"]] = ""
    if "unparseable_date" in chosen:
        r = chosen["unparseable_date"]
        start_text = start_text.copy()
        start_text[r] = _BAD_DATES[rng.integers(2, size=len(r))]
    end_text = _fmt_dates(end, file_format)

    gender = np.array(["M", "V", "X"], dtype=object)[tr["gender"][order]]
    diagnosis = _DIAGNOSES[rng.choice(len(_DIAGNOSES), size=m, p=_DIAGNOSIS_P)]
    values = {
        "organisation": np.full(m, org.code, dtype=object),
        "period": np.full(m, PERIOD, dtype=object),
        "client_id": cid,
        "trajectory_id": traj_ids,
        "team": team,
        "birth_date": _fmt_dates(birth, file_format),
        "gender": gender,
        "diagnosis": diagnosis,
        "lvb": _fmt_bool(tr["lvb"][order]),
        "objection": _fmt_bool(tr["objection"][order]),
        "legal_basis": legal,
        "professional_id": np.where(no_prof, "", prof_ids[prof]),
        "professional_discipline": np.where(no_prof, "", prof_disc[prof]),
        "professional_experience": _fmt_number(np.where(no_prof, np.nan, prof_exp[prof]), file_format, False),
        "intervention": intervention,
        "start_date": start_text,
        "end_date": end_text,
        "end_reason": reason_labels[reason],
        "techniques": tech,
        "context": context,
        "outcome_breakdown": _fmt_bool(tr["breakdown"][order]),
        "outcome_living_at_home": _fmt_bool(tr["at_home"][order]),
        "outcome_crisis_resolved": _fmt_bool(tr["crisis"][order]),
        "outcome_model_fidelity": _fmt_bool(tr["fidelity"][order]),
        "remarks": remarks,
    }
    traj_kind = _synth_kind(delivery, "trajectories")
    cols = _labels(delivery.columns(traj_kind.name))
    frame = pd.DataFrame({label: values.get(name, np.full(m, "", dtype=object)) for name, label in cols})
    path = out_dir / f"{org.code}_{traj_kind.file_name}_{PERIOD}{ext}"
    _write(frame, path, org.encoding, file_format)
    infos.append(FileInfo(path, traj_kind.name, org.code, enc, m,
                          {r: len(v) for r, v in chosen.items()}, len(bsn_rows), n_names))
    del frame, values

    # measurement files
    measurement_labels = _labels([*delivery.common, *_synth_kind(delivery, "measurements").columns])
    inf_offset = rng.normal(0, 3.0, (n, len(INFORMANTS)))
    questionnaires = 0
    for spec in specs:
        code = spec.inst.code
        plan = plans.get(code)
        if plan is None:
            continue
        sel = keep[plan["traj"]]
        plan = {k2: v[sel] for k2, v in plan.items()}
        q = len(plan["traj"])
        if q == 0:
            continue
        scores = _scores(spec, tr, plan, inf_offset, rng, seed)
        # sort by date (administration numbers increase over time, as in BergOp)
        srt = np.lexsort((plan["traj"], plan["date"]))
        plan = {k2: v[srt] for k2, v in plan.items()}
        scores = {k2: v[srt] for k2, v in scores.items()}
        admin = _gapped(rng, q, counters.administration, 7)
        counters.administration = int(admin[-1]) + int(rng.integers(1, 1000))
        admin_ids = _ids("A", admin, 8)
        rows = new_index[plan["traj"]]
        mcid = client_ids[rows].copy()
        informant = np.array([INFORMANT_LABELS[i] for i in INFORMANTS], dtype=object)[plan["inf"]]
        date_text = _fmt_dates(plan["date"], file_format)

        # BSN-like numbers in free-text answers
        n_bsn_m = 0
        for name in spec.inst.free_text:
            text = scores[name]
            k_b = int(rng.binomial(q, 0.001))
            r = rng.choice(q, size=min(k_b, q), replace=False)
            nums = _bsn(rng, len(r))
            for row, number in zip(r, nums):
                text[row] = f"{text[row]} {_BSN_TEMPLATES[int(rng.integers(len(_BSN_TEMPLATES)))].format(number)}".strip()
            counters.bsn += nums
            n_bsn_m += len(nums)
        name_rng = np.random.default_rng([seed, 6, org.index, zlib.crc32(code.encode())])
        n_names_m = sum(_plant_names(name_rng, scores[name], 0.02, _NAME_COMMENTS, name_pool, ". ", counters)
                        for name in spec.inst.free_text)

        # invalid rows
        t_cols = [s.t_column for s in spec.inst.delivered_scales if s.t_range is not None]
        raw_cols = [s.raw_column for s in spec.inst.delivered_scales if s.raw_range is not None]
        rules = [r for r in MEASUREMENT_RULES
                 if not (r == "t_out_of_range" and not t_cols)
                 and not (r == "raw_negative" and not raw_cols)
                 and not (r == "item_out_of_range" and not (spec.inst.level == "item" and spec.inst.item_count))
                 and not (r == "duplicate_administration_id" and q < 2)]
        k = int(rng.binomial(q, invalid_share)) if invalid_share > 0 else 0
        chosen = _choose_rows(rng, q, k, rules)
        numeric = {c: v.astype(float).copy() for c, v in scores.items() if c not in spec.inst.free_text}
        if "t_out_of_range" in chosen:
            r = chosen["t_out_of_range"]
            col = np.array(t_cols, dtype=object)[rng.integers(len(t_cols), size=len(r))]
            for c in t_cols:
                numeric[c][r[col == c]] = 140.0
        if "raw_negative" in chosen:
            r = chosen["raw_negative"]
            col = np.array(raw_cols, dtype=object)[rng.integers(len(raw_cols), size=len(r))]
            for c in raw_cols:
                numeric[c][r[col == c]] = -3.0
        if "item_out_of_range" in chosen:
            r = chosen["item_out_of_range"]
            col = rng.integers(1, spec.inst.item_count + 1, size=len(r))
            for i in np.unique(col):
                numeric[f"item_{i}"][r[col == i]] = float(spec.inst.item_max) + 1.0
        if "unknown_informant" in chosen:
            informant[chosen["unknown_informant"]] = "buurman"
        if "empty_client_id" in chosen:
            mcid[chosen["empty_client_id"]] = ""
        if "unparseable_date" in chosen:
            r = chosen["unparseable_date"]
            date_text = date_text.copy()
            date_text[r] = _BAD_DATES[rng.integers(2, size=len(r))]
        if "duplicate_administration_id" in chosen:
            r = chosen["duplicate_administration_id"]
            others = np.setdiff1d(np.arange(q), np.concatenate(list(chosen.values())))
            if len(others):
                admin_ids[r] = admin_ids[others[rng.integers(len(others), size=len(r))]]
            else:  # pragma: no cover - every row invalid
                chosen.pop("duplicate_administration_id")

        values = {
            "organisation": np.full(q, org.code, dtype=object),
            "period": np.full(q, PERIOD, dtype=object),
            "client_id": mcid,
            "trajectory_id": traj_ids[rows],
            "administration_id": admin_ids,
            "instrument": np.full(q, org.inst_alias[code], dtype=object),
            "informant": informant,
            "moment": np.array(MOMENT_LABELS, dtype=object)[plan["moment"]],
            "date": date_text,
        }
        data = {}
        for name, label in measurement_labels:
            data[label] = values.get(name, np.full(q, "", dtype=object))
        for name, label in spec.headers:
            if name in spec.inst.free_text:
                data[label] = scores[name]
            else:
                s = next((s for s in spec.inst.delivered_scales if name in (s.raw_column, s.t_column)), None)
                decimals = bool(s and s.t_range is None and s.raw_range and s.raw_range[1] - s.raw_range[0] <= 10)
                data[label] = _fmt_number(numeric[name], file_format, decimals)
        frame = pd.DataFrame(data)
        path = out_dir / f"{org.code}_{code}_{PERIOD}{ext}"
        _write(frame, path, org.encoding, file_format)
        infos.append(FileInfo(path, code, org.code, enc, q, {r: len(v) for r, v in chosen.items()}, n_bsn_m,
                              n_names_m, questionnaires=True))
        questionnaires += q
        del frame, data, scores, numeric

    # files of other kinds (catalog/delivery.yaml): one row per trajectory, values from the column definitions
    for kind in delivery.kinds:
        if kind.synth == "per_trajectory":
            kind_rng = np.random.default_rng([seed, 7, org.index, zlib.crc32(kind.name.encode())])
            common = {"organisation": np.full(m, org.code, dtype=object), "period": np.full(m, PERIOD, dtype=object),
                      "client_id": client_ids, "trajectory_id": traj_ids}
            frame = _per_trajectory_frame(delivery, kind, common, start, [iv.code for iv in ivs], file_format,
                                          kind_rng)
            path = out_dir / f"{org.code}_{kind.file_name or kind.name}_{PERIOD}{ext}"
            _write(frame, path, org.encoding, file_format)
            infos.append(FileInfo(path, kind.name, org.code, enc, m))
    return infos, len(uniq_clients), m, questionnaires


def _per_trajectory_frame(delivery: DeliverySpec, kind: FileKind, common: dict[str, np.ndarray], start: np.ndarray,
                          interventions: list[str], file_format: str, rng: np.random.Generator) -> pd.DataFrame:
    """A file of a kind the synthesiser knows only from its declaration: one valid row per trajectory.
    Dates follow the trajectory's start, each date column on or after the one before it."""
    m = len(start)
    date = start.copy()
    data = {}
    for col in delivery.columns(kind.name):
        if col.name in common:
            value = common[col.name]
        elif col.name == kind.key or col.identifier:
            value = _ids(col.name[:1].upper(), np.arange(1, m + 1) + 100_000 * (zlib.crc32(col.name.encode()) % 90),
                         7)
        elif col.values:
            value = np.array(col.values, dtype=object)[rng.integers(len(col.values), size=m)]
        elif col.values_from == "interventions":
            value = np.array(interventions, dtype=object)[rng.integers(len(interventions), size=m)]
        elif col.type == "boolean":
            value = _fmt_bool(rng.integers(2, size=m))
        elif col.type == "date":
            date = date + rng.integers(0, 91, size=m)
            value = _fmt_dates(date, file_format)
        elif col.type in ("integer", "number"):
            lo = float(col.min) if col.min is not None else 0.0
            hi = float(col.max) if col.max is not None else lo + 10
            value = _fmt_number(np.round(rng.uniform(lo, hi, m)) if col.type == "integer" else rng.uniform(lo, hi, m),
                                file_format, col.type == "number")
        else:
            value = np.full(m, col.example or (col.label if col.required else ""), dtype=object)
        data[col.label] = value
    return pd.DataFrame(data)


# --- entry point -----------------------------------------------------------------------------------

def _org_weights(n_orgs: int, seed: int, lead_share: float | None = None) -> np.ndarray:
    rng = np.random.default_rng([seed, 4])
    w = np.clip(rng.lognormal(0.0, 0.45, n_orgs), 0.6, 2.5)
    w = w / w.sum()
    if lead_share is not None and n_orgs > 1:  # the first organisation (ORG01) is a large provider
        w = np.concatenate([[lead_share], w[1:] / w[1:].sum() * (1 - lead_share)])
    return w


def generate(out_dir: Path, *, questionnaires: int = 20_000, organisations: int = 25, seed: int = 1,
             instruments: list[str] | None = None, invalid_share: float = 0.01,
             catalog_dir: Path = Path("catalog"), file_format: str = "csv",
             progress: bool = False, lead_share: float | None = None) -> SynthResult:
    """Write a synthetic BergOp delivery to `out_dir` and say what is in it.

    `questionnaires` is the total number of measurement rows over all instruments (within a few
    per cent). Files: `<ORG>_trajecten_2024.csv` and `<ORG>_<instrument code>_2024.csv` per
    organisation (`.xlsx` with file_format="xlsx"), and `<ORG>_<file_name>_2024.csv` for the other kinds of
    catalog/delivery.yaml (one row per trajectory).
    """
    t_begin = time.perf_counter()
    if file_format not in ("csv", "xlsx"):
        raise ValueError(f"file_format must be 'csv' or 'xlsx', not {file_format!r}")
    if organisations < 1:
        raise ValueError("organisations must be at least 1")
    if not 0 <= invalid_share < 0.5:
        raise ValueError("invalid_share must be in [0, 0.5)")
    catalog_dir = Path(catalog_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    defined = load_instruments(catalog_dir)
    codes = sorted(defined) if instruments is None else list(dict.fromkeys(instruments))
    unknown = [c for c in codes if c not in defined]
    if unknown:
        raise ValueError(f"unknown instruments {unknown}; defined: {sorted(defined)}")
    specs = _inst_specs(defined, codes)
    ivs = _interventions(catalog_dir)
    delivery = load_spec(catalog_dir)
    orgs = [_org_profile(i, organisations, ivs, specs, seed) for i in range(organisations)]
    if lead_share is not None and not 0 < lead_share < 1:
        raise ValueError("lead_share must be between 0 and 1")
    weights = _org_weights(organisations, seed, lead_share)

    # calibrate: questionnaires per generated trajectory, per organisation, from a pilot
    rate = np.zeros(organisations)
    for o in orgs:
        prng = np.random.default_rng([seed, 2, o.index])
        pilot = 3000
        ptr = _trajectories(o, pilot, ivs, prng)
        rate[o.index] = sum(len(p["traj"]) for p in _plan(ptr, o, specs, prng).values()) / pilot
    per_unit = float((weights * rate).sum())
    total_traj = questionnaires / per_unit if per_unit > 0 else 0.0
    sizes = np.maximum(1, np.round(total_traj * weights)).astype(int)

    counters = _Counters()
    name_pool = _name_pool(catalog_dir)
    files: dict[str, FileInfo] = {}
    clients = trajectories = written_q = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=int(questionnaires), unit="vragenlijst", desc="synth")
    for o in orgs:
        infos, c, t, q = _organisation(o, int(sizes[o.index]), ivs, specs, delivery, out_dir, file_format,
                                       invalid_share, seed, counters, name_pool)
        for info in infos:
            files[info.path.name] = info
        clients += c
        trajectories += t
        written_q += q
        if bar is not None:
            bar.update(q)
            bar.set_postfix(org=o.code)
    if bar is not None:
        bar.close()
    return SynthResult(out_dir=out_dir, paths=[i.path for i in files.values()], files=files,
                       organisations=[o.code for o in orgs], clients=clients, trajectories=trajectories,
                       questionnaires=written_q, bsn_numbers=list(counters.bsn),
                       seconds=time.perf_counter() - t_begin, planted_names=list(counters.names))
