"""Who is looking at a portal page: name, roles and organisation, and the language they read.

The name comes from the hub (OAuth single sign-on); roles and organisation from the hub's groups
(`role-*`, `org-*`, synced from the LDJ accounts at every hub login). Anonymous visitors have no name.
The domain layer checks permissions again on every action against the governance store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .. import governance, policy, store
from ..i18n import t as _t
from ..settings import Settings, get_settings

LANGUAGES = ("nl", "en")
LANGUAGE_COOKIE = "ldj_taal"


@dataclass(frozen=True)
class Visitor:
    name: str | None
    roles: frozenset[str] = frozenset()
    organisation: str | None = None
    projects: frozenset[int] = frozenset()
    language: str = "nl"
    settings: Settings = field(default_factory=get_settings, repr=False, compare=False)

    @property
    def anonymous(self) -> bool:
        return self.name is None

    @property
    def engine(self) -> sa.Engine:
        return store.get_engine(self.settings)

    def t(self, key: str, **fields: Any) -> str:
        return _t(key, self.language, **fields)

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))

    @property
    def actor(self) -> policy.Actor:
        return policy.Actor(self.name, self.roles, self.organisation, self.projects)

    def allows(self, action: str, target: policy.Target | None = None) -> bool:
        return policy.allows(self.actor, action, target)

    def check(self, action: str, target: policy.Target | None = None) -> None:
        """Refuse (`policy.Refused`) unless this visitor may do `action` (a row of `ldj.policy.RULES`)."""
        policy.check(self.actor, action, target, self.language)

    def require(self, *roles: str) -> None:
        """Refuse unless logged in with one of `roles` (none given: any login)."""
        if self.anonymous or (roles and not self.has_role(*roles)):
            raise governance.PermissionDenied(self.t("portal_forbidden"))


def from_groups(name: str | None, groups: list[str] | None, language: str = "nl",
                settings: Settings | None = None) -> Visitor:
    """A visitor from the hub's user model; without groups, the LDJ account supplies roles."""
    settings = settings or get_settings()
    language = language if language in LANGUAGES else "nl"
    if not name:
        return Visitor(None, language=language, settings=settings)
    if groups is None:
        try:
            user = governance.get_user(store.get_engine(settings), name)
        except governance.NotFound:
            return Visitor(name, language=language, settings=settings)
        groups = [f"role-{r}" for r in user.roles] + ([f"org-{user.organisation}"] if user.organisation else [])
    roles = frozenset(g[5:] for g in groups if g.startswith("role-"))
    orgs = [g[4:] for g in groups if g.startswith("org-")]
    projects = frozenset(int(g[8:]) for g in groups if g.startswith("project-") and g[8:].isdigit())
    return Visitor(name, roles, orgs[0] if orgs else None, projects, language, settings)
