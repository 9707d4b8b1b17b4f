"""Every query argument, form field and path part as a typed, validated value, before anything uses it.

Pages read arguments only through `arg(name, parser)` (Panel sessions) or `handler_arg(handler, name,
parser)` (plain handlers); a parser turns the raw text into a value or raises `BadParameter` with a plain
message, which the page shows (Panel) or answers with 400 (plain handlers). Whether an id exists and the
visitor may see it is the domain's question (its own refusal, shown as the page's message).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import panel as pn

from ..i18n import t

T = TypeVar("T")
MAX_LENGTH = 200  # no argument the portal takes is longer
MAX_VALUES = 50  # no argument the portal takes is repeated more often
IDENTIFIER = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


class BadParameter(ValueError):
    """A query argument or form field that is not what the page takes; the message names it."""

    def __init__(self, name: str, value: str, language: str = "nl"):
        shown = value if len(value) <= 40 else value[:40] + "…"
        super().__init__(t("param_bad", language, name=name, value=shown))
        self.name, self.value = name, value


def integer(raw: str) -> int:
    """A positive id (1, 2, …); nothing else (no sign, no spaces, no 1e3)."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12 or int(raw) < 1:
        raise ValueError(raw)
    return int(raw)


def flag(raw: str) -> bool:
    """`?nieuw=1`: present with 1 (or true) is on."""
    if raw not in ("1", "true"):
        raise ValueError(raw)
    return True


def identifier(raw: str) -> str:
    """A catalogue entry id and the like: letters, digits, `_ . -`."""
    if not IDENTIFIER.match(raw):
        raise ValueError(raw)
    return raw


def one_of(options: Iterable[str]) -> Callable[[str], str]:
    allowed = frozenset(options)

    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(raw)
        return raw
    return parse


def local_path(raw: str) -> str:
    """A redirect target on this site: an absolute path (`/services/...`), never another host.

    Refused: `//host`, `/\\host`, a scheme (`https:`, `javascript:`), control characters or spaces, and
    the same hidden by percent-encoding (`/%2F%2Fhost`, `/%5Chost`), which browsers and proxies may decode."""
    decoded = raw
    for _ in range(3):  # decode repeatedly: %252F is %2F is /
        decoded = unquote(decoded)
    for candidate in (raw, decoded):
        if not candidate.startswith("/") or candidate.startswith(("//", "/\\")) or "\\" in candidate:
            raise ValueError(raw)
        refused = "CZ" if candidate is raw else "C"  # control and format characters; raw spaces too
        if any(unicodedata.category(c)[0] in refused for c in candidate):
            raise ValueError(raw)
        parts = urlsplit(candidate)
        if parts.scheme or parts.netloc:
            raise ValueError(raw)
    return raw


def parse(name: str, raw: str | None, parser: Callable[[str], T], default: T | None = None,
          language: str = "nl") -> T | None:
    """`raw` (None: the argument is absent, giving `default`) through `parser`; BadParameter if it refuses."""
    if raw is None:
        return default
    if len(raw) > MAX_LENGTH:
        raise BadParameter(name, raw, language)
    try:
        return parser(raw)
    except ValueError:
        raise BadParameter(name, raw, language) from None


def raw_arg(name: str) -> str | None:
    """The raw text of a query argument of the Panel session's URL, or None; for `arg` only."""
    values = pn.state.session_args.get(name) if pn.state.curdoc else None
    if not values:
        return None
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        return values[0].decode("utf-8", "replace")


def arg(name: str, parser: Callable[[str], T], default: T | None = None, language: str = "nl") -> T | None:
    """A query argument of the Panel page (`?id=3` with `integer` → 3), parsed; BadParameter if malformed."""
    return parse(name, raw_arg(name), parser, default, language)


def handler_arg(handler, name: str, parser: Callable[[str], T], default: T | None = None,
                language: str = "nl") -> T | None:
    """A query argument of a plain handler's request, parsed; BadParameter if malformed (the handler's
    `write_error` answers 400 with the message)."""
    return parse(name, handler.get_argument(name, None), parser, default, language)


def all_arguments(raw: dict[str, list[bytes]], skip: tuple[str, ...] = (), language: str = "nl") -> dict[str, list[str]]:
    """Every query argument of a request (name: raw values) as text, for endpoints whose arguments are
    the data's own dimensions (each value is then checked against what the visitor may choose).
    BadParameter for malformed UTF-8, a name or value longer than MAX_LENGTH, more than MAX_VALUES values."""
    arguments: dict[str, list[str]] = {}
    for name, values in raw.items():
        if name in skip:
            continue
        if len(name) > MAX_LENGTH or len(values) > MAX_VALUES:
            raise BadParameter(name[:MAX_LENGTH], "…", language)
        try:
            arguments[name] = [parse(name, value.decode("utf-8"), str, language=language) for value in values]
        except UnicodeDecodeError:
            raise BadParameter(name, "…", language) from None
    return arguments
