"""What the DingTalk bridge (bridge/dingtalk) keeps: its people (DingTalk userId <-> the Bot API
user id the bot knows them by, with name and language), the Stream frames it acknowledged but
the bot has not yet confirmed, what DingTalk shows (cards, command-menu cards, plain robot
messages: so the bot can edit and delete them after a restart) and the changes the bot made
that DingTalk has not yet accepted (kept before the bot got its "ok"). Each operation takes the
caller's session; the caller commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, MetaData, Table, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from storage.models import DingTalkCard, DingTalkFrame, DingTalkOutgoing, DingTalkPerson, DingTalkPlain

# ---- people ----


async def people(s: AsyncSession) -> Sequence[DingTalkPerson]:
    return (await s.execute(select(DingTalkPerson).order_by(DingTalkPerson.first_seen_at))).scalars().all()


async def remember(
    s: AsyncSession,
    dingtalk_id: str,
    name: str,
    language_code: str,
    now: datetime,
    new_id: Callable[[str, int], int],
) -> DingTalkPerson:
    """The person with this DingTalk userId, their name and language brought up to date; a new
    person gets `new_id(dingtalk_id, attempt)`, the first one not taken (the id never changes
    after)."""
    found = await s.get(DingTalkPerson, dingtalk_id)
    if found is not None:
        if (found.name, found.language_code) != (name, language_code):
            found.name, found.language_code = name, language_code
        found.last_seen_at = now
        await s.flush()
        return found
    attempt = 0
    while True:
        user_id = new_id(dingtalk_id, attempt)
        taken = await s.scalar(select(DingTalkPerson.dingtalk_id).where(DingTalkPerson.user_id == user_id))
        if taken is None:
            break
        attempt += 1
    person = DingTalkPerson(
        dingtalk_id=dingtalk_id,
        user_id=user_id,
        name=name,
        language_code=language_code,
        next_message_id=1,
        first_seen_at=now,
        last_seen_at=now,
    )
    s.add(person)
    try:
        async with s.begin_nested():
            await s.flush()
    except IntegrityError:  # another bridge process took them first: theirs stands
        s.expunge(person)
        found = await s.get(DingTalkPerson, dingtalk_id)
        if found is None:
            raise
        return found
    return person


async def set_menu(s: AsyncSession, dingtalk_id: str, digest: str) -> None:
    """The person was sent the command menu with this digest (not again until it changes)."""
    await s.execute(
        update(DingTalkPerson).where(DingTalkPerson.dingtalk_id == dingtalk_id).values(menu=digest)
    )


async def reserve_message_ids(s: AsyncSession, dingtalk_id: str, block: int) -> int | None:
    """Take the next `block` message ids of the person's chat; returns the first of them (None:
    the person is not kept any more, their data was erased)."""
    first = await s.scalar(
        update(DingTalkPerson)
        .where(DingTalkPerson.dingtalk_id == dingtalk_id)
        .values(next_message_id=DingTalkPerson.next_message_id + block)
        .returning(DingTalkPerson.next_message_id)
    )
    return None if first is None else int(first) - block


# ---- cards ----


async def _keep_shown(s: AsyncSession, key: str, row: DingTalkCard | DingTalkPlain) -> None:
    """Keep `row` (a card or a plain message DingTalk shows, under `key`); one kept already
    gets the message it shows now and when."""
    found = await s.get(type(row), key)
    if found is None:
        s.add(row)
    else:
        found.message, found.updated_at = row.message, row.updated_at
    await s.flush()


async def keep_card(
    s: AsyncSession,
    out_track_id: str,
    dingtalk_id: str,
    message_id: int,
    message: dict[str, Any],
    now: datetime,
    *,
    kind: str = "message",
) -> None:
    """The card and the message it shows, as the bot last made it (kind "menu": a command-menu
    card, message_id 0, message {"commands": [...]})."""
    await _keep_shown(
        s,
        out_track_id,
        DingTalkCard(
            out_track_id=out_track_id,
            dingtalk_id=dingtalk_id,
            kind=kind,
            message_id=message_id,
            message=message,
            updated_at=now,
        ),
    )


async def cards(s: AsyncSession, since: datetime) -> Sequence[DingTalkCard]:
    """Cards changed since `since`, oldest first (older ones are forgotten: `forget_cards`)."""
    return (
        (
            await s.execute(
                select(DingTalkCard).where(DingTalkCard.updated_at >= since).order_by(DingTalkCard.updated_at)
            )
        )
        .scalars()
        .all()
    )


async def forget_card(s: AsyncSession, out_track_id: str) -> None:
    await s.execute(delete(DingTalkCard).where(DingTalkCard.out_track_id == out_track_id))


async def forget_cards(s: AsyncSession, before: datetime) -> None:
    await s.execute(delete(DingTalkCard).where(DingTalkCard.updated_at < before))


# ---- plain robot messages ----


async def keep_plain(
    s: AsyncSession,
    process_query_key: str,
    dingtalk_id: str,
    message_id: int,
    message: dict[str, Any],
    now: datetime,
) -> None:
    """A bot message DingTalk shows as a plain robot message (`process_query_key` recalls it)."""
    await _keep_shown(
        s,
        process_query_key,
        DingTalkPlain(
            process_query_key=process_query_key,
            dingtalk_id=dingtalk_id,
            message_id=message_id,
            message=message,
            updated_at=now,
        ),
    )


async def plain(s: AsyncSession, since: datetime) -> Sequence[DingTalkPlain]:
    """Plain messages kept since `since`, oldest first (older ones: `forget_plain_before`)."""
    return (
        (
            await s.execute(
                select(DingTalkPlain)
                .where(DingTalkPlain.updated_at >= since)
                .order_by(DingTalkPlain.updated_at, DingTalkPlain.message_id)
            )
        )
        .scalars()
        .all()
    )


async def forget_plain(s: AsyncSession, process_query_key: str) -> None:
    await s.execute(delete(DingTalkPlain).where(DingTalkPlain.process_query_key == process_query_key))


async def forget_plain_before(s: AsyncSession, before: datetime) -> None:
    await s.execute(delete(DingTalkPlain).where(DingTalkPlain.updated_at < before))


# ---- what the bot sent, until DingTalk accepted it ----


async def keep_outgoing(
    s: AsyncSession,
    changes: Sequence[tuple[str, str, dict[str, Any], bytes | None]],
    now: datetime,
) -> list[int]:
    """Keep the bot's changes (dingtalk_id, kind, message, media), in order; returns their ids
    (the order they are passed on in)."""
    rows = [
        DingTalkOutgoing(dingtalk_id=d, kind=kind, message=message, media=media, created_at=now)
        for d, kind, message, media in changes
    ]
    for row in rows:  # one at a time: the ids follow the order
        s.add(row)
        await s.flush()
    return [row.id for row in rows]


async def create_outbox_apart(engine: AsyncEngine) -> None:
    """The outgoing table alone in a database of its own (the bridge's, when the bot's database
    is SQLite: README §7), without its key to `dingtalk_people`, which is not there."""
    table = DingTalkOutgoing.__table__
    apart = MetaData()
    Table(
        table.name,
        apart,
        *(Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable) for c in table.columns),
    )
    async with engine.begin() as conn:
        await conn.run_sync(apart.create_all)


async def outgoing(s: AsyncSession) -> Sequence[DingTalkOutgoing]:
    """Changes not yet accepted by DingTalk, in the order the bot made them."""
    return (await s.execute(select(DingTalkOutgoing).order_by(DingTalkOutgoing.id))).scalars().all()


async def passed_on(s: AsyncSession, row_id: int) -> None:
    """DingTalk accepted the change (or refused it for good): it is not sent again."""
    await s.execute(delete(DingTalkOutgoing).where(DingTalkOutgoing.id == row_id))


# ---- acknowledged frames ----


async def keep_frame(
    s: AsyncSession, message_id: str, topic: str, data: dict[str, Any], now: datetime
) -> bool:
    """Keep a frame before DingTalk gets its ack. False: it is here already (a redelivery)."""
    if await s.scalar(select(DingTalkFrame.id).where(DingTalkFrame.message_id == message_id)) is not None:
        return False
    s.add(DingTalkFrame(message_id=message_id, topic=topic, data=data, received_at=now, done=False))
    await s.flush()
    return True


async def became(s: AsyncSession, message_id: str, update_id: int | None) -> None:
    """The frame is in the bot's queue as `update_id` (None: it made no update, so it is done)."""
    await s.execute(
        update(DingTalkFrame)
        .where(DingTalkFrame.message_id == message_id)
        .values(update_id=update_id, done=update_id is None, **({"data": {}} if update_id is None else {}))
    )


