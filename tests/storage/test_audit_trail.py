"""The audit trail of changes: each change of a person's record or of an organization leaves a row
with the actor, the channel it came through, the subject person, the organization and ids."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from content.pack import get_pack
from storage import (
    audit,
    checklists,
    commitments,
    notices,
    pairings,
    people,
    privacy,
    reminders,
    reports,
    service_log,
)
from storage.invites import create_invite
from storage.models import AuditEntry, Role

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
TODAY = date(2026, 11, 20)


async def rows(session, action: str) -> list[tuple]:
    got = await session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
    return [(r.actor_id, r.via, r.subject_person_id, r.org_id, r.detail) for r in got]


async def _entry(session, world, minutes: int = 60):
    member = await world.actor(session, world.member_a)
    data = service_log.new_entry(day=TODAY, minutes=minutes, action="volunteer", description=f"服务{minutes}")
    return await service_log.log_service(
        session, member, data, source=f"t:{minutes}", today=TODAY, window_days=30, pack=PACK
    )


async def test_logging_approving_and_rejecting(session, world) -> None:
    one, two = await _entry(session, world, 60), await _entry(session, world, 90)
    web = await world.actor(session, world.secretary_a, via="web")
    await service_log.review(session, web, one.id, True, None, NOW)
    bot = await world.actor(session, world.secretary_a)
    await service_log.review_many(session, bot, [two.id], False, "照片不清楚", NOW)
    a, m, b = world.secretary_a.id, world.member_a.id, world.branch_a.id
    assert await rows(session, "entry.log") == [
        (m, "bot", m, b, {"entry_id": one.id}),
        (m, "bot", m, b, {"entry_id": two.id}),
    ]
    assert await rows(session, "entry.approve") == [(a, "web", m, b, {"entry_id": one.id})]
    assert await rows(session, "entry.reject") == [(a, "bot", m, b, {"entry_id": two.id})]


async def test_a_commitment_evaluated_or_sent_back_by_someone_else(session, world) -> None:
    member = await world.actor(session, world.member_a)
    c = await commitments.make_commitment(
        session,
        member,
        commitments.new_commitment(text="承诺", deadline=TODAY + timedelta(days=5)),
        today=TODAY,
        now=NOW,
        pack=PACK,
    )
    await commitments.report_fulfilment(session, member, c.id, "做完了", None, NOW)
    sec = await world.actor(session, world.secretary_a, via="web")
    await commitments.return_for_more_work(session, sec, c.id, "请补充", NOW)
    await commitments.report_fulfilment(session, member, c.id, "补充了", None, NOW)
    await commitments.evaluate(session, sec, c.id, "good", None, NOW)
    m, a, b = world.member_a.id, world.secretary_a.id, world.branch_a.id
    ids = {"commitment_id": c.id}
    assert await rows(session, "commitment.make") == [(m, "bot", m, b, ids)]
    assert await rows(session, "commitment.return") == [(a, "web", m, b, ids)]
    assert await rows(session, "commitment.evaluate") == [(a, "web", m, b, {**ids, "rating": "good"})]


async def test_notice_sent_and_cancelled(session, world) -> None:
    sec = await world.actor(session, world.secretary_a)
    sent = await notices.create_notice(session, sec, world.branch_a.id, "branch_members", "开会", now=NOW)
    count = await notices.send_notice(session, sec, sent.id, now=NOW)
    dropped = await notices.create_notice(
        session, sec, world.branch_a.id, "branch_members", "取消的", now=NOW
    )
    await notices.cancel_notice(session, sec, dropped.id)
    a, b = world.secretary_a.id, world.branch_a.id
    assert await rows(session, "notice.send") == [
        (a, "bot", None, b, {"notice_id": sent.id, "recipients": count})
    ]
    assert await rows(session, "notice.cancel") == [(a, "bot", None, b, {"notice_id": dropped.id})]


async def test_report_submitted_exemplar_pairing_reminder_and_assessment(session, world) -> None:
    sec = await world.actor(session, world.secretary_a)
    report = await reports.submit_report(
        session, sec, world.branch_a.id, date(2026, 11, 1), date(2026, 11, 19), None, NOW, PACK
    )
    staff = await world.actor(session, world.staff, via="web")
    ex = await pairings.record_exemplar(
        session, staff, pairings.new_exemplar(org_id=world.branch_a.id, title="样板", year=2026)
    )
    pair = await pairings.record_pairing(
        session,
        staff,
        pairings.new_pairing(
            strong_org_id=world.branch_a.id, weak_org_id=world.branch_b.id, started_on=TODAY
        ),
    )
    rule = (await reminders.ensure_default_rules(session, world.branch_a, now=NOW))[0]
    await reminders.set_rule(session, sec, rule.id, enabled=False, now=NOW)
    a1 = await checklists.start_assessment(
        session, sec, world.branch_a.id, "six_haves", "2026-11", NOW, pack=PACK
    )
    a, s, b = world.secretary_a.id, world.staff.id, world.branch_a.id
    assert await rows(session, "report.submit") == [
        (a, "bot", None, b, {"report_id": report.id, "from": "2026-11-01", "to": "2026-11-19"})
    ]
    assert await rows(session, "exemplar.add") == [(s, "web", None, b, {"exemplar_id": ex.id, "year": 2026})]
    assert await rows(session, "pairing.add") == [
        (s, "web", None, b, {"pairing_id": pair.id}),
        (s, "web", None, world.branch_b.id, {"pairing_id": pair.id}),
    ]
    assert await rows(session, "reminder.set") == [
        (a, "bot", None, b, {"rule_id": rule.id, "kind": rule.kind.value, "fields": ["enabled"]})
    ]
    assert await rows(session, "assessment.start") == [
        (a, "bot", None, b, {"assessment_id": a1.id, "period": "2026-11"})
    ]


async def test_joining_and_a_role_change_and_settings(session, world) -> None:
    staff = await world.actor(session, world.staff, via="web")
    invite = await create_invite(session, staff, world.branch_a.id, Role.MEMBER, now=NOW)
    joined = await people.join(session, invite.code, 777001, "新党员", "zh", consent=True, now=NOW)
    promote = await create_invite(session, staff, world.branch_a.id, Role.SECRETARY, now=NOW)
    await people.join(session, promote.code, 777001, "新党员", "zh", consent=True, now=NOW)
    await people.set_locale(session, joined.person, "en", via="web")
    p, b = joined.person.id, world.branch_a.id
    assert await rows(session, "membership.add") == [
        (p, "bot", p, b, {"role": "member", "invite_id": invite.id})
    ]
    assert await rows(session, "membership.role") == [
        (p, "bot", p, b, {"role": "secretary", "invite_id": promote.id})
    ]
    assert await rows(session, "person.settings") == [(p, "web", p, None, {"fields": ["locale"]})]


async def test_erasure_keeps_no_personal_data_in_the_log(session, world) -> None:
    await _entry(session, world)
    admin = await world.actor(session, world.admin, via="web")
    await privacy.erase_person(session, admin, world.member_a.id, NOW)
    assert await rows(session, "person.erase") == [(world.admin.id, "web", world.member_a.id, None, {})]
    for r in (await session.scalars(select(AuditEntry))).all():
        audit._check_detail(r.detail)  # ids and field names only, before and after
        assert "张三" not in repr(r.detail)


async def test_the_log_filters_by_channel_and_organization(session, world) -> None:
    await _entry(session, world)  # bot, branch A
    await pairings.record_exemplar(
        session,
        await world.actor(session, world.admin, via="cli"),
        pairings.new_exemplar(org_id=world.branch_b.id, title="样板", year=2026),
    )
    await session.flush()
    admin = await world.actor(session, world.admin, via="web")

    async def actions(**kw) -> list[str]:
        return [e.action for e in (await audit.list_audit(session, admin, **kw)).entries]

    assert await actions(via="bot") == ["entry.log"]
    assert await actions(via="cli") == ["exemplar.add"]
    assert await actions(org_id=world.branch_b.id) == ["exemplar.add"]
    assert await actions(org_id=world.committee.id) == ["exemplar.add", "entry.log"]  # its subtree
    assert await actions(org_id=world.other_committee.id) == []
