"""Outer middlewares: one database session per update, de-duplication, the current person,
their role and locale, and the one place where failures become replies.

Order (outermost first): aiogram's errors and user-context middlewares, then `UpdateGuard`
(session, de-duplication, failure handling), then `PersonContext` (which reads the
conversation state along with the person), then aiogram's FSM middleware (so conversation
state reads and writes go through the update's session).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, date, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import BaseMiddleware, Bot
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.types import TelegramObject, Update, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.fsm_storage import DbStorage, update_session
from bot.gate import UpdateHook, before_wait
from bot.transient import DatabaseUnavailable, is_transient_db_error
from config.clock import Clock
from config.settings import Settings
from content.i18n import Texts, normalize_locale, texts
from content.pack import Pack
from storage import outbox, people
from storage.db import COMMITTED, is_sqlite
from storage.errors import Refused
from storage.updates import claim_update, claim_update_with_person

log = logging.getLogger("branchbot.updates")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def _where(exc: BaseException) -> str:
    """Where it failed, without the message: exception texts can carry SQL parameters."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/site-packages/" not in f.filename] or frames
    return " <- ".join(
        f"{f.filename.rsplit('/', 2)[-2:][-1]}:{f.lineno}:{f.name}" for f in reversed(ours[-4:])
    )


# In the update's data: the person read along with the claim (PostgreSQL), for `PersonContext`.
CLAIMED_PERSON = "claimed_person"


class UpdateGuard(BaseMiddleware):
    """One session per update; skip updates already handled; turn failures into replies.

    With `people` (the `PersonContext` that runs next) on PostgreSQL, the claim and the person's
    query are one statement (`storage.updates.claim_update_with_person`), one round trip less."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], people: PersonContext | None = None
    ) -> None:
        self.sessionmaker = sessionmaker
        self.people = people

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        bot: Bot = data["bot"]
        async with self.sessionmaker() as s:
            with update_session(s):
                return await self._guarded(handler, event, data, s, bot)

    async def _guarded(
        self, handler: Handler, update: Update, data: dict[str, Any], s: AsyncSession, bot: Bot
    ) -> Any:
        try:
            who = self.people.who(data) if self.people is not None and not is_sqlite(s) else None
            if who is not None:
                assert self.people is not None
                days = self.people.days_ahead(update)
                taken, found = await claim_update_with_person(s, bot.id, update.update_id, *who, days)
                data[CLAIMED_PERSON] = found
            else:
                taken = await claim_update(s, bot.id, update.update_id)
            if not taken:
                await s.rollback()
                log.info("update %s already handled: skipped", update.update_id)
                return None
        except Exception as e:
            await _rollback_quietly(s)
            if is_transient_db_error(e):
                raise DatabaseUnavailable(type(e).__name__) from e
            raise
        data["session"] = s

        async def commit_before_talking() -> None:
            # Before each of the update's calls to Telegram (bot/gate): what the handler did so far
            # (the processed-update row, a conversation's step, a handler's writes) is committed,
            # so no reply tells of what is not stored, and no lock is held while Telegram answers.
            # A crash after it loses that reply, as after any commit. If it fails, the call is not
            # made: the failure goes up as the handler's (an outage: the update is tried again).
            await s.commit()

        hook = UpdateHook(commit_before_talking)
        wait_token = before_wait.set(hook)
        try:
            result = await handler(update, data)
            await s.commit()
            self._wake_outbox(s, data)
            return result
        except Refused as e:
            # A rule said no: nothing the handler wrote since it last talked to Telegram stays
            # (handlers refuse before they talk), and the person is told why.
            await s.rollback()
            hook.drop()  # the apology commits nothing: a failed commit must not silence it
            await self._reply(update, data, e.key, e.params)
            await self._mark_done(bot, update)
            return None
        except Exception as e:
            await _rollback_quietly(s)
            hook.drop()  # what follows commits nothing: a failed commit must not silence a reply
            if is_transient_db_error(e):
                if not s.info.get(COMMITTED):
                    log.warning(
                        "update %s: database unavailable (%s); will retry", update.update_id, type(e).__name__
                    )
                    raise DatabaseUnavailable(type(e).__name__) from e
                # It committed already (the hook before a call to Telegram, or the handler), and
                # its claim with it: a retry would skip it as handled. So the person is told that
                # what they just did may not have been saved in full, to look and redo it if need be.
                log.warning(
                    "update %s: database unavailable (%s) after it committed; not retried",
                    update.update_id,
                    type(e).__name__,
                )
                await self._reply(update, data, "error.unavailable", {})
                return None
            log.error("update %s failed: %s at %s", update.update_id, type(e).__name__, _where(e))
            await self._reply(update, data, "error.internal", {})
            await self._mark_done(bot, update)
            return None
        finally:
            hook.drop()
            before_wait.reset(wait_token)

    @staticmethod
    def _wake_outbox(s: AsyncSession, data: dict[str, Any]) -> None:
        """Messages this update queued for others go out now, not at the worker's next poll."""
        wake = data.get("wake_outbox")
        if s.info.pop(outbox.ENQUEUED, False) and wake is not None:
            wake()

    async def _mark_done(self, bot: Bot, update: Update) -> None:
        """Record a failed or refused update as handled, so a redelivery does not repeat the reply."""
        try:
            async with self.sessionmaker() as s:
                await claim_update(s, bot.id, update.update_id)
                await s.commit()
        except Exception as e:
            if is_transient_db_error(e):
                raise DatabaseUnavailable(type(e).__name__) from e
            raise

    async def _reply(self, update: Update, data: dict[str, Any], key: str, params: dict[str, Any]) -> None:
        _: Texts = data.get("_") or texts(_guess_locale(data))
        text = _(key, **params)
        try:
            if update.callback_query is not None:
                # False: the press was answered already (a handler answers it before its work) or
                # too long ago, so the alert was not shown (bot/gate): the text goes to the chat.
                query = update.callback_query
                if not await query.answer(text, show_alert=True):
                    # The pressed message's chat, even one too old to read (InaccessibleMessage).
                    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
                    bot: Bot = data["bot"]
                    await bot.send_message(chat_id, text)
            elif update.message is not None:
                await update.message.answer(text)
        except Exception as e:  # the apology itself must never take the bot down
            log.warning("update %s: could not send the reply: %s", update.update_id, type(e).__name__)


