"""Signing in and out: username and password (admins, staff), the one-time link from the bot's
/web (secretaries, staff), the language switch."""

from __future__ import annotations

import math

from starlette.responses import Response
from starlette.routing import Route

from admin.web.context import Ctx, page
from admin.web.security import Reservation, client_address
from content.i18n import LOCALES
from storage import admin_sessions, audit, web_auth
from storage.access import Actor
from storage.errors import Forbidden, Refused


def _next(ctx: Ctx) -> str:
    target = ctx.field("next") or ctx.arg("next")
    # Only a path on this site: never an open redirect to somewhere else.
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def _start_session(ctx: Ctx, actor: Actor) -> None:
    """A new server-side session (committed with the sign-in's audit row); the cookie gets its
    random id and nothing else that grants access."""
    token = await admin_sessions.start(ctx.db, actor.person_id, ctx.now, ctx.state.session_life)
    await ctx.db.commit()
    _fresh_cookie(ctx)
    ctx.request.session["sid"] = token


def _fresh_cookie(ctx: Ctx) -> None:
    lang = ctx.request.session.get("lang")
    ctx.request.session.clear()  # a fresh CSRF token too
    if lang:
        ctx.request.session["lang"] = lang


def _client(ctx: Ctx) -> str:
    r = ctx.request
    return client_address(
        r.client.host if r.client else None,
        r.headers.get("x-forwarded-for"),
        ctx.state.settings.trusted_proxies,
    )


@page(roles=None)
async def login_form(ctx: Ctx) -> Response:
    if ctx.actor is not None:
        return ctx.redirect(_next(ctx))
    return await ctx.render("login.html", next=_next(ctx), username="")


@page(roles=None)
async def login(ctx: Ctx) -> Response:
    username, password = ctx.field("username"), ctx.field("password")
    # The attempt is counted before the password is checked: concurrent guesses cannot all pass
    # the count while Argon2 is still working on the first ones.
    reserved = ctx.state.limiter.reserve(_client(ctx), username)
    if not isinstance(reserved, Reservation):
        wait = max(1, math.ceil(reserved))
        ctx.flash("error", "web.login.too_many", seconds=wait)
        response = await ctx.render("login.html", http_status=429, next=_next(ctx), username=username)
        response.headers["Retry-After"] = str(wait)
        return response
    actor = await web_auth.check_password(ctx.db, username, password, ctx.now)
    if actor is None:
        ctx.flash("error", "web.login.failed")
        return await ctx.render("login.html", http_status=401, next=_next(ctx), username=username)
    ctx.state.limiter.succeeded(reserved)
    await _start_session(ctx, actor)
    return ctx.redirect(_next(ctx))


@page(roles=None)
async def link_confirm(ctx: Ctx) -> Response:
    """Opening the link only shows whose it is: a link preview or a scanner fetching the URL must
    not use it up. Signing in takes the button (a POST)."""
    token = ctx.request.path_params["token"]
    try:
        person = await web_auth.peek_sign_in_link(ctx.db, token, ctx.now)
    except Refused as e:
        return await ctx.render(
            "link.html", http_status=410 if e.key != "web.link_unknown" else 404, error=e.key
        )
    return await ctx.render("link.html", name=person.name, token=token, error=None)


@page(roles=None)
async def link_redeem(ctx: Ctx) -> Response:
    token = ctx.request.path_params["token"]
    try:
        actor = await web_auth.redeem_sign_in_link(ctx.db, token, ctx.now)
    except Forbidden:
        await ctx.db.rollback()
        return await ctx.render("link.html", http_status=403, error="web.no_access")
    except Refused as e:
        await ctx.db.rollback()
        return await ctx.render(
            "link.html", http_status=410 if e.key != "web.link_unknown" else 404, error=e.key
        )
    await _start_session(ctx, actor)
    return ctx.redirect("/")


@page(roles=None)
async def logout(ctx: Ctx) -> Response:
    token = ctx.request.session.get("sid")
    if isinstance(token, str):
        await admin_sessions.end(ctx.db, token)
        await ctx.db.commit()
    _fresh_cookie(ctx)
    return ctx.redirect("/login")


@page()
async def logout_everywhere(ctx: Ctx) -> Response:
    """End every session of the signed-in person, on every device (this one too)."""
    ended = await admin_sessions.end_all(ctx.db, ctx.me.person_id)
    await audit.record(ctx.db, ctx.me, "web.sign_out_everywhere", detail={"sessions": ended})
    await ctx.db.commit()
    _fresh_cookie(ctx)
    ctx.flash("ok", "web.signed_out_everywhere", count=ended)
    return ctx.redirect("/login")


@page(roles=None)
async def set_language(ctx: Ctx) -> Response:
    lang = ctx.field("lang")
    if lang in LOCALES:
        ctx.request.session["lang"] = lang
    return ctx.redirect(ctx.back())


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/login/link/{token}", link_confirm, methods=["GET"]),
    Route("/login/link/{token}", link_redeem, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/logout/everywhere", logout_everywhere, methods=["POST"]),
    Route("/lang", set_language, methods=["POST"]),
]
