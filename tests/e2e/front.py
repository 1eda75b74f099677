"""Telegram's front end, played in front of the emulator, so a test can take Telegram down.

Up, it passes every request to the emulator and its answer back. In an outage it first answers
every request "502 Bad Gateway" with an HTML page (what Telegram's nginx does when its Bot API
servers are gone; nothing reaches the emulator), then stops listening altogether (connections
are refused: Telegram does not answer at all), then comes back. It counts what it refused.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Callable
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web

BAD_GATEWAY = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"  # noqa: E501

Trigger = Callable[[str, dict[str, str]], bool]


class TelegramFront:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = 0
        self.mode = "up"  # up | 502 | down
        self.refused: Counter[str] = Counter()  # Bot API method -> 502s answered
        self.refused_at: list[float] = []  # loop times of the 502s
        self.began: float | None = None
        self.ended: float | None = None
        self.restored = asyncio.Event()
        self._trigger: Trigger | None = None
        self._plan: tuple[float, float] = (0.0, 0.0)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._http: aiohttp.ClientSession | None = None
        self._outage: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> TelegramFront:
        self._http = aiohttp.ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await self._listen()
        return self

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        if not self.port:
            server = self._site._server
            assert isinstance(server, asyncio.Server)
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._outage is not None:
            self._outage.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    def outage_when(self, trigger: Trigger, *, bad_gateway: float, silent: float) -> None:
        """Go down at the first request `trigger(method, form)` picks (that one is refused too):
        `bad_gateway` seconds of 502s, then `silent` seconds of refused connections."""
        self._trigger = trigger
        self._plan = (bad_gateway, silent)

    async def _run_outage(self) -> None:
        loop = asyncio.get_running_loop()
        self.began = loop.time()
        bad_gateway, silent = self._plan
        self.mode = "502"
        await asyncio.sleep(bad_gateway)  # the outage's own length, not a wait for something
        self.mode = "down"
        assert self._site is not None and self._runner is not None and self._runner.server is not None
        await self._site.stop()  # no new connections...
        for conn in list(self._runner.server.connections):
            conn.force_close()  # ...and the idle kept-alive ones are closed
        await asyncio.sleep(silent)
        await self._listen()
        self.mode = "up"
        self.ended = loop.time()
        self.restored.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.path.rsplit("/", 1)[-1]
        body = await request.read()
        if self.mode == "up" and self._trigger is not None:
            form = await _form(request, body)
            if self._trigger(method, form):
                self._trigger = None
                self.mode = "502"
                self._outage = asyncio.create_task(self._run_outage())
        if self.mode != "up":
            self.refused[method] += 1
            self.refused_at.append(asyncio.get_running_loop().time())
            return web.Response(status=502, text=BAD_GATEWAY, content_type="text/html")
        assert self._http is not None
        async with self._http.request(
            request.method,
            f"{self.upstream}{request.path_qs}",
            data=body,
            headers={k: v for k, v in request.headers.items() if k.lower() in ("content-type",)},
            timeout=aiohttp.ClientTimeout(total=None),
        ) as up:
            payload = await up.read()
            return web.Response(status=up.status, body=payload, content_type=up.content_type)


_FIELD = re.compile(rb'name="([^"]+)"\r\n(?:[^\r\n]+\r\n)*\r\n(.*?)\r\n--', re.DOTALL)


async def _form(request: web.Request, body: bytes) -> dict[str, str]:
    """The call's text parameters, as far as a test's trigger needs them."""
    if request.content_type == "application/json":
        return {k: str(v) for k, v in json.loads(body or b"{}").items()}
    if request.content_type == "application/x-www-form-urlencoded":
        return {k: v[0] for k, v in parse_qs(body.decode()).items()}
    if request.content_type == "multipart/form-data":
        return {k.decode(): v.decode(errors="replace") for k, v in _FIELD.findall(body)}
    return {}
