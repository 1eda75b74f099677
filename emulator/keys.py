"""Typed aiohttp application keys (aiohttp warns about plain string keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from emulator.core import Engine

EMULATOR: web.AppKey[Engine] = web.AppKey("emulator")
