"""The pages of the admin web, one module per area; each module lists its `routes`."""

from __future__ import annotations

from importlib import import_module

from starlette.routing import BaseRoute

MODULES = (
    "auth",
    "dashboard",
    "orgs",
    "members",
    "entries",
    "commitments",
    "checklists",
    "notices",
    "reminders",
    "reports",
    "packet",
    "audit",
    "content",
    "verify",
)


def all_routes() -> list[BaseRoute]:
    out: list[BaseRoute] = []
    for name in MODULES:
        try:
            mod = import_module(f"admin.web.pages.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"admin.web.pages.{name}":
                raise
            continue
        out.extend(mod.routes)
    return out
