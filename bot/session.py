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
- a call whose fields are all plain values (text, numbers, booleans, a bot default, an inline
  keyboard: the answers and edits of every update) is read field by field, without the copy of
  the whole method that `model_dump` makes first (about half of this step's CPU); any other
  value (a list of entities, a reply's parameters, a date) takes the `model_dump` path;
- a call with a file goes as aiogram sends it (multipart).

And the answer: Telegram echoes a sent message's inline keyboard back in it. When the echo is the
keyboard sent (it always is, field for field), the answer holds the model we sent instead of a
new one validated from the echo: pydantic takes a model instance as it is, and the six buttons of
a `/log` answer were over half of the 60 µs its answer took to read. An echo that differs in
anything is read as Telegram sent it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiogram.client.default import Default
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods.base import Response, TelegramMethod, TelegramType
from aiogram.types import InlineKeyboardMarkup, InputFile
from aiohttp import FormData
from aiohttp.payload import BytesPayload

if TYPE_CHECKING:
    from aiogram import Bot


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class _Read(str):
    """An answer's text whose JSON was already read (`BotSession.check_response`)."""

    __slots__ = ("data",)
    data: Any


def _loads(content: str) -> Any:
    return content.data if type(content) is _Read else orjson.loads(content)


class BotSession(AiohttpSession):
    """orjson for answers and complex fields (several times faster than json), and the body as
    above."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(json_loads=_loads, json_dumps=_dumps, **kwargs)

    def build_form_data(self, bot: Bot, method: TelegramMethod[TelegramType]) -> FormData:
        fields = self._plain_fields(bot, method)
        if fields is None:
            keyboards = {k: v for k, v in method if type(v) is InlineKeyboardMarkup}
            files: dict[str, InputFile] = {}
            fields = {}
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

    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        markup = getattr(method, "reply_markup", None)
        if type(markup) is InlineKeyboardMarkup:
            try:
                data = orjson.loads(content)
            except orjson.JSONDecodeError:
                pass  # aiogram says so, as it would
            else:
                result = data.get("result") if type(data) is dict else None
                echo = result.get("reply_markup") if type(result) is dict else None
                if echo is not None and echo == markup.model_dump(exclude_none=True):
                    result["reply_markup"] = markup
                content = _Read(content)
                content.data = data
        return super().check_response(bot, method, status_code, content)

    def _plain_fields(self, bot: Bot, method: TelegramMethod[TelegramType]) -> dict[str, str] | None:
        """The fields as `prepare_value` makes them, read straight off the method; None if one
        holds anything but a plain value or an inline keyboard."""
        fields: dict[str, str] = {}
        for key, value in method:  # the fields and any extra ones, as `model_dump` has them
            kind = type(value)
            if value is None:
                continue
            if kind is InlineKeyboardMarkup:
                fields[key] = value.model_dump_json(exclude_none=True)
                continue
            if kind not in _PLAIN:
                return None
            prepared = self.prepare_value(value, bot=bot, files={})
            if prepared:  # as aiogram: an empty or absent field is left out
                fields[key] = prepared
        return fields


# Values `prepare_value` turns into text as they are; a `Default` it replaces with the bot's
# default and prepares that, as it does on the `model_dump` path (which leaves it as it is).
_PLAIN = frozenset({str, int, bool, Default})
