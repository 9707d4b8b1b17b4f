"""The corpus of bad delivery files in tests/data/bad and the errors they must give."""

from __future__ import annotations

import re
from pathlib import Path

BAD = Path(__file__).parent / "data" / "bad"


def bad_files() -> dict[str, tuple[str, str]]:
    """file -> (i18n key, expected message) from the table in tests/data/bad/README.md."""
    out = {}
    for line in (BAD / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2].startswith("err_"):
            out[cells[0]] = (cells[2], cells[3])
    return out


BAD_FILES = bad_files()


def message_regex(message: str) -> str:
    """The documented message as a regex; `…` stands for a variable part."""
    return "".join(".*" if part == "…" else re.escape(part) for part in re.split("(…)", message))
