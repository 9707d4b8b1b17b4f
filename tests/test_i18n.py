"""The texts of ldj.i18n: every key in both languages with the same fields, and every key in use."""

from __future__ import annotations

import re
import string

from ldj.i18n import TEXTS, t
from ldj.settings import REPO_ROOT

SOURCES = [p for folder in ("ldj", "portal", "factsheet", "hub") for p in (REPO_ROOT / folder).rglob("*")
           if p.is_file() and p.suffix in (".py", ".j2") and p.name != "i18n.py"]


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_text_has_both_languages_with_the_same_fields():
    for key, (dutch, english) in TEXTS.items():
        assert dutch.strip() and english.strip(), key
        assert _fields(dutch) == _fields(english), key


def test_t_formats_in_the_asked_language():
    assert t("ind_sejn", "nl") == "Alle SEJN-leden" and t("ind_sejn", "en") == "All SEJN members"


def test_every_key_is_used():
    """A key is used by name, or belongs to a family whose key is built from a prefix
    (f"vb_status_{status}", "reg_" + status, "fs_" ~ key in a template)."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in SOURCES)
    families = set(re.findall(r"""f["']([a-z]+_[a-z_]*)\{""", source))
    families |= set(re.findall(r"""["']([a-z]+_[a-z_]*)["']\s*[+~]""", source))
    words = set(re.findall(r"\w+", source))
    unused = [key for key in TEXTS if key not in words and not key.startswith(tuple(families))]
    assert not unused, f"texts nobody uses (delete them): {unused}"
