"""The chat forms' pure helpers."""

from __future__ import annotations

from datetime import date

import pytest

from content.i18n import texts
from handlers.kit.forms import (
    check_day,
    check_entry_field,
    duration_text,
    hours_1dp,
    months_later,
    pack_messages,
    parse_deadline,
    short,
)
from storage.errors import Invalid, Refused

TODAY = date(2026, 11, 28)


def test_check_day_allows_today_and_the_window() -> None:
    check_day(TODAY, TODAY, 90)
    check_day(date(2026, 8, 30), TODAY, 90)


@pytest.mark.parametrize(
    ("day", "key"), [(date(2026, 11, 29), "log.future_date"), (date(2026, 8, 29), "log.too_old")]
)
def test_check_day_refuses_like_the_store(day: date, key: str) -> None:
    with pytest.raises(Refused) as e:
        check_day(day, TODAY, 90)
    assert e.value.key == key


def test_check_entry_field_cleans_and_refuses() -> None:
    assert check_entry_field("place", "  城东\x07社区 ") == "城东社区"
    assert check_entry_field("place", "") == ""
    with pytest.raises(Invalid) as e:
        check_entry_field("place", "地" * 101)
    assert e.value.key == "log.bad_place"
    with pytest.raises(Invalid) as e:
        check_entry_field("description", " \n ")
    assert e.value.key == "log.bad_description"
    with pytest.raises(ValueError):
        check_entry_field("minutes", "3")


@pytest.mark.parametrize(
    ("minutes", "zh", "en"),
    [
        (120, "2 小时", "2 h"),
        (150, "2.5 小时", "2.5 h"),
        (45, "45 分钟", "45 min"),
        (80, "1 小时 20 分钟", "1 h 20 min"),
    ],
)
def test_duration_text(minutes: int, zh: str, en: str) -> None:
    assert duration_text(texts("zh"), minutes) == zh
    assert duration_text(texts("en"), minutes) == en


def test_hours_with_one_decimal() -> None:
    assert [hours_1dp(m) for m in (0, 80, 150, 1440)] == ["0.0", "1.3", "2.5", "24.0"]


def test_short() -> None:
    assert short("a  b\nc", 10) == "a b c"
    assert short("一二三四五六", 4) == "一二三…"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2027-03-31", date(2027, 3, 31)),
        ("2027/3/1", date(2027, 3, 1)),
        ("2027年3月31日", date(2027, 3, 31)),
        ("１２－３１", date(2026, 12, 31)),
        ("3-31", date(2027, 3, 31)),
        ("11月28日", TODAY),
        ("2025-01-01", date(2025, 1, 1)),  # read as written; the store says it is past
    ],
)
def test_parse_deadline(text: str, want: date) -> None:
    assert parse_deadline(text, TODAY) == want


@pytest.mark.parametrize("text", ["", "明年", "2027-02-30", "13-01", "31"])
def test_parse_deadline_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(Invalid) as e:
        parse_deadline(text, TODAY)
    assert e.value.key == "commit_chat.bad_deadline"


def test_months_later_keeps_the_day_or_takes_the_month_end() -> None:
    assert months_later(TODAY, 3) == date(2027, 2, 28)
    assert months_later(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert months_later(date(2026, 5, 15), 12) == date(2027, 5, 15)


def test_pack_messages_fills_each_message_without_splitting_a_part() -> None:
    assert pack_messages(["aa", "bb", "cc"], limit=6) == ["aa\n\nbb", "cc"]
    assert pack_messages(["a" * 10], limit=5) == ["aaaa…"]
    assert pack_messages([]) == []
    parts = [f"{i}" * 100 for i in range(100)]
    out = pack_messages(parts, limit=1000)
    assert all(len(m) <= 1000 for m in out) and "\n\n".join(out) == "\n\n".join(parts)
