"""handlers/service_log: which updates are quick /log lines (their claim reads the days ahead)."""

from __future__ import annotations

import pytest
from aiogram.types import Update

from handlers.service_log import is_quick_log


def _update(text: str | None, *, callback: bool = False) -> Update:
    chat = {"id": 5, "type": "private"}
    user = {"id": 5, "is_bot": False, "first_name": "党员"}
    if callback:
        message = {"message_id": 1, "date": 0, "chat": chat, "text": "x"}
        return Update.model_validate(
            {
                "update_id": 1,
                "callback_query": {"id": "q", "from": user, "chat_instance": "c", "message": message},
            }
        )
    message = {"message_id": 1, "date": 0, "chat": chat, "from": user}
    if text is not None:
        message["text"] = text
    return Update.model_validate({"update_id": 1, "message": message})


@pytest.mark.parametrize(
    ("text", "quick"),
    [
        ("/log 1 今天 社区志愿服务", True),
        ("/log@branchbot 1 昨天 值守", True),
        ("/log\n2 今天 值守", True),  # Command splits on any white space
        ("/log", False),  # the wizard: no day named yet
        ("/log   ", False),
        ("/logs 1 今天", False),
        ("/my", False),
        ("1 今天 值守", False),
        (None, False),  # a photo, a sticker
    ],
)
def test_a_quick_log_line_is_the_command_with_its_fields(text: str | None, quick: bool) -> None:
    assert is_quick_log(_update(text)) is quick


def test_a_button_press_is_not_a_quick_log_line() -> None:
    assert is_quick_log(_update(None, callback=True)) is False
