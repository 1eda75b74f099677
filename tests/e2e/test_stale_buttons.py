"""A button whose data no longer names anything (an old keyboard, a forged one) is answered with
the stale-button alert through handlers.kit.wizard.Stale, and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import Commitment, Invite, ReminderRule
from tests.e2e.forge import forged_button
from tests.e2e.test_evaluate import commitment, make

STALE = "这个按钮已经失效了，请重新发送命令。"


async def test_a_rating_that_does_not_exist_is_stale(chat, db, session, world) -> None:
    cid = await make(session, world, world.member_a)
    data = f"ser:{world.branch_a.id}:{cid}:bogus:0"
    pressed = await chat.press(
        world.secretary_a, await forged_button(chat, world.secretary_a, data), "forged"
    )
    assert pressed.alert == STALE
    c = await commitment(db, cid)
    assert c.rating is None and c.status.value == "reported"


@pytest.mark.parametrize("data", ["srh:999999", "siv:{org}:admin"])
async def test_a_rule_or_role_that_is_not_there_is_stale(chat, db, world, data) -> None:
    data = data.format(org=world.branch_a.id)
    pressed = await chat.press(
        world.secretary_a, await forged_button(chat, world.secretary_a, data), "forged"
    )
    assert pressed.alert == STALE
    assert await db.count(Invite) == 0
    assert not await db.all(select(ReminderRule).where(ReminderRule.id == 999999))
    assert await db.count(Commitment) == 0
