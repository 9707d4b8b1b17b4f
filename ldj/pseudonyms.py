"""Pseudonyms at the door: keyed HMAC-SHA256 of the organisation's numbers, and free-text screening.

The key is a random 32-byte secret in a file (0600) created on first use, or read from
`LDJ_PSEUDONYM_KEY_FILE`. Without the key nobody can recompute a pseudonym from a client number.
Original numbers are never stored; birth dates become ages.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from pathlib import Path

import pandas as pd

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


def screen_text(text: str) -> tuple[str, int]:
    """Mask BSN-like numbers (passing the eleven-test), e-mail addresses and phone numbers.

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
    return out, count + n_mail + n_phone


def screen_series(values: pd.Series) -> tuple[pd.Series, int]:
    """Screen a column of free text; returns the screened column and the number of masks."""
    total = 0
    out = values.copy()
    mask = values.notna() & values.astype(str).str.contains(r"\d{3}|@", regex=True)
    for idx in values.index[mask.to_numpy()]:
        screened, n = screen_text(str(values.at[idx]))
        out.at[idx] = screened
        total += n
    return out, total

