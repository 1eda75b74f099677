"""keyboards.button and keyboards.packed: the same button pydantic builds and the same callback data
aiogram packs, refused where Telegram or aiogram would refuse them."""

from __future__ import annotations

from typing import Annotated

import pytest
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton
from pydantic import ConfigDict, Field, ValidationError, field_validator

from content.i18n import Raw
from handlers.kit.keyboards import button, packed


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


class _Pick(CallbackData, prefix="tp"):
    wid: int
    action: str


class _Flag(CallbackData, prefix="tf"):
    on: bool
    name: str


@pytest.mark.parametrize(
    "values",
    [
        {"wid": 77, "action": "volunteer"},
        {"wid": -1, "action": ""},
        {"wid": 10**12, "action": "服务"},
        {"action": "volunteer", "wid": 5},  # in another order
        {"wid": "77", "action": "volunteer"},  # pydantic's to convert
        {"wid": 1, "action": Raw("raw")},  # a str subclass
    ],
)
def test_packed_is_what_aiogram_packs(values: dict) -> None:
    assert packed(_Pick, **values) == _Pick(**values).pack()


def test_packed_refuses_what_aiogram_refuses() -> None:
    with pytest.raises(ValueError, match="Separator"):
        packed(_Pick, wid=1, action="a:b")
    with pytest.raises(ValueError, match="too long"):
        packed(_Pick, wid=1, action="数" * 21)
    with pytest.raises(ValidationError):
        packed(_Pick, wid=1)
    with pytest.raises(ValidationError):
        packed(_Pick, wid=1, action=2)
    assert packed(_Flag, on=True, name="x") == _Flag(on=True, name="x").pack() == "tf:1:x"


def test_packed_builds_no_model_for_plain_values(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = _Pick.__init__

    def counting(self, **kw):
        built.append(kw)
        real(self, **kw)

    monkeypatch.setattr(_Pick, "__init__", counting)
    assert packed(_Pick, wid=3, action="x") == "tp:3:x"
    assert built == []
    packed(_Pick, wid="3", action="x")
    assert len(built) == 1


class _Short(CallbackData, prefix="ts"):
    code: Annotated[str, Field(max_length=3)]
    n: int


class _Checked(CallbackData, prefix="tc"):
    n: int

    @field_validator("n")
    @classmethod
    def positive(cls, v: int) -> int:
        if v < 0:
            raise ValueError("negative")
        return v


class _Lower(CallbackData, prefix="tl"):
    model_config = ConfigDict(str_to_lower=True)
    name: str


def test_packed_leaves_constrained_or_checked_fields_to_aiogram() -> None:
    with pytest.raises(ValidationError):
        packed(_Short, code="abcdef", n=1)
    with pytest.raises(ValidationError):
        packed(_Checked, n=-1)
    assert packed(_Lower, name="ABC") == _Lower(name="ABC").pack() == "tl:abc"
