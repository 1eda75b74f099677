"""Running the admin web with uvicorn inside the current event loop (the bot shares it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn
from starlette.applications import Starlette

from admin.web.app import public_base
from config.settings import Settings

log = logging.getLogger("branchbot.admin")


def sign_in_url(settings: Settings, token: str) -> str:
    """The address of a one-time sign-in link (a token from storage.web_auth.create_sign_in_link)."""
    return f"{public_base(settings)}/login/link/{token}"


def make_server(app: Starlette, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,  # request lines carry ids and names in queries: no personal data in logs
        lifespan="off",
        proxy_headers=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    # The process that embeds us (the bot) owns the signals: it stops us by cancelling.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    return server


class AdminStartError(RuntimeError):
    """The admin web could not start (typically: the port is taken)."""


async def _serve(server: uvicorn.Server, host: str, port: int) -> None:
    try:
        await server.serve()
    except SystemExit:
        # uvicorn exits the process when it cannot bind; here that would take the bot down too.
        raise AdminStartError(f"the admin web could not listen on {host}:{port}") from None


async def serve_admin(
    app: Starlette,
    host: str,
    port: int,
    stop: asyncio.Event | None = None,
    *,
    server: uvicorn.Server | None = None,
) -> None:
    """Serve until `stop` is set or the task is cancelled, then finish the requests in flight and
    close the port.

    Runs in the caller's loop: `make run` and `make demo` start the bot and the admin web side by
    side in one process. Pass `server` (from `make_server`) to watch `server.started`."""
    server = server or make_server(app, host, port)
    serving = asyncio.ensure_future(_serve(server, host, port))
    stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        waiting = {serving} if stopper is None else {serving, stopper}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        server.should_exit = True
        await serving
        raise
    finally:
        if stopper is not None:
            stopper.cancel()
    server.should_exit = True
    await serving  # re-raises if the server failed (e.g. the port is taken)
