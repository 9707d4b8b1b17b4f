"""Who is looking at a portal page: the policy's actor (name, roles, organisation, projects) and the
language they read.

The name comes from the hub (OAuth single sign-on); roles, organisation and projects from the hub's
groups (`role-*`, `org-*`, `project-*`, synced from the LDJ accounts at every hub login), turned into a
`policy.Actor` once per request. Anonymous visitors have no name. Pages ask `visitor.check(action)` /
`visitor.allows(action)`; the domain checks again on every action against the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .. import policy, store
from ..i18n import t as _t
from ..settings import Settings, get_settings

LANGUAGES = ("nl", "en")
LANGUAGE_COOKIE = "ldj_taal"

@dataclass(frozen=True)
class Visitor:
    actor: policy.Actor = policy.VISITOR
    language: str = "nl"
    settings: Settings = field(default_factory=get_settings, repr=False, compare=False)

    @property
    def name(self) -> str | None:
        return self.actor.name

    @property
    def roles(self) -> frozenset[str]:
        return self.actor.roles

    @property
    def organisation(self) -> str | None:
        return self.actor.organisation

    @property
    def projects(self) -> frozenset[int]:
        return self.actor.projects

    @property
    def anonymous(self) -> bool:
        return self.actor.anonymous

    @property
    def engine(self) -> sa.Engine:
        return store.get_engine(self.settings)

    def t(self, key: str, **fields: Any) -> str:
        return _t(key, self.language, **fields)

    def has_role(self, *roles: str) -> bool:
        return self.actor.has_role(*roles)

    def allows(self, action: str, target: policy.Target | None = None) -> bool:
        return policy.allows(self.actor, action, target)

    def check(self, action: str, target: policy.Target | None = None) -> None:
        """Refuse (`policy.Refused`) unless this visitor may do `action` (a row of `ldj.policy.RULES`)."""
        policy.check(self.actor, action, target, self.language)



def from_groups(name: str | None, groups: list[str] | None, language: str = "nl",
                settings: Settings | None = None) -> Visitor:
    """A visitor from the hub's user model; without groups, the LDJ account in the store is the actor."""
    settings = settings or get_settings()
    language = language if language in LANGUAGES else "nl"
    if not name:
        return Visitor(policy.VISITOR, language, settings)
    if groups is None:
        return Visitor(policy.actor_for(store.get_engine(settings), name), language, settings)
    return Visitor(policy.actor_from_groups(name, groups), language, settings)
