"""The HTTP face of the emulator: Bot API calls at `/bot<token>/<method>` (GET or POST, any
parameter encoding), file downloads at `/file/bot<token>/<file_path>`, and the control API
under `/_emu/` (control.py). `Emulator` is the engine (core.py) served over HTTP."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulator.control import add_control_routes
from emulator.core import Engine
from emulator.errors import violation
from emulator.keys import EMULATOR
from emulator.wire import BadBody, json_dumps, read_params

__all__ = ["EMULATOR", "Emulator", "make_app"]


class Emulator(Engine):
    """A local Telegram Bot API: the engine plus its HTTP server's life."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runner: web.AppRunner | None = None

    async def start(self) -> Emulator:
        self.closing = False
        self._runner = web.AppRunner(make_app(self), handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        await self.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def make_app(emu: Engine) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)  # Bot API uploads go up to 50 MB
    app[EMULATOR] = emu
    app.router.add_route("*", "/bot{token}/{method}", handle_api)
    app.router.add_get("/file/bot{token}/{path:.+}", handle_file)
    add_control_routes(app)
    return app


async def handle_api(request: web.Request) -> web.StreamResponse:
    emu = request.app[EMULATOR]
    token, method = request.match_info["token"], request.match_info["method"]
    try:
        raw, files = await read_params(request)
    except BadBody as e:
        status, body = emu.refuse(token, method, violation("can't parse request body", str(e)))
        return web.json_response(body, status=status, dumps=json_dumps)
    status, payload = await emu.execute(token, method, raw, files)
    if isinstance(payload, str):
        return web.Response(status=status, text=payload, content_type="text/html")
    return web.json_response(payload, status=status, dumps=json_dumps)


async def handle_file(request: web.Request) -> web.StreamResponse:
    emu = request.app[EMULATOR]
    stored = emu.files.by_path.get(request.match_info["path"])
    if emu.bot_for_token(request.match_info["token"]) is None or stored is None:
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
    return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")
