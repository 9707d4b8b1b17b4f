"""Disclosure control for every aggregate that leaves the platform (brief section 5).

A count of fewer than `disclosure_threshold` clients is suppressed; other counts are rounded to
the nearest `disclosure_rounding`. Tables with margins add secondary suppression (portal issue).
"""

from __future__ import annotations

from .settings import Settings, get_settings

SUPPRESSED = None  # what a suppressed cell becomes; the portal shows "te weinig gegevens"


def controlled_count(n: int | None, settings: Settings | None = None) -> int | None:
    """A count safe to publish: None below the threshold, else rounded (half up) to the base."""
    settings = settings or get_settings()
    if n is None or n < settings.disclosure_threshold:
        return SUPPRESSED
    base = settings.disclosure_rounding
    return int((n + base / 2) // base * base) if base > 1 else int(n)
