"""The authorization matrix: every operation of the people/org/privacy store, for each role,
on something inside and something outside the actor's scope.

Inside means branch A (or its committee, or member A); outside means branch C (the other
committee's, or member C). A refused operation writes nothing, not even an audit row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from content.pack import get_pack
from storage.access import Actor
from storage.audit import list_audit
from storage.errors import Forbidden, NotFound
from storage.exports import export_service_records
from storage.invites import create_invite
from storage.models import AuditEntry, Invite, Org, Person
from storage.orgs import add_org, get_org, subtree_ids
from storage.people import import_roster, list_members
from storage.privacy import erase_person, export_person
from tests.factories import World

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
ROLES = {"member": "member_a", "secretary": "secretary_a", "staff": "staff", "admin": "admin"}


def _roster() -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows([["姓名"], ["新党员"]])
    return buf.getvalue().encode()


def _branch(w: World, where: str) -> Org:
    return w.branch_a if where == "in" else w.branch_c


def _person(w: World, where: str) -> Person:
    # A member's own record is "inside" for them; for managers, a member of branch A.
    return w.member_a if where == "in" else w.member_c


Op = Callable[[object, World, Actor, str, str], Awaitable[object]]

OPS: dict[str, Op] = {
    "add_org": lambda s, w, a, where, role: add_org(
        s, a, "新支部", "branch", (w.committee if where == "in" else w.other_committee).id, pack=PACK
    ),
    "get_org": lambda s, w, a, where, role: get_org(s, a, _branch(w, where).id),
    "subtree_ids": lambda s, w, a, where, role: subtree_ids(s, a, _branch(w, where).id),
    "list_members": lambda s, w, a, where, role: list_members(s, a, _branch(w, where).id),
    "create_invite": lambda s, w, a, where, role: create_invite(
        s, a, _branch(w, where).id, "member", now=NOW
    ),
    "import_roster": lambda s, w, a, where, role: import_roster(
        s, a, _branch(w, where).id, _roster(), "r.csv", now=NOW
    ),
    "export_records": lambda s, w, a, where, role: export_service_records(
        s, a, _branch(w, where).id, date(2026, 1, 1), date(2026, 12, 31), "csv", pack=PACK
    ),
    "export_person": lambda s, w, a, where, role: export_person(s, a, _person(w, where).id),
    "erase_person": lambda s, w, a, where, role: erase_person(s, a, _person(w, where).id, NOW),
    "list_audit": lambda s, w, a, where, role: list_audit(s, a),
}

OK, NO, HIDDEN = "ok", Forbidden, NotFound
#                  member     secretary   staff       admin      (inside, outside)
EXPECTED: dict[str, dict[str, tuple[object, object]]] = {
    "add_org": {"member": (NO, NO), "secretary": (NO, NO), "staff": (OK, NO), "admin": (OK, OK)},
    "get_org": {"member": (OK, HIDDEN), "secretary": (OK, HIDDEN), "staff": (OK, HIDDEN), "admin": (OK, OK)},
    "subtree_ids": {
        "member": (OK, HIDDEN),
        "secretary": (OK, HIDDEN),
        "staff": (OK, HIDDEN),
        "admin": (OK, OK),
    },
    "list_members": {"member": (NO, NO), "secretary": (OK, NO), "staff": (OK, NO), "admin": (OK, OK)},
    "create_invite": {"member": (NO, NO), "secretary": (OK, NO), "staff": (OK, NO), "admin": (OK, OK)},
    "import_roster": {"member": (NO, NO), "secretary": (OK, NO), "staff": (OK, NO), "admin": (OK, OK)},
    "export_records": {"member": (NO, NO), "secretary": (OK, NO), "staff": (OK, NO), "admin": (OK, OK)},
    # Only the person themselves or an admin: not the secretary, not staff.
    "export_person": {"member": (OK, NO), "secretary": (NO, NO), "staff": (NO, NO), "admin": (OK, OK)},
    "erase_person": {"member": (OK, NO), "secretary": (NO, NO), "staff": (NO, NO), "admin": (OK, OK)},
    # The log has no "outside" target: staff read it scoped (tested in test_audit.py).
    "list_audit": {"member": (NO, NO), "secretary": (NO, NO), "staff": (OK, OK), "admin": (OK, OK)},
}

CASES = [
    pytest.param(op, role, where, EXPECTED[op][role][i], id=f"{op}-{role}-{where}")
    for op in OPS
    for role in ROLES
    for i, where in enumerate(("in", "out"))
]


async def _footprint(s) -> tuple[int, ...]:
    return tuple(
        [await s.scalar(select(func.count()).select_from(m)) for m in (Org, Person, Invite, AuditEntry)]
    )


@pytest.mark.parametrize(("op", "role", "where", "expected"), CASES)
async def test_authorization_matrix(session, world, op, role, where, expected) -> None:
    actor = await world.actor(session, getattr(world, ROLES[role]), via="web")
    before = await _footprint(session)
    if expected == OK:
        await OPS[op](session, world, actor, where, role)
    else:
        with pytest.raises(expected):
            await OPS[op](session, world, actor, where, role)
        assert await _footprint(session) == before


def test_the_matrix_covers_every_operation_role_and_scope() -> None:
    assert set(EXPECTED) == set(OPS)
    assert all(set(v) == set(ROLES) for v in EXPECTED.values())
    assert len(CASES) == len(OPS) * len(ROLES) * 2
