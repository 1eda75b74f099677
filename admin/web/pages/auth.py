"""Signing in and out: username and password (admins, staff), the one-time link from the bot's
/web (secretaries, staff), the language switch."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from admin.web.context import Ctx, page
from content.i18n import LOCALES
from storage import web_auth
from storage.access import Actor
from storage.errors import Forbidden, Refused


def _next(ctx: Ctx) -> str:
    target = ctx.field("next") or ctx.arg("next")
    # Only a path on this site: never an open redirect to somewhere else.
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _start_session(ctx: Ctx, actor: Actor) -> None:
    lang = ctx.request.session.get("lang")
    ctx.request.session.clear()  # a fresh session (and CSRF token) for the signed-in person
    if lang:
        ctx.request.session["lang"] = lang
    ctx.request.session["pid"] = actor.person_id
    ctx.request.session["at"] = int(ctx.now.timestamp())


def _client(ctx: Ctx) -> str:
    return ctx.request.client.host if ctx.request.client else "unknown"


@page(roles=None)
async def login_form(ctx: Ctx) -> Response:
    if ctx.actor is not None:
        return ctx.redirect(_next(ctx))
    return await ctx.render("login.html", next=_next(ctx), username="")


@page(roles=None)
async def login(ctx: Ctx) -> Response:
    username, password = ctx.field("username"), ctx.field("password")
    ip = _client(ctx)
    if not ctx.state.limiter.allowed(ip, username):
        ctx.flash("error", "web.login.too_many")
        return await ctx.render("login.html", http_status=429, next=_next(ctx), username=username)
    actor = await web_auth.check_password(ctx.db, username, password, ctx.now)
    if actor is None:
        ctx.state.limiter.failed(ip, username)
        ctx.flash("error", "web.login.failed")
        return await ctx.render("login.html", http_status=401, next=_next(ctx), username=username)
    await ctx.db.commit()
    _start_session(ctx, actor)
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
    await ctx.db.commit()
    _start_session(ctx, actor)
    return ctx.redirect("/")


@page(roles=None)
async def logout(ctx: Ctx) -> Response:
    lang = ctx.request.session.get("lang")
    ctx.request.session.clear()
    if lang:
        ctx.request.session["lang"] = lang
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
    Route("/lang", set_language, methods=["POST"]),
]
