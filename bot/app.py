"""Assembling the bot from settings: engine, Bot, Dispatcher with middlewares and routers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.methods.base import Response, TelegramMethod, TelegramType
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.fsm_storage import DbStorage
from bot.gate import Gate, GateState, Limits, LocalState, gate_of, install
from bot.intake import Intake
from bot.middlewares import PersonContext, UpdateGuard
from bot.order import LocalOrder, RedisOrder
from bot.routing import skip_unmatched_routers
from bot.session import BotSession
from config.clock import Clock
from config.settings import Settings
from content.pack import Pack, get_pack
from storage.db import make_engine, make_sessionmaker
from storage.evidence import EvidenceStore

log = logging.getLogger("branchbot")
UNLIMITED = 1_000_000.0  # messages per second: the gate's limits when TELEGRAM_LIMITS is off
NO_LIMITS = Limits(rate=UNLIMITED, per_chat_interval=1 / UNLIMITED, group_per_minute=int(UNLIMITED))


def make_bot(settings: Settings, *, gate: bool = True) -> Bot:
    """The bot's Bot API client. `gate=False` leaves out the gate's waits and retries, for a
    one-shot call that must answer at once (`branchbot check`), not ride out an outage."""
    session = BotSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    bot = Bot(
        settings.require_token(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
    bot.session.middleware(KeepResponseModels())
    if gate:
        install(bot, Gate(make_gate_state(settings, bot.id)))
    return bot


class KeepResponseModels(BaseRequestMiddleware):
    """Keeps the answer model of each Bot API method called (aiogram's `Response[Message]` ...).

    aiogram parses each answer with `Response[method.__returning__]`, a pydantic generic model
    that pydantic caches by weak reference only: once the cyclic garbage collector has run with
    no answer in hand, the next call builds the model class again (its schema and validator: 4 ms
    of CPU for `Response[Message]` on an idle machine; under load in the throughput benchmark,
    5% of the event loop's samples). One strong reference per method's return type ends that."""

    def __init__(self) -> None:
        self.kept: dict[Any, type[Response[Any]]] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self.kept:
            self.kept[returning] = Response[returning]  # type: ignore[valid-type]
        return await make_request(bot, method)


def make_gate_state(settings: Settings, bot_id: int) -> GateState:
    """Telegram's limits for every call of the bot: shared by all its processes through Redis
    when there is one, else through PostgreSQL; with SQLite, kept in this process (SQLite means
    one process: its one writer would not take several processes' sends anyway)."""
    if not settings.telegram_limits:  # nothing to pace, so nothing to share either
        return LocalState(NO_LIMITS)
    if settings.redis_url:
        from bot.gate.shared import RedisState

        return RedisState(settings.redis_url, bot_id, secret=_chat_key_secret(settings))
    if settings.database_url.startswith("postgresql"):
        from bot.gate.dbstate import DbState

        return DbState(settings.database_url, bot_id, secret=_chat_key_secret(settings))
    return LocalState()


def _chat_key_secret(settings: Settings) -> bytes:
    """The key that hashes chat ids in the shared gate's windows: the bot's token, which every
    process of the bot has and nobody else does."""
    return settings.require_token().encode()


def make_order(settings: Settings, bot_id: int) -> LocalOrder | RedisOrder:
    """Who keeps the updates of a chat one at a time and in order: this process when it polls
    (one process polls) or has no Redis; Redis when webhook processes may be several."""
    if settings.webhook_url and settings.redis_url:
        return RedisOrder(settings.redis_url, bot_id)
    return LocalOrder()


def make_fsm_storage(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> BaseStorage:
    if settings.redis_url:
        from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage

        return RedisStorage.from_url(
            settings.redis_url, key_builder=DefaultKeyBuilder(with_bot_id=True, with_destiny=True)
        )
    return DbStorage(sessionmaker)


def make_dispatcher(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: Clock,
    pack: Pack,
    storage: BaseStorage | None = None,
    **workflow: Any,
) -> Dispatcher:
    from handlers import routers
    from handlers.service_log import is_quick_log

    # FSM is wired by hand so that it runs inside UpdateGuard and shares the update's session.
    dp = Dispatcher(storage=storage or make_fsm_storage(settings, sessionmaker), disable_fsm=True, **workflow)
    person = PersonContext(settings, clock, pack, dp.fsm, checks_day_room=is_quick_log)
    dp.update.outer_middleware(UpdateGuard(sessionmaker, person))
    dp.update.outer_middleware(person)
    dp.update.outer_middleware(dp.fsm)
    dp["sessionmaker"] = sessionmaker
    dp["evidence"] = EvidenceStore(settings.evidence_dir)
    for r in routers():
        dp.include_router(r)
    filters_on_the_loop(dp)
    skip_unmatched_routers(dp)
    return dp


def filters_on_the_loop(router: Router) -> int:
    """Run the routers' plain (non-async) filters on the event loop; returns how many.

    aiogram runs a filter that is not a coroutine function in a thread (`asyncio.to_thread`),
    and our plain filters are a conversation `State` (`@router.message(LogWizard.day, ...)`) and
    magic filters (`F.text`, `~F.text.startswith("/")`): pure checks of the update taking
    microseconds. An update is checked against the handlers before its own, so each such filter
    on the way cost a thread hop (a pool submit, a wake-up of the loop, a GIL hand-over): one for
    a `/log` line, more for a wizard's typed answer. Wrapped in a coroutine, aiogram awaits them
    in place, with the same arguments."""
    count = 0
    for observer in router.observers.values():
        # The router-wide filters (`router.message.filter(...)`), then each handler's.
        for handler in (observer._handler, *observer.handlers):
            for f in handler.filters or ():
                if not f.awaitable:
                    f.callback, f.awaitable = _on_loop(f.callback), True
                    count += 1
    for sub in router.sub_routers:
        count += filters_on_the_loop(sub)
    return count


def _on_loop(check: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **kwargs)

    call.plain = check  # type: ignore[attr-defined]  # for bot.routing, which reads a State ahead
    return call


@dataclass
class BotApp:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bot: Bot
    dp: Dispatcher
    clock: Clock
    pack: Pack
    intake: Intake
    owns_engine: bool = True
    extras: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        self.intake.stop()
        await self.bot.session.close()
        await gate_of(self.bot).state.close()
        await self.dp.fsm.storage.close()
        await self.intake.order.close()
        if self.owns_engine:
            await self.engine.dispose()


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    engine: AsyncEngine | None = None,
    max_in_flight: int | None = None,
) -> BotApp:
    clock = clock or Clock()
    pack = get_pack(settings.content_pack)
    owns = engine is None
    engine = engine or make_engine(settings.database_url)
    sm = make_sessionmaker(engine)
    bot = make_bot(settings)
    dp = make_dispatcher(settings, sm, clock, pack)
    in_flight = max_in_flight or settings.updates_in_flight
    intake = Intake(dp, bot, sm, max_in_flight=in_flight, order=make_order(settings, bot.id))
    return BotApp(settings, engine, sm, bot, dp, clock, pack, intake, owns_engine=owns)
