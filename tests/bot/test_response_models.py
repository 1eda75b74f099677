"""aiogram's answer models (`Response[...]`) are built once, not again after each garbage collection."""

from __future__ import annotations

import gc
import weakref

from aiogram.methods import GetMyStarBalance
from aiogram.methods.base import Response
from aiogram.types import StarAmount, UserProfilePhotos

from bot.app import KeepResponseModels


async def test_the_answer_model_of_a_called_method_outlives_the_garbage_collector() -> None:
    keep = KeepResponseModels()

    async def make_request(_bot, _method):
        return "answered"

    assert await keep(make_request, None, GetMyStarBalance()) == "answered"
    kept = weakref.ref(Response[StarAmount])
    # A method never called through it: pydantic's weak cache alone lets the model go.
    not_kept = weakref.ref(Response[UserProfilePhotos])
    gc.collect()
    assert not_kept() is None
    assert kept() is not None and kept() is keep.kept[StarAmount]
