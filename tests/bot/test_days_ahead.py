"""PersonContext.days_ahead: the days a quick /log line's person query reads ahead hold that
person's today and yesterday in every time zone, at any hour of UTC's day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiogram.types import Update

from bot.middlewares import PersonContext
from config.clock import FrozenClock
from config.settings import Settings
from content.pack import get_pack

TOKEN = "123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
# The earliest and latest zones there are (UTC-12 and UTC+14), and the pilot's.
ZONES = ["Etc/GMT+12", "Pacific/Kiritimati", "Asia/Shanghai", "UTC"]


def _update(text: str) -> Update:
    chat = {"id": 5, "type": "private"}
    return Update.model_validate(
        {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": chat, "text": text}}
    )


def _context(at: datetime) -> PersonContext:
    settings = Settings(bot_token=TOKEN, telegram_api_url="http://127.0.0.1:1")
    return PersonContext(
        settings, FrozenClock(at), get_pack(), checks_day_room=lambda u: u.message.text.startswith("/log ")
    )


@pytest.mark.parametrize("hour", [0, 11, 23])
@pytest.mark.parametrize("zone", ZONES)
def test_today_and_yesterday_anywhere_are_read_ahead(zone: str, hour: int) -> None:
    at = datetime(2026, 12, 7, hour, 59, tzinfo=UTC)
    first, last = _context(at).days_ahead(_update("/log 1 今天 值守"))  # type: ignore[misc]
    today = at.astimezone(ZoneInfo(zone)).date()
    assert first <= today - timedelta(days=1) and today <= last
    assert (last - first).days == 3  # four days: no more than the widest zones need


def test_nothing_is_read_ahead_for_an_update_whose_handler_checks_no_day() -> None:
    context = _context(datetime(2026, 12, 7, 12, tzinfo=UTC))
    assert context.days_ahead(_update("/my")) is None
    settings = Settings(bot_token=TOKEN, telegram_api_url="http://127.0.0.1:1")
    clock = FrozenClock(datetime(2026, 12, 7, tzinfo=UTC))
    assert PersonContext(settings, clock, get_pack()).days_ahead(_update("/log 1 今天 值守")) is None
