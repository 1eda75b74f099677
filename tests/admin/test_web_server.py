"""Serving the admin web in the caller's event loop: it starts, answers, stops when told, and a
taken port is an error of its own rather than the whole process exiting."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from admin.web import create_app, serve_admin, sign_in_url
from admin.web.server import AdminStartError, make_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(condition, timeout: float = 10) -> None:
    async def wait() -> None:
        # uvicorn offers a flag, not an event: poll it, within the timeout below.
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


async def test_serves_until_the_stop_event(sessionmaker, web_settings, clean_db) -> None:
    port = _free_port()
    app = create_app(sessionmaker, web_settings)
    server = make_server(app, "127.0.0.1", port)
    stop = asyncio.Event()
    task = asyncio.create_task(serve_admin(app, "127.0.0.1", port, stop, server=server))
    await _until(lambda: server.started)
    async with httpx.AsyncClient() as c:
        r = await c.get(f"http://127.0.0.1:{port}/login")
    assert r.status_code == 200 and "登录管理后台" in r.text
    stop.set()
    await asyncio.wait_for(task, 10)
    with socket.socket() as s:  # the port is free again
        s.bind(("127.0.0.1", port))


async def test_cancelling_stops_it_cleanly(sessionmaker, web_settings, clean_db) -> None:
    port = _free_port()
    app = create_app(sessionmaker, web_settings)
    server = make_server(app, "127.0.0.1", port)
    task = asyncio.create_task(serve_admin(app, "127.0.0.1", port, server=server))
    await _until(lambda: server.started)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert server.should_exit


async def test_a_taken_port_is_reported_not_fatal(sessionmaker, web_settings, clean_db) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(sessionmaker, web_settings)
        with pytest.raises(AdminStartError, match=str(port)):
            await asyncio.wait_for(serve_admin(app, "127.0.0.1", port), 10)


def test_sign_in_links_use_the_public_address(web_settings) -> None:
    assert sign_in_url(web_settings, "tok") == "http://127.0.0.1:8080/login/link/tok"
    public = web_settings.model_copy(update={"admin_public_url": "https://admin.example.org/"})
    assert sign_in_url(public, "tok") == "https://admin.example.org/login/link/tok"


async def test_without_a_secret_it_warns_and_makes_one(sessionmaker, web_settings, clean_db, caplog) -> None:
    app = create_app(sessionmaker, web_settings.model_copy(update={"admin_secret": ""}))
    assert app is not None
    assert "ADMIN_SECRET is empty" in caplog.text
