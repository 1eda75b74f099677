"""Certificates of service hours (志愿服务证明): a member's approved service in a period, as a PDF
with a verification code, stored so that anyone can check it at /verify/<code>.

Only approved entries count. The stored row keeps the name, period, total and the SHA-256 of the
PDF's bytes; the public check shows the name, period and total and nothing else."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from content.i18n import texts
from content.pack import Pack
from storage import audit
from storage.access import Actor
from storage.certificate_pdf import CertificateData, CertificateLine, render_certificate
from storage.errors import NotFound, Refused
from storage.models import Certificate, EntryStatus, Org, Person, ServiceEntry

CODE_LENGTH = 16


def new_code() -> str:
    """16 letters and digits (base32, no 0/1/8/9 to misread), easy to type from paper."""
    return base64.b32encode(secrets.token_bytes(10)).decode()[:CODE_LENGTH]


async def certificate_lines(
    s: AsyncSession, person_id: int, date_from: date, date_to: date, pack: Pack, locale: str
) -> list[CertificateLine]:
    """The person's approved service in the period, by day."""
    reviewer = aliased(Person)
    rows = await s.execute(
        select(
            ServiceEntry.day,
            ServiceEntry.action,
            ServiceEntry.description,
            ServiceEntry.place,
            ServiceEntry.minutes,
            func.coalesce(ServiceEntry.organizer, Org.name),
            reviewer.name,
        )
        .join(Org, Org.id == ServiceEntry.org_id)
        .outerjoin(reviewer, reviewer.id == ServiceEntry.reviewer_id)
        .where(
            ServiceEntry.person_id == person_id,
            ServiceEntry.status == EntryStatus.APPROVED,
            ServiceEntry.day >= date_from,
            ServiceEntry.day <= date_to,
        )
        .order_by(ServiceEntry.day, ServiceEntry.id)
    )
    out = []
    for day, action, desc, place, minutes, organizer, approver in rows:
        act = pack.action(action)
        out.append(
            CertificateLine(
                day,
                act.title.get(locale) if act else action,
                desc,
                place or "",
                minutes,
                organizer,
                approver or "",
            )
        )
    return out


async def issue_certificate(
    s: AsyncSession,
    actor: Actor,
    date_from: date,
    date_to: date,
    *,
    now: datetime,
    pack: Pack,
    locale: str,
    verify_base: str,
) -> tuple[Certificate, bytes]:
    """The actor's own certificate for the period: the PDF's bytes and the stored row."""
    if date_from > date_to:
        raise Refused("certificate.bad_period")
    person = await s.get(Person, actor.person_id)
    if person is None:
        raise NotFound("certificate.none")
    branch_id = actor.home_branch_id()
    branch = await s.get(Org, branch_id) if branch_id else None
    lines = await certificate_lines(s, person.id, date_from, date_to, pack, locale)
    if not lines:
        raise Refused("certificate.none", date_from=date_from.isoformat(), date_to=date_to.isoformat())
    data = CertificateData(
        code=new_code(),
        name=person.name,
        branch=branch.name if branch else lines[0].organizer,
        date_from=date_from,
        date_to=date_to,
        lines=lines,
        minutes=sum(ln.minutes for ln in lines),
        issued_at=now,
        timezone=branch.timezone if branch else "Asia/Shanghai",
    )
    # Rendering takes a few seconds of CPU (the CJK font is parsed and subset): off the event loop.
    url = f"{verify_base.rstrip('/')}/verify/{data.code}"
    pdf = await asyncio.to_thread(render_certificate, data, texts(locale).plain, url)
    row = Certificate(
        code=data.code,
        person_id=person.id,
        name=person.name,
        date_from=date_from,
        date_to=date_to,
        minutes=data.minutes,
        entries=len(lines),
        sha256=hashlib.sha256(pdf).hexdigest(),
        locale=locale,
        issued_at=now,
    )
    s.add(row)
    await s.flush()
    await audit.record(
        s,
        actor,
        "certificate.issue",
        subject_person_id=person.id,
        org_id=branch.id if branch else None,
        detail={"certificate_id": row.id, "entries": len(lines)},
        now=now,
    )
    return row, pdf


async def find_certificate(s: AsyncSession, code: str) -> Certificate | None:
    """The certificate with this code, or None (public: the caller shows name, period, total only)."""
    code = "".join(code.split()).upper()
    if not code.isalnum() or len(code) != CODE_LENGTH:
        return None
    return await s.scalar(select(Certificate).where(Certificate.code == code))
