"""Webhook delivery: secret header, order, retries with back-off until acknowledged, errors
in getWebhookInfo, 409 for getUpdates, method calls in the webhook's answer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.exceptions import TelegramConflictError
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from emulator import Emulator, SimBot, SimUser
from emulator.webhook import SECRET_HEADER


class Receiver:
    """A webhook endpoint that answers the statuses it is told to, then 200."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.reply: dict[str, Any] | None = None
        self.seen: list[tuple[dict[str, Any], str | None]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((await request.json(), request.headers.get(SECRET_HEADER)))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200 and self.reply is not None:
            return web.json_response(self.reply)
        return web.Response(status=status)


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    runner, port = await serve(app)
    r.url = f"http://127.0.0.1:{port}/hook"
    yield r
    await runner.cleanup()


async def delivered(emu: Emulator, sim_bot: SimBot, n: int) -> None:
    await emu.wait_for(lambda: sum(a.status == 200 for a in sim_bot.webhook_attempts) >= n, timeout=5)


async def test_updates_are_pushed_with_the_secret_header(
    bot: Bot, emu: Emulator, sim_bot: SimBot, user: SimUser, receiver: Receiver
):
    assert await bot.set_webhook(receiver.url, secret_token="s3cr3t-Token_1")
    sent = await emu.send_text(user, "/start")
    await delivered(emu, sim_bot, 1)
    assert receiver.seen == [(sent, "s3cr3t-Token_1")]
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count, info.last_error_message) == (receiver.url, 0, None)


async def test_a_failed_push_is_retried_until_acknowledged_in_order(
    bot: Bot, emu: Emulator, sim_bot: SimBot, user: SimUser, receiver: Receiver
):
    receiver.statuses = [500, 500]
    await bot.set_webhook(receiver.url, max_connections=1)  # one at a time: in order
    ids = [(await emu.send_text(user, f"m{i}"))["update_id"] for i in range(3)]
    await delivered(emu, sim_bot, 3)
    assert [a.status for a in sim_bot.webhook_attempts] == [500, 500, 200, 200, 200]
    assert [a.update_id for a in sim_bot.webhook_attempts] == [ids[0]] * 3 + ids[1:]
    assert [u["update_id"] for u, _ in receiver.seen] == [ids[0]] * 3 + ids[1:]
    info = await bot.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert info.pending_update_count == 0


async def test_updates_go_concurrently_up_to_max_connections(
    bot: Bot, emu: Emulator, sim_bot: SimBot, user: SimUser
):
    """Telegram keeps up to max_connections requests open at once: a slow update does not hold
    up the next ones."""
    open_now = 0
    most = 0
    release = asyncio.Event()
    three_open = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        if open_now == 3:
            three_open.set()
        try:
            await release.wait()
        finally:
            open_now -= 1
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner, port = await serve(app)
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", max_connections=3)
        for i in range(5):
            await emu.send_text(user, f"m{i}")
        await asyncio.wait_for(three_open.wait(), 5)
        assert sim_bot.webhook_attempts == []  # none answered yet: all three still open
        release.set()
        await delivered(emu, sim_bot, 5)
        assert most == 3  # three at once, never more
        assert (await bot.get_webhook_info()).pending_update_count == 0
    finally:
        release.set()
        await runner.cleanup()


async def test_unreachable_webhook_keeps_updates_pending(
    bot: Bot, emu: Emulator, sim_bot: SimBot, user: SimUser
):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    await bot.set_webhook(f"http://127.0.0.1:{port}/hook")
    await emu.send_text(user, "hi")
    await emu.wait_for(lambda: len(sim_bot.webhook_attempts) >= 2, timeout=5)
    assert {(a.status, a.error) for a in sim_bot.webhook_attempts} == {(None, "Connection refused")}
    info = await bot.get_webhook_info()
    assert (info.pending_update_count, info.last_error_message) == (1, "Connection refused")


async def test_get_updates_while_a_webhook_is_set_is_a_conflict(
    bot: Bot, emu: Emulator, user: SimUser, receiver: Receiver
):
    receiver.statuses = [500] * 1000  # keep the update pending
    await bot.set_webhook(receiver.url)
    with pytest.raises(TelegramConflictError, match="can't use getUpdates method while webhook is active"):
        await bot.get_updates(timeout=0)
    await emu.send_text(user, "kept")
    await bot.delete_webhook()
    assert [u.message.text for u in await bot.get_updates(timeout=0)] == ["kept"]
    await bot.set_webhook(receiver.url, drop_pending_updates=True)
    await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates(timeout=0) == []


async def test_set_webhook_ends_a_waiting_long_poll(bot: Bot, emu: Emulator, receiver: Receiver):
    other = Bot(bot.token, session=bot.session)
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await emu.wait_for(lambda: emu.bot().waiting_polls == 1)
    await other.set_webhook(receiver.url)
    with pytest.raises(TelegramConflictError):
        await asyncio.wait_for(poll, 5)


async def test_a_method_call_in_the_webhook_answer_is_executed(
    bot: Bot, emu: Emulator, sim_bot: SimBot, user: SimUser, receiver: Receiver
):
    receiver.reply = {"method": "sendMessage", "chat_id": user.id, "text": "pong"}
    await bot.set_webhook(receiver.url)
    await emu.send_text(user, "ping")
    assert (await emu.next_message(user, timeout=5)).text == "pong"


async def test_an_aiogram_webhook_app_round_trip(bot: Bot, emu: Emulator, sim_bot: SimBot, user: SimUser):
    dp = Dispatcher()

    @dp.message(F.text == "/start")
    async def start(message: Message) -> Any:
        return message.answer("欢迎")  # answered in the webhook response (multipart)

    app = web.Application()
    SimpleRequestHandler(dp, bot, secret_token="tok", handle_in_background=False).register(app, path="/wh")
    runner, port = await serve(app)
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/wh", secret_token="tok")
        update = await emu.send_text(user, "/start")
        assert (await emu.next_message(user, timeout=5)).text == "欢迎"
        assert [a.update_id for a in sim_bot.webhook_attempts] == [update["update_id"]]
        assert emu.violations == []
    finally:
        await bot.delete_webhook()
        await runner.cleanup()


async def test_wrong_secret_is_refused_by_aiogram_and_retried(
    bot: Bot, emu: Emulator, sim_bot: SimBot, user: SimUser
):
    dp = Dispatcher()
    app = web.Application()
    SimpleRequestHandler(dp, bot, secret_token="right").register(app, path="/wh")
    runner, port = await serve(app)
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/wh", secret_token="wrong")
        await emu.send_text(user, "x")
        await emu.wait_for(lambda: len(sim_bot.webhook_attempts) >= 2, timeout=5)
        assert {a.status for a in sim_bot.webhook_attempts} == {401}
        assert len(emu.pending_updates()) == 1  # still pending
    finally:
        await bot.delete_webhook()
        await runner.cleanup()


async def test_a_webhook_url_must_be_http(bot: Bot, emu: Emulator, http):
    from tests.emulator.conftest import raw_call

    status, body = await raw_call(http, emu, "setWebhook", url="ftp://example.org/hook")
    assert status == 400 and "HTTPS URL must be provided" in body["description"]
    assert emu.violations[-1].method == "setWebhook"
