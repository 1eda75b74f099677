"""A TCP proxy the test controls, to cut the bot off from PostgreSQL and let it back."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """To one target; given `more`, each new connection goes to the next target in turn (as
    nginx's upstream does), counted in `connections`."""

    def __init__(self, target_host: str, target_port: int, more: tuple[tuple[str, int], ...] = ()) -> None:
        self.target = (target_host, target_port)
        self.targets = [self.target, *more]
        self.connections: dict[tuple[str, int], int] = dict.fromkeys(self.targets, 0)
        self._turn = 0
        self.port = 0
        self.cut = False
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.disconnect_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for t in list(self._links):
            t.cancel()

    def cut_off(self) -> None:
        """Drop every open connection and refuse new ones until `restore`."""
        self.cut = True
        self.disconnect_all()

    def restore(self) -> None:
        self.cut = False

    def disconnect_all(self) -> None:
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            self.refused += 1
            writer.transport.abort()
            return
        target = self.targets[self._turn % len(self.targets)]
        self._turn += 1
        self.connections[target] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._links.discard(task)
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
