"""A failure after the update has talked to Telegram: its claim was committed with that first call
(bot/gate commits before each call), so the update is not tried again, and a pressed button was
already answered, so an alert can no longer be shown. The person is still told, in the chat."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from content.i18n import catalog
from storage import commitments
from storage.models import Commitment, CommitmentStatus, ProcessedUpdate
from tests.e2e.harness import Reply
from tests.e2e.test_commitments_member import commitment

UNAVAILABLE = catalog("zh")["error.unavailable"]
APOLOGY = catalog("zh")["error.internal"]


async def _press_send_without_photo(chat, bots, session, world) -> tuple[Reply, Reply]:
    """A member at the last step of reporting fulfilment: the press that answers the query and
    then stores the report (handlers/commitments.on_send_without_photo_click)."""
    # The guard tries the alert first; Telegram refuses a second answer to one press.
    bots.expect_error("answerCallbackQuery", 400, "query is too old")
    session.add(commitment(world.member_a, world.branch_a, "每月参加志愿服务", date(2027, 1, 31)))
    await session.commit()
    m = world.member_a
    listing = await chat.send(m, "/commitments")
    await chat.press(m, listing, "📣 第 1 项报告践诺")
    form = await chat.send(m, "11 月参加了两次社区服务。")
    return form, await chat.press(m, form, "📨 不附照片，提交")


async def test_an_outage_after_the_press_was_answered_asks_to_do_it_again(
    chat, bots, db, session, world, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(*args, **kwargs):
        raise OperationalError("UPDATE commitments ...", {}, Exception("database is locked"))

    monkeypatch.setattr(commitments, "report_fulfilment", unavailable)
    form, done = await _press_send_without_photo(chat, bots, session, world)
    assert done.answer is not None and done.answer.text is None  # answered before the write
    # Regression: the update was handed back for a retry, which found its claim committed and
    # skipped it: the member saw the spinner stop and nothing else, and the report was lost.
    assert [m.text for m in done.sent] == [UNAVAILABLE]
    [c] = list(await db.all(select(Commitment)))
    assert c.status is CommitmentStatus.MADE and c.fulfilment_text is None
    # Four updates (/commitments, the press, the text, this press), each recorded as handled.
    assert await db.count(ProcessedUpdate) == 4

    # What was not saved was rolled back, the conversation too: the same press now works.
    monkeypatch.undo()
    again = await chat.press(world.member_a, form, "📨 不附照片，提交")
    assert "已报告践诺" in again.text
    [c] = list(await db.all(select(Commitment)))
    assert c.status is CommitmentStatus.REPORTED and c.fulfilment_text == "11 月参加了两次社区服务。"


async def test_an_unexpected_failure_after_the_press_was_answered_reaches_the_chat(
    chat, bots, db, session, world, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(commitments, "report_fulfilment", broken)
    _, done = await _press_send_without_photo(chat, bots, session, world)
    # Regression: the apology went as an alert to a query already answered, Telegram refused it
    # ("query is too old"), and the member was told nothing.
    assert [m.text for m in done.sent] == [APOLOGY]
    [c] = list(await db.all(select(Commitment)))
    assert c.status is CommitmentStatus.MADE
