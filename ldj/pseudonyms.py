"""Pseudonyms at the door: keyed HMAC-SHA256 of the organisation's numbers, and free-text screening.

The key is a random 32-byte secret in a file (0600) created on first use, or read from
`LDJ_PSEUDONYM_KEY_FILE`. Without the key nobody can recompute a pseudonym from a client number.
Original numbers are never stored; birth dates become ages.

Free text is screened for BSNs (eleven-test), e-mail addresses, phone numbers and person names. Names
come from catalog/names.yaml (common Dutch first names and surnames, context cues, and the rule in its
header). A lexicon is used rather than a de-identification package: `deduce` (UMC Utrecht) finds names
well, but takes ~11 s to load per process and also masks ages, dates and places.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

KEY_BYTES = 32
PSEUDONYM_CHARS = 24  # 96 bits of the HMAC in hex: collision-free at national scale


class PseudonymKeyError(RuntimeError):
    pass


def load_or_create_key(path: Path) -> bytes:
    """Read the key; create it with 0600 permissions if it does not exist yet."""
    path = Path(path)
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise PseudonymKeyError(f"{path}: pseudonym key is readable by others (mode {mode:o}); chmod 600 it")
        key = bytes.fromhex(path.read_text().strip())
        if len(key) < 16:
            raise PseudonymKeyError(f"{path}: pseudonym key is too short")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(KEY_BYTES) + "\n")
    return load_or_create_key(path)


class Pseudonymiser:
    """Maps (kind, organisation, number) to a stable keyed pseudonym.

    The organisation is part of the message: client numbers are only unique within an
    organisation. The kind (client, professional, trajectory, administration) keeps the
    namespaces apart.
    """

    def __init__(self, key: bytes):
        self._key = key

    def one(self, kind: str, organisation: str, number: str) -> str:
        msg = f"{kind}\x1f{organisation}\x1f{str(number).strip()}".encode()
        return hmac.digest(self._key, msg, "sha256").hex()[:PSEUDONYM_CHARS]

    def series(self, kind: str, organisation: pd.Series, numbers: pd.Series) -> pd.Series:
        """Pseudonyms for a column; each distinct (organisation, number) is hashed once."""
        key, cache = self._key, {}
        out = []
        for org, number in zip(organisation.tolist(), numbers.tolist()):
            pair = (org, number)
            value = cache.get(pair)
            if value is None:
                text = number.strip() if isinstance(number, str) else ("" if number is None or number != number else str(number))
                value = hmac.digest(key, f"{kind}\x1f{org}\x1f{text}".encode(), "sha256").hex()[:PSEUDONYM_CHARS] if text else ""
                cache[pair] = value
            out.append(value or None)
        return pd.Series(out, index=numbers.index, dtype=object)

    def for_project(self, project_salt: str, pseudonym: str) -> str:
        """A project-specific pseudonym: two projects never share ids for the same client."""
        msg = f"project\x1f{project_salt}\x1f{pseudonym}".encode()
        return hmac.digest(self._key, msg, "sha256").hex()[:PSEUDONYM_CHARS]


# --- ages -----------------------------------------------------------------------------------

def age_at(birth: pd.Series, at: pd.Series) -> pd.Series:
    """Whole years between two datetime series (NaN where either is missing)."""
    b = pd.to_datetime(birth)
    a = pd.to_datetime(at)
    years = a.dt.year - b.dt.year
    before_birthday = (a.dt.month < b.dt.month) | ((a.dt.month == b.dt.month) & (a.dt.day < b.dt.day))
    return (years - before_birthday.astype("Int64")).astype("Int64")


# --- free text ------------------------------------------------------------------------------

_NINE_DIGITS = re.compile(r"(?<!\d)(\d[\s.\-]?){8}\d(?!\d)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PHONE = re.compile(r"(?<!\d)(\+31|0031|0)[\s-]?[1-9](?:[\s-]?\d){8}(?!\d)")
BSN_MASK = "[BSN verwijderd]"
EMAIL_MASK = "[e-mail verwijderd]"
PHONE_MASK = "[telefoon verwijderd]"


def is_bsn(number: str) -> bool:
    """The eleven-test (elfproef) for a Dutch citizen service number (BSN).

    Nine digits d1..d9: 9*d1 + 8*d2 + ... + 2*d8 - 1*d9 must be divisible by 11 (and not 0).
    Eight-digit numbers are valid with a leading zero.
    """
    digits = re.sub(r"[\s.\-]", "", str(number))
    if not digits.isdigit() or len(digits) not in (8, 9):
        return False
    digits = digits.zfill(9)
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1))) - int(digits[8])
    return total != 0 and total % 11 == 0


def screen_text(text: str, names: NameScreen | None = None) -> tuple[str, int]:
    """Mask BSN-like numbers (passing the eleven-test), e-mail addresses, phone numbers and names.

    Returns the screened text and the number of masks applied.
    """
    count = 0

    def bsn(m: re.Match) -> str:
        nonlocal count
        if is_bsn(m.group(0)):
            count += 1
            return BSN_MASK
        return m.group(0)

    out = _NINE_DIGITS.sub(bsn, text)
    out, n_mail = _EMAIL.subn(EMAIL_MASK, out)
    out, n_phone = _PHONE.subn(PHONE_MASK, out)
    out, n_names = mask_names(out, names)
    return out, count + n_mail + n_phone + n_names


def screen_series(values: pd.Series, names: NameScreen | None = None) -> tuple[pd.Series, int]:
    """Screen a column of free text; returns the screened column and the number of masks.

    Vectorised passes find the cells that may hold something to mask (digits, @, a capitalised word;
    then a listed name or a cue word); only those are screened cell by cell.
    """
    screen = names or name_screen()
    texts = values.astype("str")  # Arrow-backed: pandas runs str.contains in RE2
    maybe = texts.notna() & texts.str.contains(_MAYBE, regex=True)
    rows = np.flatnonzero(maybe.to_numpy(dtype=bool, na_value=False))
    if len(rows) > _PREFILTER_FROM:
        hit = texts.iloc[rows].str.contains(screen.prefilter, regex=True)
        rows = rows[hit.to_numpy(dtype=bool, na_value=False)]
    if not len(rows):
        return values.copy(), 0
    total = 0
    cells = values.tolist()  # setting cells one by one is slow on Arrow-backed strings
    for i in rows:
        screened, n = screen_text(str(cells[i]), screen)
        if n:
            cells[i] = screened
            total += n
    return pd.Series(cells, index=values.index, dtype=values.dtype, name=values.name), total


# --- names ----------------------------------------------------------------------------------

NAME_MASK = "[naam verwijderd]"
NAMES_FILE = Path(__file__).resolve().parent.parent / "catalog" / "names.yaml"



def _ranges(test) -> str:
    """The Latin letters (up to U+024F) passing `test`, as character-class ranges."""
    codes = [c for c in range(0x41, 0x250) if chr(c).isalpha() and test(chr(c))]
    out, start = [], codes[0]
    for prev, code in zip(codes, codes[1:] + [None]):
        if code != prev + 1:
            out.append(chr(start) if start == prev else f"{chr(start)}-{chr(prev)}")
            start = code
    return "".join(out)


_UPPER = _ranges(str.isupper)
_LOWER = _ranges(str.islower)
_CAP = f"[{_UPPER}][{_LOWER}]+"
# Cheap first test (a short pattern: RE2 compiles it on every call): every name is a capitalised word.
_MAYBE = f"\\d{{3}}|@|[{_UPPER}][{_LOWER}]"
# Candidates from which the long prefilter repays its compile time (~8 ms) over the precise per-cell test.
_PREFILTER_FROM = 2000
_QUOTES = "'’"
_BEFORE_SENTENCE = " \t\r\n\"'“”‘’«»([{*-–—•"


def _esc(ch: str) -> str:
    """One character as a regex; the apostrophe also matches the typographic one."""
    if ch in _QUOTES:
        return "['’]"
    if ch == " ":
        return "\\s+"
    return "\\" + ch if ch in ".^$*+?()[]{}|\\" else ch


def _trie(words) -> str:
    """One alternation for many literal words, factored by common prefix (fast in re and RE2)."""
    if not words:
        return "(?!)"  # matches nothing
    tree: dict = {}
    for word in words:
        node = tree
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        alts = [_esc(ch) + build(sub) for ch, sub in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if "" in node:
            return (body if len(alts) == 1 and len(body) == 1 else f"(?:{body})") + "?"
        return body

    return build(tree)


@dataclass(frozen=True)
class NameScreen:
    """The compiled name rule of catalog/names.yaml (see its header for the rule)."""

    first_names: tuple[str, ...]  # masked anywhere, capitalised
    surnames: tuple[str, ...]  # idem; particles ("De Vries") in any case
    ambiguous_first_names: tuple[str, ...]  # also ordinary words: masked only mid-sentence, not after an article
    ambiguous_surnames: tuple[str, ...]
    cues: frozenset[str]
    particles: frozenset[str]
    not_names: frozenset[str]
    articles: frozenset[str]
    pattern: re.Pattern
    unit: re.Pattern  # one name: particles and a capitalised (hyphenated) word
    prefilter: str  # a superset test, valid in Python re and RE2 (pandas on Arrow strings)

    @property
    def ambiguous(self) -> tuple[str, ...]:
        return self.ambiguous_first_names + self.ambiguous_surnames


@lru_cache(maxsize=4)
def name_screen(path: Path = NAMES_FILE) -> NameScreen:
    """Load catalog/names.yaml and compile its rule once."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))

    def words(key: str) -> list[str]:
        return list(dict.fromkeys(str(w).strip() for w in raw.get(key) or [] if str(w).strip()))

    amb_first, amb_sur = words("ambiguous_first_names"), words("ambiguous_surnames")
    ambiguous = list(dict.fromkeys(amb_first + amb_sur))
    amb = set(ambiguous)
    first = [w for w in words("first_names") if w not in amb]
    surnames = [w for w in words("surnames") if w not in amb]
    particles = {w.lower() for w in words("particles")}
    cues = {w.lower() for w in words("cues")}

    part = "(?i:" + _trie(sorted(particles)) + ")"
    word = f"{_CAP}(?:-{_CAP})*"
    unit = f"(?:{part}[ \\t]+){{0,3}}{word}"

    def ext(group: str) -> str:  # up to two following name words, looked at but not consumed
        return f"(?=(?P<{group}>(?:[ \\t]+{unit}){{0,2}}))"

    tail = f"(?:-{_CAP})*(?:['’]s)?(?![\\w-])"

    by_particles: dict[tuple[str, ...], list[str]] = {}
    single: list[str] = []
    for name in surnames:
        parts = name.split()
        k = 0
        while k < len(parts) - 1 and parts[k].lower() in particles:
            k += 1
        if k:
            by_particles.setdefault(tuple(p.lower() for p in parts[:k]), []).append(" ".join(parts[k:]))
        else:
            single.append(name)
    psur = "|".join(["(?!)"] + ["(?i:" + "\\s+".join(_trie([p]) for p in seq) + ")\\s+" + _trie(words_)
                    for seq, words_ in sorted(by_particles.items())])
    pattern = (
        f"(?<!\\w)(?P<cue>(?i:{_trie(sorted(cues))}))[ \\t]+(?=[{_UPPER}]|{part}[ \\t])(?P<cname>{unit}(?:[ \\t]+{unit}){{0,2}})"
        f"|(?<![\\w-])(?P<sur>(?:{psur}|{_trie(single)}){tail})"
        f"|(?<![\\w-])(?P<first>{_trie(first)}{tail}){ext('fext')}"
        f"|(?<![\\w-])(?P<amb>{_trie(ambiguous)}{tail}){ext('aext')}"
    )
    cores = [c for cs in by_particles.values() for c in cs]
    # A superset of `pattern` (\W is ASCII in RE2, so broader there). RE2 is fast on a plain
    # case-insensitive alternation of words, slow on a trie or \s+ inside it: the last word of a cue
    # ("heer" of "de heer") is enough.
    cue_alt = "|".join("".join(map(_esc, c)) for c in sorted({c.split()[-1] for c in cues}, key=len, reverse=True))
    prefilter = (f"\\d{{3}}|@|{_trie(sorted({*first, *single, *cores, *ambiguous}))}(?:\\W|$)"
                 f"|(?i:{cue_alt})[ \\t]+(?:[{_UPPER}]|{part}[ \\t])")
    return NameScreen(tuple(first), tuple(surnames), tuple(amb_first), tuple(amb_sur), frozenset(cues), frozenset(particles),
                      frozenset(w.lower() for w in words("not_names")), frozenset(w.lower() for w in words("articles")),
                      re.compile(pattern), re.compile(unit), prefilter)


