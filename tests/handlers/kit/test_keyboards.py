"""keyboards.button: the same button pydantic builds, refused where Telegram would refuse it."""

from __future__ import annotations

import pytest
from aiogram.types import InlineKeyboardButton
from pydantic import ValidationError

from content.i18n import Raw
from handlers.kit.keyboards import button


@pytest.mark.parametrize(
    ("text", "data"),
    [("党员志愿服务行动", "lq:77:volunteer"), ("", ""), ("a <b>&", "x" * 64), (Raw("<b>原样</b>"), "srv:1")],
)
def test_a_button_is_the_one_pydantic_builds(text: str, data: str) -> None:
    ours, theirs = button(text, data), InlineKeyboardButton(text=text, callback_data=data)
    assert ours == theirs
    assert ours.model_dump_json(exclude_none=True) == theirs.model_dump_json(exclude_none=True)
    assert ours.model_fields_set == theirs.model_fields_set == {"text", "callback_data"}
    # Each its own: changing one leaves the next alone.
    ours.text = "changed"
    assert button(text, data).text == text


def test_callback_data_over_64_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="over 64 bytes"):
        button("x", "数" * 22)  # 66 bytes


def test_a_text_that_is_not_a_string_is_refused_as_pydantic_refuses_it() -> None:
    with pytest.raises(ValidationError):
        button(None, "ok")  # type: ignore[arg-type]
