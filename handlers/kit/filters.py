"""Small router filters on who is talking, read from what `PersonContext` injected.

`router.message.filter(Joined())` keeps a member router to people who have joined (and
consented); everyone else falls through to the fallback router, which tells them how to join.
`HasRole(Role.SECRETARY, ...)` does the same for a role, so the fallback's "for secretaries
only" reply answers the rest.
"""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter

from storage.access import Actor
from storage.models import Role
from storage.people import PersonView


class Joined(Filter):
    """The person has joined a branch or committee and consented."""

    async def __call__(self, event: Any, person: PersonView | None = None) -> bool:
        return person is not None


class HasRole(Filter):
    """The person has (at least) one of `roles` somewhere."""

    def __init__(self, *roles: Role) -> None:
        if not roles:
            raise ValueError("HasRole needs at least one role")
        self.roles = frozenset(roles)

    async def __call__(
        self, event: Any, person: PersonView | None = None, actor: Actor | None = None
    ) -> bool:
        return person is not None and actor is not None and bool(actor.roles() & self.roles)