def _kept_units(text: str, screen: NameScreen) -> int:
    """Length of the leading run of name units in `text` (which starts with white space or a unit),
    stopping at a word from `not_names`."""
    end = 0
    for m in screen.unit.finditer(text):
        if text[end:m.start()].strip():
            break
        core = [w for w in m.group(0).split() if w.lower() not in screen.particles]
        if not core or core[0].split("-")[0].lower() in screen.not_names:
            break
        end = m.end()
    return end


def _mid_sentence(text: str, start: int, screen: NameScreen) -> bool:
    """True when `start` is not at a sentence start and the word before is not an article."""
    before = text[:start]
    stripped = before.rstrip(_BEFORE_SENTENCE)
    if not stripped or "\n" in before[len(stripped):] or stripped[-1] in ".!?:;…":
        return False
    previous = stripped.rsplit(None, 1)[-1].lower()
    return previous not in screen.articles


def mask_names(text: str, names: NameScreen | None = None) -> tuple[str, int]:
    """Replace person names by NAME_MASK following the rule in catalog/names.yaml; returns (text, masks)."""
    screen = names or name_screen()
    out: list[str] = []
    pos = done = count = 0
    while (m := screen.pattern.search(text, pos)) is not None:
        if m.group("cue") is not None:
            start = m.start("cname")
            end = start + _kept_units(m.group("cname"), screen)
            if end == start:
                pos = max(m.end("cue"), pos + 1)
                continue
        elif m.group("sur") is not None:
            start, end = m.span()
        else:
            ext = m.group("fext") if m.group("first") is not None else m.group("aext")
            if m.group("amb") is not None and not _mid_sentence(text, m.start(), screen):
                pos = max(m.end(), pos + 1)
                continue
            start = m.start()
            end = m.end() + _kept_units(ext, screen)
        out += [text[done:start], NAME_MASK]
        done = pos = end
        count += 1
    if not count:
        return text, 0
    out.append(text[done:])
    return "".join(out), count
