"""How Bot API parameters arrive over HTTP: query string, JSON body, urlencoded form, or
multipart/form-data with file parts (aiogram sends multipart, complex values JSON-encoded,
files as parts named by `attach://<part>` references). Values stay raw here; spec.decode
types them."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web

from emulator.spec import Upload


class BadBody(ValueError):
    pass


async def read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, Upload]]:
    raw: dict[str, Any] = dict(request.query)
    files: dict[str, Upload] = {}
    if not request.body_exists:
        return raw, files
    ctype = request.content_type
    if ctype == "application/json":
        try:
            body = await request.json()
        except ValueError as e:
            raise BadBody(f"the JSON body does not parse: {e}") from None
        if not isinstance(body, dict):
            raise BadBody("the JSON body must be an object")
        raw.update(body)
    elif ctype == "multipart/form-data":
        fields, files = await read_multipart(await request.multipart())
        raw.update(fields)
    else:
        form = await request.post()
        raw.update({k: v for k, v in form.items() if isinstance(v, str)})
    return raw, files


async def read_multipart(reader: MultipartReader) -> tuple[dict[str, Any], dict[str, Upload]]:
    fields: dict[str, Any] = {}
    files: dict[str, Upload] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.filename is not None:
            data = await part.read()
            files[part.name] = Upload(bytes(data), part.filename, part.headers.get("Content-Type"))
        else:
            fields[part.name] = await part.text()
    return fields, files


def json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, Upload):
        return repr(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
