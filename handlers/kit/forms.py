"""Pure helpers for the chat's forms and wizards: read and check one answer at a time.

A wizard checks each answer as it is given, so the member can fix it on the spot; the store
checks everything again when the form is submitted, and stays the authority on the rules.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from datetime import date
from typing import Any

from content.i18n import Texts
from storage.errors import Invalid, Refused
from storage.service_log import new_entry

# A valid stand-in for every field of a service entry, so one field can be checked on its own.
_ENTRY_STAND_IN: dict[str, Any] = {
    "day": date(2000, 1, 1),
    "minutes": 60,
    "action": "x",
    "place": "",
    "description": "x",
}


def check_day(day: date, today: date, window_days: int) -> None:
    """The service log's day rule (no future days, nothing older than the window), said early."""
    if day > today:
        raise Refused("log.future_date")
    if (today - day).days > window_days:
        raise Refused("log.too_old", days=window_days)


def check_entry_field(field: str, value: str) -> str:
    """`value` as the service entry would store it (cleaned), or `Invalid` with the field's key."""
    if field not in ("place", "description"):
        raise ValueError(f"not a free-text field: {field}")
    entry = new_entry(**{**_ENTRY_STAND_IN, field: value})
    return str(getattr(entry, field))


def duration_text(_: Texts, minutes: int) -> str:
    """2.5 小时 / 45 分钟 / 1 小时 20 分钟: whole and half hours as hours, the rest exactly."""
    if minutes % 30 == 0:
        hours = minutes / 60
        return _("form.hours", hours=f"{hours:g}")
    if minutes < 60:
        return _("form.minutes", minutes=minutes)
    return _("form.hours_minutes", hours=minutes // 60, minutes=minutes % 60)


def hours_1dp(minutes: int) -> str:
    """Hours with one decimal, as reports show them."""
    return f"{minutes / 60:.1f}"


def short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_FULL = re.compile(
    r"^(?P<y>\d{4})(?:[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})|年(?P<m2>\d{1,2})月(?P<d2>\d{1,2})[日号]?)$"
)
_MONTH_DAY = re.compile(r"^(?:(?P<m>\d{1,2})[-/.](?P<d>\d{1,2})|(?P<m2>\d{1,2})月(?P<d2>\d{1,2})[日号]?)$")


def parse_deadline(text: str, today: date) -> date:
    """A commitment's deadline: "2027-03-31", "2027/3/31", "2027年3月31日", or "3-31" / "3月31日"
    meaning the next such day on or after today. Whether it is allowed is the store's rule.
    Raises `Invalid("commit_chat.bad_deadline")`."""
    t = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text or ""))
    if m := _FULL.match(t):
        got = _date(int(m["y"]), int(m["m"] or m["m2"]), int(m["d"] or m["d2"]))
        if got is not None:
            return got
    elif m := _MONTH_DAY.match(t):
        month, day = int(m["m"] or m["m2"]), int(m["d"] or m["d2"])
        for year in (today.year, today.year + 1):
            got = _date(year, month, day)
            if got is not None and got >= today:
                return got
    raise Invalid("commit_chat.bad_deadline", field="deadline", text=(text or "").strip()[:20])


def _date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def months_later(today: date, months: int) -> date:
    """The same day `months` later (the month's last day when it has fewer days)."""
    y, m = divmod(today.month - 1 + months, 12)
    year, month = today.year + y, m + 1
    return date(year, month, min(today.day, calendar.monthrange(year, month)[1]))


MESSAGE_MAX = 3900  # below Telegram's 4096 characters, with room for a header line


def pack_messages(parts: list[str], limit: int = MESSAGE_MAX, sep: str = "\n\n") -> list[str]:
    """Join `parts` into as few messages as fit in `limit` each, never splitting a part
    (a part longer than `limit` is cut, so nothing Telegram would refuse is ever sent)."""
    out: list[str] = []
    current = ""
    for part in parts:
        part = part if len(part) <= limit else part[: limit - 1] + "…"
        if current and len(current) + len(sep) + len(part) > limit:
            out.append(current)
            current = part
        else:
            current = f"{current}{sep}{part}" if current else part
    if current:
        out.append(current)
    return out
