"""The left navigation: which pages a role sees, in which order and groups."""

from __future__ import annotations

from dataclasses import dataclass

from storage.models import Role

MANAGERS = frozenset({Role.SECRETARY, Role.STAFF, Role.ADMIN})
ABOVE = frozenset({Role.STAFF, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class NavItem:
    href: str
    key: str
    roles: frozenset[Role]
    group: str | None = None


NAV = (
    NavItem("/", "web.nav.dashboard", MANAGERS, "web.nav.group_overview"),
    NavItem("/orgs", "web.nav.orgs", MANAGERS),
    NavItem("/members", "web.nav.members", MANAGERS, "web.nav.group_work"),
    NavItem("/entries", "web.nav.entries", MANAGERS),
    NavItem("/commitments", "web.nav.commitments", MANAGERS),
    NavItem("/checklists", "web.nav.checklists", MANAGERS),
    NavItem("/notices", "web.nav.notices", MANAGERS, "web.nav.group_contact"),
    NavItem("/reminders", "web.nav.reminders", MANAGERS),
    NavItem("/reports", "web.nav.reports", MANAGERS, "web.nav.group_records"),
    NavItem("/packet", "web.nav.packet", MANAGERS),
    NavItem("/audit", "web.nav.audit", ABOVE),
    NavItem("/content", "web.nav.content", MANAGERS),
)


def nav_for(roles: set[Role], path: str, badges: dict[str, int] | None = None) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for item in NAV:
        if not roles & item.roles:
            continue
        active = path == "/" if item.href == "/" else path == item.href or path.startswith(item.href + "/")
        out.append(
            {
                "href": item.href,
                "key": item.key,
                "group": item.group,
                "active": active,
                "badge": (badges or {}).get(item.href),
            }
        )
    return out
