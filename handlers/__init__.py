"""One router per area. Order matters: the fallback router comes last."""

from __future__ import annotations

import importlib

from aiogram import Router

# Each module defines `router = Router(name=__name__)`.
MODULES = (
    "handlers.hygiene",
    "handlers.start",
    "handlers.manage",
    "handlers.review",
    "handlers.evaluate",
    "handlers.notify",
    "handlers.members",
    "handlers.web",
    "handlers.reports",
    "handlers.packet",
    "handlers.branches",
    "handlers.reminders",
    "handlers.assess",
    "handlers.service_log",
    "handlers.commitments",
    "handlers.privacy",
    "handlers.settings",
    "handlers.notices",
    "handlers.checklists",
    "handlers.services",
    "handlers.certificate",
    "handlers.fallback",
)


def routers() -> list[Router]:
    out: list[Router] = []
    for name in MODULES:
        router: Router = importlib.import_module(name).router
        _detach(router)
        out.append(router)
    return out


def _detach(router: Router) -> None:
    """Free a module-level router from a previous dispatcher.

    aiogram attaches a router to one parent for life; tests and the demo build more than one
    dispatcher in a process, one after another, so the old link is cut first.
    """
    parent = router.parent_router
    if parent is not None:
        parent.sub_routers.remove(router)
        router._parent_router = None  # aiogram has no public way to detach