async def _rollback_quietly(s: AsyncSession) -> None:
    try:
        await s.rollback()
    except Exception as e:
        log.debug("rollback failed: %s", type(e).__name__)


def _guess_locale(data: dict[str, Any]) -> str | None:
    user: User | None = data.get("event_from_user")
    return user.language_code if user else None


class PersonContext(BaseMiddleware):
    """Who is talking: the joined person (a `PersonView`, or None), their grants, locale, texts
    and today's date."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        pack: Pack,
        fsm: FSMContextMiddleware | None = None,
        checks_day_room: Callable[[Update], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.pack = pack
        self.checks_day_room = checks_day_room
        # Runs before the FSM middleware: with the state in the database, the conversation is
        # read in the person's query and the FSM middleware finds it there.
        self.fsm = fsm if fsm is not None and isinstance(fsm.storage, DbStorage) else None

    def who(self, data: dict[str, Any]) -> tuple[int, str | None] | None:
        """The Telegram user writing and the key of their conversation's state (None without
        the database's FSM storage); None for an update from nobody."""
        user: User | None = data.get("event_from_user")
        if user is None:
            return None
        state_key = None
        if self.fsm is not None and (ctx := self.fsm.resolve_event_context(data["bot"], data)) is not None:
            state_key = self.fsm.storage.key_of(ctx.key)  # type: ignore[attr-defined]
        return user.id, state_key

    def days_ahead(self, update: TelegramObject) -> tuple[date, date] | None:
        """The days whose totals the person's query (with the claim on PostgreSQL) reads along
        when the update's handler will check a day's room first thing (`checks_day_room`): today
        and yesterday wherever the person is, which is two days before to one after UTC's date.
        None otherwise."""
        if self.checks_day_room is None or not isinstance(update, Update) or not self.checks_day_room(update):
            return None
        today = self.clock.now().astimezone(UTC).date()
        return today - _TWO_DAYS, today + _ONE_DAY

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        s: AsyncSession = data["session"]
        user: User | None = data.get("event_from_user")
        # One round trip for the person, their grants and their branch's time zone, as plain
        # rows (this runs for every update; ORM objects cost more than the query); none on
        # PostgreSQL, where the guard read them along with the update's claim.
        found: people.ChatPerson | None = None
        who = self.who(data)
        if who is not None:
            telegram_id, state_key = who
            if CLAIMED_PERSON in data:
                found = data.pop(CLAIMED_PERSON)
            else:
                found = await people.chat_person(
                    s, telegram_id, state_key=state_key, days=self.days_ahead(event)
                )
            if found is not None and state_key is not None:
                DbStorage.remember(s, state_key, found.conversation)
        person = found.person if found is not None else None
        actor = found.actor if found is not None else None
        locale = normalize_locale(
            (person.locale if person else None) or (user.language_code if user else None),
            self.settings.default_locale,
        )
        if person is not None and user is not None and user.language_code and not person.locale:
            locale = normalize_locale(user.language_code, self.settings.default_locale)
        tz = self.settings.tz
        if found is not None and found.timezone:
            tz = _zone(found.timezone)
        now = self.clock.now()
        if person is not None:
            await people.seen(s, person, now)
        data.update(
            person=person,
            actor=actor,
            locale=locale,
            _=texts(locale),
            now=now,
            today=now.astimezone(tz).date(),
            tz=tz,
            pack=self.pack,
            settings=self.settings,
            clock=self.clock,
        )
        return await handler(event, data)


_ONE_DAY, _TWO_DAYS = timedelta(days=1), timedelta(days=2)


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
