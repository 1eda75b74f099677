"""One request of the admin web: who is signed in, their Actor, language, clock and database
session, and the `page` decorator every route goes through.

The decorator decides, before any page code runs:
- not signed in (no live server-side session: see storage.admin_sessions) → 302 to /login;
- a POST without the session's CSRF token, or from another origin → 403;
- a role the page is not for (members: every page) → 403.
Store errors then become responses the same way everywhere: an object outside the actor's scope
and an object that does not exist both answer 404 (the web never tells them apart); a rule that
says no is shown as a message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import wraps
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Message

from admin.web.nav import nav_for
from admin.web.security import CSRF_FIELD, CSRF_HEADER, csrf_ok, csrf_token
from admin.web.state import WebState
from content.i18n import LOCALES, Texts, texts
from storage import admin_sessions
from storage.access import Actor, load_actor
from storage.errors import Forbidden, Invalid, NotFound, Refused
from storage.models import Org, OrgKind, Person, Role
from storage.validation import ascii_int, control_chars, strict_day

log = logging.getLogger("branchbot.admin")

MANAGERS = (Role.SECRETARY, Role.STAFF, Role.ADMIN)
WEB_ROLES = MANAGERS  # who may hold a session at all
ABOVE = (Role.STAFF, Role.ADMIN)
FORM_LIMIT = 1024 * 1024  # ordinary forms; uploads name their own limit


class PageError(Exception):
    """Stop the page with this status and a catalog message."""

    def __init__(self, status: int, key: str, **params: Any) -> None:
        super().__init__(key)
        self.status, self.key, self.params = status, key, params


@dataclass
class Ctx:
    request: Request
    state: WebState
    db: AsyncSession
    now: datetime
    locale: str
    _: Texts
    person: Person | None = None
    actor: Actor | None = None
    form: FormData | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- who -------------------------------------------------------------------------------

    @property
    def me(self) -> Actor:
        assert self.actor is not None, "page needs a signed-in actor"
        return self.actor

    @property
    def role(self) -> Role | None:
        return self.actor.top_role if self.actor else None

    @property
    def today(self) -> date:
        return self.now.astimezone(self.state.settings.tz).date()

    # ---- input -----------------------------------------------------------------------------

    def arg(self, name: str, default: str = "") -> str:
        value = (self.request.query_params.get(name) or default).strip()
        if control_chars(value, allow_newlines=False):
            raise Invalid("error.control_chars")
        return value

    def int_arg(self, name: str) -> int | None:
        """An id from the query; a malformed one is a page that does not exist."""
        raw = self.arg(name)
        if not raw:
            return None
        n = ascii_int(raw)
        if n is None:
            raise NotFound()
        return n

    def page_arg(self, name: str = "page") -> int:
        """A page number: 1 unless the query holds a sensible one."""
        return ascii_int(self.arg(name), lo=1, hi=100_000) or 1

    def day_arg(self, name: str) -> date | None:
        """A day from the query (YYYY-MM-DD), or None if absent; anything else is a clear 400."""
        raw = self.arg(name)
        if not raw:
            return None
        day = strict_day(raw)
        if day is None:
            raise Invalid("web.bad_date", value=raw[:20])
        return day

    def path_id(self, name: str) -> int:
        """An id from the path (the route took digits only): beyond an id's range, no such page."""
        n = ascii_int(str(self.request.path_params[name]))
        if n is None:
            raise NotFound()
        return n

    def field(self, name: str, default: str = "") -> str:
        v = self.form.get(name) if self.form is not None else None
        if not isinstance(v, str):
            return default
        if control_chars(v):
            raise Invalid("error.control_chars")
        return v.strip()

    def fields(self, name: str) -> list[str]:
        if self.form is None:
            return []
        return [v for v in self.form.getlist(name) if isinstance(v, str)]

    def upload(self, name: str) -> UploadFile | None:
        v = self.form.get(name) if self.form is not None else None
        return v if isinstance(v, UploadFile) else None

    # ---- output ----------------------------------------------------------------------------

    def flash(self, kind: str, key: str, **params: Any) -> None:
        msgs = list(self.request.session.get("flash", []))[-4:]
        msgs.append({"kind": kind, "text": self._.plain(key, **params)})
        self.request.session["flash"] = msgs

    async def render(self, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
        flashes = self.request.session.pop("flash", [])
        nav: list[dict[str, object]] = []
        pending = 0
        if self.actor is not None:
            from storage.service_log import count_pending_for

            pending = await count_pending_for(self.db, self.actor)
            nav = nav_for(self.actor.roles(), self.request.url.path, {"/entries": pending})
        html = self.state.env.get_template(template).render(
            ctx=self,
            _=self._,
            t=self._.plain,
            csrf=csrf_token(self.request.session),
            flashes=flashes,
            path=self.request.url.path,
            query=self.request.url.query,
            nav=nav,
            nav_pending=pending,
            pack_title=self.state.pack.meta.title.get(self.locale),
            **context,
        )
        return HTMLResponse(html, status_code=http_status)

    def redirect(self, url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)

    def back(self, default: str = "/") -> str:
        """Where a form came from (its `back` field, or the Referer), if it is one of our pages."""
        raw = self.form.get("back") if self.form is not None else None
        # Read raw: this runs while another refusal is being answered, and a `back` that is not
        # a clean path of ours is simply not used (never a second error).
        given = raw.strip() if isinstance(raw, str) else ""
        for candidate in (given, self.request.headers.get("referer", "")):
            if not candidate or control_chars(candidate):
                continue
            parts = urlsplit(candidate)
            if parts.netloc and parts.netloc != self.request.url.netloc:
                continue
            if parts.path.startswith("/") and not parts.path.startswith("//"):
                return parts.path + (f"?{parts.query}" if parts.query else "")
        return default

    # ---- scope -----------------------------------------------------------------------------

    async def managed_orgs(self) -> list[tuple[int, Org]]:
        """(depth, org) of every org the actor manages, as a tree, parents first."""
        if "managed" not in self.extra:
            from storage.orgs import org_tree

            out: list[tuple[int, Org]] = []
            for root in await org_tree(self.db, self.me):
                for depth, org in root.walk():
                    if self.me.manages(org):
                        out.append((depth, org))
            base = min((d for d, _ in out), default=0)
            self.extra["managed"] = [(d - base, o) for d, o in out]
        return self.extra["managed"]

    async def pick_org(self, name: str = "org", *, kinds: Iterable[OrgKind] | None = None) -> Org:
        """The org chosen in the query (404 outside the scope), else the top of the actor's scope."""
        managed = await self.managed_orgs()
        wanted = self.int_arg(name)
        allowed = [o for _, o in managed if kinds is None or o.kind in set(kinds)]
        if wanted is None:
            if not allowed:
                raise PageError(403, "web.nothing_to_manage")
            return allowed[0]
        for o in allowed:
            if o.id == wanted:
                return o
        raise NotFound()

    async def branches_under(self, org: Org) -> list[Org]:
        return [
            o
            for _, o in await self.managed_orgs()
            if o.kind is OrgKind.BRANCH and o.path.startswith(org.path)
        ]


Endpoint = Callable[[Ctx], Awaitable[Response]]


def _locale(request: Request, person: Person | None, default: str) -> str:
    chosen = request.session.get("lang") if "session" in request.scope else None
    if chosen in LOCALES:
        return str(chosen)
    if person is not None and person.locale in LOCALES:
        return str(person.locale)
    return default


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    # The query is already percent-encoded: keep its escapes as they are.
    return RedirectResponse(f"/login?next={quote(target, safe='%')}", status_code=302)


def error_page(state: WebState, request: Request, status: int, key: str, **params: Any) -> HTMLResponse:
    """A plain error page in the visitor's language (no database needed)."""
    _ = texts(_locale(request, None, state.settings.default_locale))
    html = state.env.get_template("error.html").render(
        _=_,
        t=_.plain,
        ctx=None,
        status=status,
        message=_.plain(key, **params),
        csrf=csrf_token(request.session) if "session" in request.scope else "",
        flashes=[],
        path=request.url.path,
        query="",
    )
    return HTMLResponse(html, status_code=status)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.url.netloc


async def _read_form(request: Request, limit: int) -> FormData:
    """The form, refusing (413) a body over `limit` before reading it when its length is declared,
    and as soon as it passes the limit when it is not (chunked uploads)."""
    too_big = PageError(413, "web.too_big", mb=max(1, limit // (1024 * 1024)))
    length = request.headers.get("content-length")
    declared = ascii_int(length, hi=10**15) if length is not None else 0
    if declared is None or declared > limit:
        raise too_big
    seen = 0
    receive = request.receive

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_big
        return message

    try:
        return await Request(request.scope, limited).form(max_files=2, max_fields=1000, max_part_size=limit)
    except MultiPartException:
        raise too_big from None


def page(
    roles: Iterable[Role] | None = MANAGERS, *, form_limit: int = FORM_LIMIT
) -> Callable[[Endpoint], Callable[[Request], Awaitable[Response]]]:
    """Wrap a page: `roles=None` for public pages (sign-in), else the roles it is for."""
    allowed = None if roles is None else set(roles)

    def wrap(fn: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        @wraps(fn)
        async def endpoint(request: Request) -> Response:
            state: WebState = request.app.state.web
            try:
                return await _serve(fn, request, state, allowed, form_limit)
            except PageError as e:
                return error_page(state, request, e.status, e.key, **e.params)

        return endpoint

    return wrap


async def _serve(
    fn: Endpoint, request: Request, state: WebState, allowed: set[Role] | None, form_limit: int
) -> Response:
    now = state.clock.now()
    form: FormData | None = None
    if request.method == "POST":
        if not _same_origin(request):
            raise PageError(403, "web.csrf")
        form = await _read_form(request, form_limit)
    try:
        return await _serve_form(fn, request, state, allowed, form, now)
    finally:
        if form is not None:
            await form.close()  # uploaded files are spooled to disk: remove them now


async def _serve_form(
    fn: Endpoint,
    request: Request,
    state: WebState,
    allowed: set[Role] | None,
    form: FormData | None,
    now: datetime,
) -> Response:
    session = request.session
    if form is not None:
        given = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
        if not csrf_ok(session, given if isinstance(given, str) else None):
            raise PageError(403, "web.csrf")
    async with state.sessionmaker() as db:
        person, actor = await _signed_in(db, session, state, now)
        if allowed is not None:
            if actor is None:
                return sign_in_redirect(request)
            if not actor.roles() & allowed:
                raise PageError(403, "web.no_access")
        locale = _locale(request, person, state.settings.default_locale)
        ctx = Ctx(request, state, db, now, locale, texts(locale), person, actor, form)
        started = time.perf_counter()
        try:
            response = await fn(ctx)
        except (NotFound, Forbidden) as e:
            await db.rollback()
            if type(e) is Forbidden and e.key != Forbidden.default_key:
                return _refused(ctx, e)  # a rule (e.g. "not your own entry"), not a scope
            raise PageError(404, "web.not_found") from None
        except Refused as e:
            await db.rollback()
            return _refused(ctx, e)
        except BaseException:
            await db.rollback()
            raise
        log.debug("%s %s %.0f ms", request.method, request.url.path, 1000 * (time.perf_counter() - started))
        return response


async def _signed_in(
    db: AsyncSession, session: dict[str, Any], state: WebState, now: datetime
) -> tuple[Person | None, Actor | None]:
    """The person and Actor of the request's session, if it is live on the server (see
    storage.admin_sessions). A session whose person was erased or holds no web role any more is
    ended here, whichever way the role went."""
    token = session.get("sid")
    if not isinstance(token, str):
        return None, None
    pid = await admin_sessions.resume(db, token, now, state.session_life)
    person = await db.get(Person, pid) if pid is not None else None
    actor = None
    if person is not None and person.erased_at is None:
        actor = await load_actor(db, person.id, via="web")
        if not actor.roles() & set(WEB_ROLES):
            await admin_sessions.end_all(db, person.id)
            actor = None
    elif pid is not None:
        await admin_sessions.end_all(db, pid)
    await db.commit()  # the session's last-seen time, or its end
    if actor is None:
        session.pop("sid", None)
        return None, None
    return person, actor


def _refused(ctx: Ctx, e: Refused) -> Response:
    if ctx.request.method == "POST":
        ctx.flash("error", e.key, **e.params)
        return ctx.redirect(ctx.back())
    raise PageError(400, e.key, **e.params)


def http_error_handler(request: Request, exc: Exception) -> Response:
    state: WebState = request.app.state.web
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    key = {404: "web.not_found", 405: "web.not_found", 413: "web.too_big", 403: "web.no_access"}.get(
        status, "error.internal"
    )
    return error_page(state, request, status, key, mb=1)
