"""Assembling the admin web: a Starlette app over the store, with server-side sessions, CSRF,
secure headers and server-rendered Jinja2 pages."""

from __future__ import annotations

import logging
import secrets
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from admin.web.context import http_error_handler
from admin.web.security import SecureHeaders, SignInLimiter
from admin.web.state import Notify, WebState
from config.clock import Clock
from config.settings import Settings
from content.i18n import period_label
from content.pack import get_pack

log = logging.getLogger("branchbot.admin")

HERE = Path(__file__).resolve().parent.parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
COOKIE = "branchbot_admin"


def _hours(minutes: int | float | None) -> str:
    return f"{round((minutes or 0) / 60, 1):g}"


def make_env(settings: Settings) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    tz = settings.tz

    def local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return value.astimezone(tz).strftime(fmt) if value else "—"

    def day(value: date | None) -> str:
        return value.isoformat() if value else "—"

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.0f}%"

    @pass_context
    def period(ctx: Any, value: str) -> str:
        # "2026-Q4" as the reader's language writes it (2026年第四季度), not the stored form.
        return period_label(ctx["t"], value)

    env.filters.update(hours=_hours, local=local, day=day, pct=pct, period=period)
    return env


def _secret(settings: Settings) -> str:
    if settings.admin_secret:
        return settings.admin_secret
    log.warning(
        "ADMIN_SECRET is empty: using a random key, so admin web sessions end when the process restarts"
    )
    return secrets.token_urlsafe(48)


def public_base(settings: Settings) -> str:
    """The address people open: ADMIN_PUBLIC_URL if set, else http://ADMIN_HOST:ADMIN_PORT."""
    if settings.admin_public_url:
        return settings.admin_public_url.rstrip("/")
    return f"http://{settings.admin_host}:{settings.admin_port}"


async def cjk_font(request: Request) -> Response:
    from storage.fonts import cjk_font_path

    return FileResponse(
        cjk_font_path(), media_type="font/otf", headers={"Cache-Control": "public, max-age=2592000"}
    )


def routes() -> list[BaseRoute]:
    from admin.web.pages import all_routes

    return [
        *all_routes(),
        Route("/static/fonts/cjk.otf", cjk_font, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]


def create_app(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock | None = None,
    outbox_notify: Notify | None = None,
) -> Starlette:
    """The admin web app. `outbox_notify` is called after a commit that put messages in the outbox
    (a notice sent, a nudge, review outcomes), to wake the delivery worker at once."""
    secure = public_base(settings).startswith("https://")
    clock = clock or Clock()
    state = WebState(
        sessionmaker=sessionmaker,
        settings=settings,
        clock=clock,
        # Sign-in delays follow the app's clock (a test's frozen clock too).
        limiter=SignInLimiter(clock=lambda: clock.now().timestamp()),
        pack=get_pack(settings.content_pack),
        env=make_env(settings),
        secure_cookies=secure,
        notify=outbox_notify,
    )
    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(SecureHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=_secret(settings),
                session_cookie=COOKIE,
                max_age=settings.admin_session_hours * 3600,
                same_site="lax",
                https_only=secure,
            ),
        ],
        exception_handlers={404: http_error_handler, 405: http_error_handler, 500: http_error_handler},
    )
    app.state.web = state
    return app
