"""The web's defences that are not about roles: secure headers on every response, the CSRF token
of a session, and the rate limit on sign-in attempts."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import MutableMapping
from typing import Any

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Chart images are SVG documents with their own inline styles and no script.
IMAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


class SecureHeaders:
    """Content-Security-Policy (self only), X-Frame-Options DENY, nosniff, same-origin referrers,
    and no caching of pages (they hold personal data); static files may be cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                is_svg = h.get("content-type", "").startswith("image/svg")
                h["Content-Security-Policy"] = IMAGE_CSP if is_svg else CSP
                h["X-Frame-Options"] = "DENY"
                h["X-Content-Type-Options"] = "nosniff"
                h["Referrer-Policy"] = "same-origin"
                h["Cross-Origin-Opener-Policy"] = "same-origin"
                h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                if not path.startswith("/static/") and "cache-control" not in h:
                    h["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ---- CSRF ----------------------------------------------------------------------------------

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's token, made on first use (also for a visitor not signed in yet)."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 20:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok(session: MutableMapping[str, Any], given: str | None) -> bool:
    expected = session.get("csrf")
    return isinstance(expected, str) and bool(given) and hmac.compare_digest(expected, str(given))


# ---- sign-in attempts ----------------------------------------------------------------------


class SignInLimiter:
    """Failed sign-in attempts, counted per client address and per username in a moving window.

    `limits` (moving window, in memory): one process serves the web, so memory is the right store;
    a restart forgets the counts, which only helps someone who can restart the server anyway.
    """

    def __init__(self, per_ip: str = "20/15 minutes", per_user: str = "5/15 minutes") -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_ip = parse(per_ip)
        self._per_user = parse(per_user)

    def _items(self, ip: str, username: str) -> list[tuple[RateLimitItem, str]]:
        return [(self._per_ip, f"ip:{ip}"), (self._per_user, f"user:{username.strip().lower()[:64]}")]

    def allowed(self, ip: str, username: str) -> bool:
        return all(self._limiter.test(item, "sign-in", key) for item, key in self._items(ip, username))

    def failed(self, ip: str, username: str) -> None:
        for item, key in self._items(ip, username):
            self._limiter.hit(item, "sign-in", key)
