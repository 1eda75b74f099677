"""A person's data: export everything held about them; erase it while branch figures stay right."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from storage import audit, dingtalk
from storage.errors import Forbidden, NotFound, Refused
from storage.models import (
    AuditEntry,
    Commitment,
    ConversationState,
    Delivery,
    DeliveryStatus,
    EntryStatus,
    Invite,
    Membership,
    Person,
    ServiceEntry,
    WebSignIn,
)
from storage.privacy import erase_person, export_person, export_person_file

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
BOT = 424242


async def fill(s, w) -> None:
    """Member A's life in the branch, and a neighbour's, so erasure must pick the right rows."""
    a, a2 = w.member_a, w.member_a2
    s.add_all(
        [
            ServiceEntry(
                person_id=a.id,
                org_id=w.branch_a.id,
                day=date(2026, 11, 1),
                minutes=120,
                action="volunteer",
                place="东关社区",
                description="为独居老人打扫卫生",
                organizer="餐饮协会",
                person_in_charge="李书记",
                evidence_file_id="photo-1",
                status=EntryStatus.APPROVED,
            ),
            ServiceEntry(
                person_id=a.id,
                org_id=w.branch_a.id,
                day=date(2026, 11, 2),
                minutes=90,
                action="welfare_day",
                place="广场",
                description="义诊",
                status=EntryStatus.PENDING,
            ),
            ServiceEntry(
                person_id=a2.id,
                org_id=w.branch_a.id,
                day=date(2026, 11, 1),
                minutes=60,
                action="volunteer",
                place="学校",
                description="助学",
                status=EntryStatus.APPROVED,
            ),
            Commitment(
                person_id=a.id,
                org_id=w.branch_a.id,
                text="每月参加一次志愿服务",
                deadline=date(2026, 12, 31),
                fulfilment_text="已参加三次",
                fulfilment_file_id="doc-1",
                evaluation="很好",
            ),
            Commitment(
                person_id=a.id,
                org_id=w.branch_a.id,
                is_branch=True,
                text="支部承诺:办好便民服务站",
                deadline=date(2026, 12, 31),
            ),
            Delivery(
                kind="notice",
                person_id=a.id,
                chat_id=a.telegram_id,
                dedupe_key="notice:1:a",
                payload={"text": "张三同志:请参加学习"},
                status=DeliveryStatus.SENT,
                sent_at=NOW,
                acknowledged_at=NOW,
            ),
            Delivery(
                kind="nudge",
                person_id=a.id,
                chat_id=a.telegram_id,
                dedupe_key="nudge:a",
                payload={"text": "张三,本月还没有登记"},
                status=DeliveryStatus.PENDING,
            ),
            Delivery(
                kind="nudge",
                person_id=a2.id,
                chat_id=a2.telegram_id,
                dedupe_key="nudge:a2",
                payload={"text": "李四"},
                status=DeliveryStatus.PENDING,
            ),
            ConversationState(
                key=f"fsm:{BOT}:{a.telegram_id}:{a.telegram_id}:default", state="Log:place", data={"x": 1}
            ),
            ConversationState(key=f"fsm:{BOT}:{a2.telegram_id}:{a2.telegram_id}:default", state="Log:place"),
            WebSignIn(token_hash="h" * 64, person_id=a.id, expires_at=NOW),
        ]
    )
    await s.flush()
    await audit.record(
        s, audit.system_actor(), "person.view", subject_person_id=a.id, detail={"fields": ["name"]}
    )
    await s.commit()


# ---- export -----------------------------------------------------------------------------------


async def test_a_member_exports_everything_held_about_them(session, world) -> None:
    await fill(session, world)
    actor = await world.actor(session, world.member_a)
    data = await export_person(session, actor, world.member_a.id)
    json.dumps(data)  # JSON-ready as it is
    assert data["profile"]["name"] == "张三" and data["profile"]["telegram_id"] == world.member_a.telegram_id
    assert data["profile"]["has_password"] is False and "password_hash" not in data["profile"]
    assert [m["org_id"] for m in data["memberships"]] == [world.branch_a.id]
    assert [e["description"] for e in data["service_entries"]] == ["为独居老人打扫卫生", "义诊"]
    assert (
        data["service_entries"][0]["day"] == "2026-11-01"
        and data["service_entries"][0]["status"] == "approved"
    )
    assert [c["text"] for c in data["commitments"]] == ["每月参加一次志愿服务", "支部承诺:办好便民服务站"]
    assert [(d["kind"], d["acknowledged_at"] is not None) for d in data["deliveries"]] == [
        ("notice", True),
        ("nudge", False),
    ]
    assert [a["action"] for a in data["audit"]] == ["person.view"]
    assert data["dingtalk"] == []
    # The export itself is recorded.
    rows = list(await session.scalars(select(AuditEntry).where(AuditEntry.action == "person.export")))
    assert [(r.actor_id, r.subject_person_id) for r in rows] == [(world.member_a.id, world.member_a.id)]


async def test_export_file_is_utf8_json_with_readable_chinese(session, world) -> None:
    actor = await world.actor(session, world.member_a)
    raw = await export_person_file(session, actor, world.member_a.id)
    assert "张三".encode() in raw
    assert json.loads(raw.decode("utf-8"))["profile"]["id"] == world.member_a.id


@pytest.mark.parametrize(
    ("who", "target", "allowed"),
    [
        ("member_a", "member_a", True),
        ("member_a", "member_a2", False),
        ("secretary_a", "member_a", False),  # not even the branch's secretary
        ("staff", "member_a", False),
        ("admin", "member_c", True),
    ],
)
async def test_who_may_export_and_erase(session, world, who, target, allowed) -> None:
    actor = await world.actor(session, getattr(world, who))
    pid = getattr(world, target).id
    if allowed:
        assert (await export_person(session, actor, pid))["profile"]["id"] == pid
        assert (await erase_person(session, actor, pid, NOW)).erased_at == NOW
    else:
        with pytest.raises(Forbidden):
            await export_person(session, actor, pid)
        with pytest.raises(Forbidden):
            await erase_person(session, actor, pid, NOW)
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0


async def test_admin_export_from_the_web_is_audited(session, world) -> None:
    actor = await world.actor(session, world.admin, via="web")
    await export_person(session, actor, world.member_c.id)
    row = await session.scalar(select(AuditEntry))
    assert (row.action, row.actor_id, row.subject_person_id, row.via) == (
        "person.export",
        world.admin.id,
        world.member_c.id,
        "web",
    )
    with pytest.raises(NotFound):
        await export_person(session, actor, 9999)


# ---- erase ------------------------------------------------------------------------------------


async def branch_figures(s, org_id: int) -> list[tuple]:
    rows = await s.execute(
        select(ServiceEntry.status, ServiceEntry.action, func.count(), func.sum(ServiceEntry.minutes))
        .where(ServiceEntry.org_id == org_id)
        .group_by(ServiceEntry.status, ServiceEntry.action)
        .order_by(ServiceEntry.status, ServiceEntry.action)
    )
    return [tuple(r) for r in rows]


async def test_erase_keeps_the_aggregates_but_no_personal_data(session, world) -> None:
    await fill(session, world)
    a = world.member_a
    tg = a.telegram_id
    figures = await branch_figures(session, world.branch_a.id)
    session.add(
        Invite(
            code="personal-invite-code-x",
            org_id=world.branch_a.id,
            role="member",
            expires_at=NOW,
            person_id=a.id,
        )
    )
    await session.commit()

    actor = await world.actor(session, a)
    p = await erase_person(session, actor, a.id, NOW)
    await session.commit()

    assert await branch_figures(session, world.branch_a.id) == figures
    assert (p.name, p.telegram_id, p.locale, p.username, p.password_hash, p.roster_note, p.erased_at) == (
        f"已删除用户#{a.id}",
        None,
        None,
        None,
        None,
        None,
        NOW,
    )
    entries = list(await session.scalars(select(ServiceEntry).where(ServiceEntry.person_id == a.id)))
    assert len(entries) == 2
    for e in entries:
        assert (e.description, e.place, e.evidence_file_id, e.organizer, e.person_in_charge) == (
            "",
            "",
            None,
            None,
            None,
        )
    assert {(e.day, e.minutes, e.action, e.status) for e in entries} == {
        (date(2026, 11, 1), 120, "volunteer", EntryStatus.APPROVED),
        (date(2026, 11, 2), 90, "welfare_day", EntryStatus.PENDING),
    }
    own, branch = list(await session.scalars(select(Commitment).order_by(Commitment.id)))
    assert (own.text, own.fulfilment_text, own.fulfilment_file_id, own.evaluation) == ("", None, None, None)
    assert own.deadline == date(2026, 12, 31)
    assert branch.text == "支部承诺:办好便民服务站"  # the branch's words, not theirs
    assert (
        await session.scalar(select(func.count()).select_from(Membership).where(Membership.person_id == a.id))
        == 0
    )
    assert await session.scalar(select(func.count()).select_from(Invite).where(Invite.person_id == a.id)) == 0
    assert await session.scalar(select(func.count()).select_from(WebSignIn)) == 0
    states = list(await session.scalars(select(ConversationState.key)))
    assert states == [f"fsm:{BOT}:{world.member_a2.telegram_id}:{world.member_a2.telegram_id}:default"]
    deliveries = {d.dedupe_key: d for d in await session.scalars(select(Delivery))}
    assert deliveries["nudge:a"].status is DeliveryStatus.FAILED  # nothing more goes out to them
    assert deliveries["notice:1:a"].acknowledged_at == NOW  # the notice's acknowledgement count stays
    for key in ("nudge:a", "notice:1:a"):
        assert (deliveries[key].chat_id, deliveries[key].payload) == (0, {})
    assert deliveries["nudge:a2"].status is DeliveryStatus.PENDING and deliveries["nudge:a2"].payload
    # No trace of them anywhere a name or Telegram id could hide.
    people = list(await session.scalars(select(Person.name)))
    assert "张三" not in people
    assert await session.scalar(select(func.count()).select_from(Person).where(Person.telegram_id == tg)) == 0
    row = await session.scalar(select(AuditEntry).where(AuditEntry.action == "person.erase"))
    assert row is not None and (row.actor_id, row.subject_person_id) == (a.id, a.id)


async def test_erasing_twice_is_refused(session, world) -> None:
    actor = await world.actor(session, world.admin)
    await erase_person(session, actor, world.member_c.id, NOW)
    with pytest.raises(Refused) as e:
        await erase_person(session, actor, world.member_c.id, NOW)
    assert e.value.key == "privacy.already_erased"


async def test_erased_export_holds_only_the_placeholder(session, world) -> None:
    await fill(session, world)
    admin = await world.actor(session, world.admin)
    await erase_person(session, admin, world.member_a.id, NOW)
    data = await export_person(session, admin, world.member_a.id)
    text = json.dumps(data, ensure_ascii=False)
    for secret in (
        "张三",
        "为独居老人打扫卫生",
        "东关社区",
        "每月参加一次志愿服务",
        str(world.member_a.telegram_id),
    ):
        assert secret not in text


async def test_erase_forgets_the_person_on_dingtalk_too(session, world) -> None:
    a, b = world.member_a, world.member_a2
    await dingtalk.remember(session, "staff-a", "张三", "zh", NOW, lambda _d, _n: a.telegram_id)
    await dingtalk.remember(session, "staff-b", "李四", "zh", NOW, lambda _d, _n: b.telegram_id)
    await dingtalk.keep_card(session, "card-a", "staff-a", 5, {"text": "张三的申请"}, NOW)
    await dingtalk.keep_card(session, "card-b", "staff-b", 5, {"text": "李四的申请"}, NOW)
    await dingtalk.keep_frame(
        session, "m-a", "t", {"senderStaffId": "staff-a", "text": {"content": "我"}}, NOW
    )
    await dingtalk.keep_frame(session, "m-b", "t", {"senderStaffId": "staff-b"}, NOW)
    await dingtalk.keep_plain(session, "pqk-a", "staff-a", 6, {"text": "张三，请提交"}, NOW)
    await dingtalk.keep_plain(session, "pqk-b", "staff-b", 6, {"text": "李四，请提交"}, NOW)
    await dingtalk.keep_outgoing(
        session,
        [
            ("staff-a", "sent", {"text": "张三的证书"}, b"a"),
            ("staff-b", "sent", {"text": "李四的证书"}, None),
        ],
        NOW,
    )
    await dingtalk.keep_frame(session, "p-a", "t", {"userId": "staff-a", "outTrackId": "card-a"}, NOW)
    await session.commit()

    exported = await export_person(session, await world.actor(session, a), a.id)
    assert exported["dingtalk"] == [
        {
            "dingtalk_id": "staff-a",
            "name": "张三",
            "language_code": "zh",
            "first_seen_at": NOW.isoformat(),
            "last_seen_at": NOW.isoformat(),
        }
    ]
    await erase_person(session, await world.actor(session, a), a.id, NOW)
    await session.commit()

    assert [p.dingtalk_id for p in await dingtalk.people(session)] == ["staff-b"]
    assert [c.out_track_id for c in await dingtalk.cards(session, NOW)] == ["card-b"]
    assert [f.message_id for f in await dingtalk.waiting(session)] == ["m-b"]
    assert [p.process_query_key for p in await dingtalk.plain(session, NOW)] == ["pqk-b"]
    assert [o.dingtalk_id for o in await dingtalk.outgoing(session)] == ["staff-b"]
