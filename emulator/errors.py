"""Errors the emulator answers with, worded as Telegram words them.

`ApiError` becomes `{"ok": false, "error_code": N, "description": ...}` with HTTP status N.
An error marked `violation` means the bot did something Telegram's contract forbids (a bug in
the bot); it is recorded in `Emulator.violations`. Everything else is an ordinary Telegram
answer a correct bot must handle (chat not found, message is not modified, blocked, 429, 5xx)
and is recorded in `Emulator.errors`.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self,
        code: int,
        description: str,
        *,
        retry_after: int | None = None,
        violation: str | None = None,
        html: bool = False,
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        # Why this call breaks the Bot API contract; None for an ordinary Telegram error.
        self.violation = violation
        # Answer with an HTML page instead of JSON (what Telegram's front end does on a 502).
        self.html = html

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


class SimError(Exception):
    """A test used the simulation wrongly (pressed a button that does not exist, named an
    unknown user or bot). Raised to the test, never sent over HTTP."""


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def violation(detail: str, reason: str | None = None) -> ApiError:
    """A 400 that also counts as a contract violation; `reason` defaults to the detail."""
    return ApiError(400, f"Bad Request: {detail}", violation=reason or detail)


def forbidden(detail: str) -> ApiError:
    return ApiError(403, f"Forbidden: {detail}")


def conflict(detail: str) -> ApiError:
    return ApiError(409, f"Conflict: {detail}")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def server_error(status: int, *, html: bool = False) -> ApiError:
    text = {
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    return ApiError(status, text.get(status, "Internal Server Error"), html=html)
