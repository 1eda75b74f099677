"""The two things every multi-step form and every button list repeats, written once.

A button answers a message that may be old: the form may have moved on, been cancelled or
started again, or the list may show what is no longer there. Each form's buttons carry the run
id of the form that sent them (the message id of the command that started it), so `running`
tells a button of the form running now, at the step it is on, from a stale one. A stale button
raises `Stale`: the update guard answers it like any refusal, with an alert, and rolls back, so
a handler says "stale" in one line and nothing it did before stays.

`begin` and `advance` are the step: keep the answers (`begin` forgets an earlier run's), move to
the state and commit before the question is sent, so the question on screen is never ahead of
what is stored.

`cancel_button` is a form's cancel button, registered once per form; `refused_answer` is what a
typed answer the store refuses gets: asked again, or the form ends with the reason. The store
call it answers runs in a savepoint (`async with session.begin_nested()`), so a refusal undoes
its writes and nothing else: a handler never rolls back the update's transaction, which holds
the update's claim (tests/handlers/test_no_rollback.py).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from aiogram import Bot, Router
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts
from handlers.kit.keyboards import show
from storage.errors import Refused

T = TypeVar("T")


class Stale(Refused):
    """The button pressed belongs to a message whose moment has passed."""

    default_key = "fallback.stale_button"


def fresh(value: T | None, key: str | None = None) -> T:
    """`value`, or the stale-button alert (catalog `key`) when there is none."""
    if value is None:
        raise Stale(key)
    return value


async def running(
    state: FSMContext, run: int, *steps: State, stale: str | None = None, run_key: str = "wid"
) -> dict[str, Any]:
    """The form's answers, if a button carrying `run` belongs to the form running now and the
    form is at one of `steps`; otherwise the stale-button alert (catalog key `stale`)."""
    data = await state.get_data()
    if data.get(run_key) != run or await state.get_state() not in {s.state for s in steps}:
        raise Stale(stale)
    return data


async def begin(state: FSMContext, session: AsyncSession, step: State, **answers: Any) -> None:
    """Start a form at `step` with only `answers` (an earlier run's are forgotten) and commit."""
    await state.set_state(step)
    await state.set_data(answers)
    await session.commit()


async def advance(state: FSMContext, session: AsyncSession, step: State, **answers: Any) -> dict[str, Any]:
    """Keep `answers`, move the form to `step` and commit; returns all answers so far."""
    data = await state.update_data(**answers) if answers else await state.get_data()
    await state.set_state(step)
    await session.commit()
    return data


def cancel_button(
    router: Router,
    button: CallbackQueryFilter,
    *steps: State,
    stale: str,
    done: str,
    field: str = "wid",
    run_key: str = "wid",
) -> None:
    """Register a form's cancel button on `router`: pressed on the form running now (its run id is
    the button's `field`, the form's `run_key`) at one of `steps`, it ends the form, commits and
    turns its message into `done`; any other press is stale (catalog key `stale`)."""

    async def on_cancel_click(
        query: CallbackQuery, callback_data: Any, session: AsyncSession, _: Texts, state: FSMContext, bot: Bot
    ) -> None:
        await running(state, getattr(callback_data, field), *steps, stale=stale, run_key=run_key)
        await state.clear()
        await session.commit()
        await query.answer()
        await show(query, bot, _(done))

    router.callback_query.register(on_cancel_click, button)


async def refused_answer(
    message: Message,
    state: FSMContext,
    _: Texts,
    e: Refused,
    *,
    retry: Collection[str],
    again: str,
) -> None:
    """A typed answer the store refused (its savepoint rolled back: nothing of it stays). A
    refusal of the answer itself (`retry` keys) says why and asks again (catalog key `again`),
    the form staying at its step; any other refusal ends the form with the reason."""
    if e.key in retry:
        await message.answer(_(e.key, **e.params) + "\n" + _(again))
        return
    await state.clear()
    await message.answer(_(e.key, **e.params))
