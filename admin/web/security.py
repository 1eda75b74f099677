"""The web's defences that are not about roles: secure headers on every response, the CSRF token
of a session, and the rate limit on sign-in attempts."""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, MutableMapping
from contextlib import suppress
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

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


@dataclass(frozen=True, slots=True)
class Reservation:
    """One sign-in attempt, counted before the password is checked."""

    keys: tuple[str, ...]
    at: float


class SignInLimiter:
    """Sign-in attempts per username and per client address, counted *before* the password is
    checked, so that concurrent attempts cannot all slip past the count while Argon2 runs.

    A few attempts per key are free in a window; after that each attempt must wait a delay that
    doubles with every further attempt (1 s, 2 s, 4 s, … up to `max_delay`). A stranger can thus
    slow sign-in for a username down, but never lock its owner out for long. A success clears the
    username's count. In memory: one process serves the web, and a restart only forgets counts.
    """

    def __init__(
        self,
        *,
        free_per_user: int = 5,
        free_per_ip: int = 20,
        window: float = 15 * 60,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = {"user": free_per_user, "ip": free_per_ip}
        self.window, self.base_delay, self.max_delay = window, base_delay, max_delay
        self.max_keys = max_keys
        self.clock = clock
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def _keys(ip: str, username: str) -> tuple[str, ...]:
        return (f"ip:{ip}", f"user:{username.strip().lower()[:64]}")

    def _delay(self, key: str, count: int) -> float:
        free = self.free[key.split(":", 1)[0]]
        if count < free:
            return 0.0
        return min(self.max_delay, self.base_delay * 2.0 ** (count - free))

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._attempts.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def reserve(self, ip: str, username: str) -> Reservation | float:
        """Count an attempt now, or say how many seconds to wait before one is allowed.

        No await in here: in one event loop, check and count are one step."""
        now = self.clock()
        keys = self._keys(ip, username)
        wait = 0.0
        for key in keys:
            q = self._recent(key, now)
            if q:
                wait = max(wait, q[-1] + self._delay(key, len(q)) - now)
        if wait > 0:
            return wait
        for key in keys:
            q = self._attempts.pop(key, None) or deque()
            q.append(now)
            self._attempts[key] = q  # most recently used last
        while len(self._attempts) > self.max_keys:
            self._attempts.popitem(last=False)
        return Reservation(keys, now)

    def succeeded(self, r: Reservation) -> None:
        """The password was right: the username starts afresh; the address keeps its other attempts."""
        for key in r.keys:
            q = self._attempts.get(key)
            if q is None:
                continue
            if key.startswith("user:"):
                del self._attempts[key]
            else:
                with suppress(ValueError):
                    q.remove(r.at)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Iterable[IPv4Network | IPv6Network]
) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
    address in X-Forwarded-For that is not itself a trusted proxy (the rightmost ones were added
    by our proxies; the leftmost ones are the client's to invent)."""
    nets = tuple(trusted)

    def is_trusted(addr: str) -> bool:
        try:
            ip = ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in nets)

    if not peer:
        return "unknown"
    if not nets or not is_trusted(peer) or not forwarded_for:
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            try:
                return str(ip_address(hop))
            except ValueError:
                return peer  # a garbled header: count it against the proxy's own address
    return peer