async def waiting(s: AsyncSession) -> Sequence[DingTalkFrame]:
    """Frames not yet confirmed by the bot, in arrival order: replayed at start-up."""
    return (
        (
            await s.execute(
                select(DingTalkFrame).where(DingTalkFrame.done.is_(False)).order_by(DingTalkFrame.id)
            )
        )
        .scalars()
        .all()
    )


async def confirmed(s: AsyncSession, update_ids: Sequence[int]) -> None:
    """The bot has these updates: their frames are done; only the newest done row is kept."""
    if update_ids:
        # Done: the content (a person's words) is not kept longer than needed.
        await s.execute(
            update(DingTalkFrame)
            .where(DingTalkFrame.update_id.in_(list(update_ids)))
            .values(done=True, data={})
        )
    newest = await last_update_id(s)
    await s.execute(
        delete(DingTalkFrame).where(
            DingTalkFrame.done.is_(True),
            (DingTalkFrame.update_id.is_(None)) | (DingTalkFrame.update_id < (newest or 0)),
        )
    )


async def last_update_id(s: AsyncSession) -> int | None:
    """The highest update id a frame became: the next start counts on from it, so the bot's
    getUpdates offset does not skip what comes after a restart."""
    got = await s.scalar(select(func.max(DingTalkFrame.update_id)))
    return None if got is None else int(got)


async def forget_frame(s: AsyncSession, message_id: str) -> None:
    """A kept frame that could not be made an update: DingTalk will send it again."""
    await s.execute(delete(DingTalkFrame).where(DingTalkFrame.message_id == message_id))
