"""The Bot API client's session: aiogram's aiohttp session, its request body made cheaper.

aiogram sends every call as a form: it dumps the method to dicts, walks them (`prepare_value`),
JSON-encodes each complex field, and aiohttp then percent-encodes the lot (each byte of a Chinese
text three times over). For a `/log` answer with its six buttons that was 0.12 ms of CPU. Here:
- the fields are the same strings aiogram would put in the form (`prepare_value` makes them),
  sent as one JSON object (`application/json`, which the Bot API takes for any call without a
  file): no percent-encoding, and the server reads the same field values;
- an inline keyboard, the one complex field our answers carry, is written by pydantic in one
  step (`model_dump_json(exclude_none=True)`), the same text aiogram's walk makes of it (its
  models hold only strings, numbers, booleans and models of those: no dates, files, defaults;
  `tests/bot/test_session.py` checks both);
- a call with a file goes as aiogram sends it (multipart)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods.base import TelegramMethod, TelegramType
from aiogram.types import InlineKeyboardMarkup, InputFile
from aiohttp import FormData
from aiohttp.payload import BytesPayload

if TYPE_CHECKING:
    from aiogram import Bot


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class BotSession(AiohttpSession):
    """orjson for answers and complex fields (several times faster than json), and the body as
    above."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(json_loads=orjson.loads, json_dumps=_dumps, **kwargs)

    def build_form_data(self, bot: Bot, method: TelegramMethod[TelegramType]) -> FormData:
        keyboards = {k: v for k, v in method if type(v) is InlineKeyboardMarkup}
        fields: dict[str, str] = {}
        files: dict[str, InputFile] = {}
        for key, value in method.model_dump(warnings=False, exclude=set(keyboards)).items():
            value = self.prepare_value(value, bot=bot, files=files)
            if value:  # as aiogram: an empty or absent field is left out
                fields[key] = value
        if files:
            return super().build_form_data(bot, method)
        for key, keyboard in keyboards.items():
            fields[key] = keyboard.model_dump_json(exclude_none=True)
        # aiohttp posts any payload as it is; aiogram's make_request passes this on unchanged.
        return BytesPayload(orjson.dumps(fields), content_type="application/json")  # type: ignore[return-value]
