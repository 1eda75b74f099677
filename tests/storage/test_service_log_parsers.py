"""The quick form's pure parsers and the entry schema: examples, edge cases and properties."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from storage.errors import Invalid, Refused
from storage.service_log import (
    DAY_MINUTES,
    ParseError,
    QuickLog,
    looks_like_day,
    new_entry,
    parse_day,
    parse_duration,
    parse_quick_log,
)

TODAY = date(2026, 11, 20)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("2", 120),
        ("1.5", 90),
        ("0.25", 15),
        ("2h", 120),
        ("2H", 120),
        ("2 h", 120),
        ("2hours", 120),
        ("2.5hr", 150),
        ("90m", 90),
        ("90min", 90),
        ("1h30m", 90),
        ("1h30", 90),
        ("1h 30m", 90),
        ("1:30", 90),
        ("1.5小时", 90),
        ("2个小时", 120),
        ("90分钟", 90),
        ("45分", 45),
        ("1小时30分钟", 90),
        ("半小时", 30),
        ("1个半小时", 90),
        ("２．５", 150),  # full-width, as Chinese keyboards type it
        ("24", 1440),
        ("0.01", 1),  # rounds to the nearest minute
        ("1440m", 1440),
    ],
)
def test_duration_examples(text: str, minutes: int) -> None:
    assert parse_duration(text) == minutes


@pytest.mark.parametrize(
    "text", ["", "   ", "abc", "2x", "1.5.5", "-1", "h", "m", "1h75m", "1:75", "1e3", "二"]
)
def test_unreadable_durations(text: str) -> None:
    with pytest.raises(ParseError) as e:
        parse_duration(text)
    assert e.value.key == "log.bad_duration"


@pytest.mark.parametrize("text", ["0", "0h", "0m", "0.001", "25", "24.1", "1441m", "24h1m", "99:00"])
def test_durations_out_of_range(text: str) -> None:
    with pytest.raises(ParseError) as e:
        parse_duration(text)
    assert (e.value.key, e.value.params) == ("log.duration_range", {"max_hours": 24})


def test_parse_error_is_a_refusal_with_a_key() -> None:
    assert issubclass(ParseError, Refused)


def test_control_characters_are_dropped_from_text() -> None:
    assert _entry(description="\x00清扫\x1b楼道\t\n").description == "清扫楼道"


@given(st.integers(1, DAY_MINUTES))
def test_minutes_round_trip_in_every_notation(minutes: int) -> None:
    h, m = divmod(minutes, 60)
    assert parse_duration(f"{minutes}m") == minutes
    assert parse_duration(f"{minutes}分钟") == minutes
    if h:
        assert parse_duration(f"{h}h{m}m") == minutes
        assert parse_duration(f"{h}小时{m}分钟") == minutes
        assert parse_duration(f"{h}:{m:02d}") == minutes
    if minutes % 6 == 0:  # exact in tenths of an hour
        assert parse_duration(f"{minutes / 60:g}") == minutes
        assert parse_duration(f"{minutes / 60:g}h") == minutes


@given(st.text(max_size=30))
@example("1" * 30)
@example("9999.999999")
def test_duration_never_fails_except_with_a_parse_error(text: str) -> None:
    try:
        minutes = parse_duration(text)
    except ParseError as e:
        assert e.key in {"log.bad_duration", "log.duration_range"}
    else:
        assert 1 <= minutes <= DAY_MINUTES


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2026-11-20", date(2026, 11, 20)),
        ("2026/11/2", date(2026, 11, 2)),
        ("2026.1.2", date(2026, 1, 2)),
        ("2026年11月20日", date(2026, 11, 20)),
        ("2026年1月2号", date(2026, 1, 2)),
        ("11-20", date(2026, 11, 20)),
        ("11月19日", date(2026, 11, 19)),
        ("今天", TODAY),
        ("今日", TODAY),
        ("Today", TODAY),
        ("昨天", TODAY - timedelta(days=1)),
        ("yesterday", TODAY - timedelta(days=1)),
        ("前天", TODAY - timedelta(days=2)),
        ("１１－２０", date(2026, 11, 20)),
        ("2030-01-01", date(2030, 1, 1)),  # read as written; the store refuses the future
    ],
)
def test_day_examples(text: str, day: date) -> None:
    assert parse_day(text, TODAY) == day


def test_month_and_day_mean_the_latest_such_day_not_after_today() -> None:
    assert parse_day("12-30", date(2027, 1, 3)) == date(2026, 12, 30)
    assert parse_day("1-3", date(2027, 1, 3)) == date(2027, 1, 3)
    assert parse_day("11-21", TODAY) == date(2025, 11, 21)
    # 29 February: this year if it has one, else the last year that did (only one year back).
    assert parse_day("2-29", date(2025, 1, 10)) == date(2024, 2, 29)


@pytest.mark.parametrize(
    "text", ["", "abc", "2026-02-30", "2026-13-01", "13-01", "2-30", "明天", "11/20/2026"]
)
def test_unreadable_days(text: str) -> None:
    with pytest.raises(ParseError) as e:
        parse_day(text, TODAY)
    assert e.value.key == "log.bad_day"


def test_february_29_with_no_leap_year_in_reach_is_unreadable() -> None:
    with pytest.raises(ParseError):
        parse_day("2-29", date(2027, 1, 10))


@given(st.dates(date(2000, 1, 1), date(2100, 12, 31)))
def test_iso_days_round_trip(day: date) -> None:
    assert parse_day(day.isoformat(), TODAY) == day
    assert parse_day(f"{day.year}年{day.month}月{day.day}日", TODAY) == day


@given(st.integers(0, 364), st.dates(date(2001, 1, 1), date(2099, 12, 31)))
def test_month_day_round_trips_within_the_last_year(back: int, today: date) -> None:
    day = today - timedelta(days=back)
    assume(not (day.month == 2 and day.day == 29))
    assert parse_day(f"{day.month}-{day.day}", today) == day


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.5 2026-11-20 社区义诊", QuickLog(150, date(2026, 11, 20), "社区义诊")),
        ("2.5 社区义诊", QuickLog(150, TODAY, "社区义诊")),
        ("90m 昨天 清扫 楼道", QuickLog(90, TODAY - timedelta(days=1), "清扫 楼道")),
        ("  1h30m\u3000今天\u3000敬老院 陪伴老人  ", QuickLog(90, TODAY, "敬老院 陪伴老人")),
        ("2 2026 年终总结", QuickLog(120, TODAY, "2026 年终总结")),  # a year alone is no date
        ("2 today visit", QuickLog(120, TODAY, "visit")),
    ],
)
def test_quick_log_examples(text: str, expected: QuickLog) -> None:
    assert parse_quick_log(text, TODAY) == expected


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (None, "log.quick_usage"),
        ("", "log.quick_usage"),
        ("2.5", "log.quick_usage"),
        ("2.5 今天", "log.quick_usage"),
        ("2.5 今天   ", "log.quick_usage"),
        ("社区义诊 2", "log.bad_duration"),
        ("0 今天 清扫", "log.duration_range"),
        ("25 今天 清扫", "log.duration_range"),
        ("2 2026-02-30 清扫", "log.bad_day"),  # a mistyped date is not a description
        ("2 " + "长" * 501, "log.description_too_long"),
    ],
)
def test_quick_log_refusals(text: str | None, key: str) -> None:
    with pytest.raises(ParseError) as e:
        parse_quick_log(text, TODAY)
    assert e.value.key == key


_words = st.text(alphabet=st.sampled_from("社区义诊清扫楼道敬老院abcXYZ"), min_size=1, max_size=8).filter(
    lambda w: not looks_like_day(w)
)


@given(
    st.integers(1, DAY_MINUTES),
    st.one_of(st.none(), st.integers(0, 89)),
    st.lists(_words, min_size=1, max_size=5),
)
def test_quick_log_round_trip(minutes: int, back: int | None, words: list[str]) -> None:
    description = " ".join(words)
    day_text = "" if back is None else f" {(TODAY - timedelta(days=back)).isoformat()}"
    got = parse_quick_log(f"{minutes}m{day_text} {description}", TODAY)
    assert got == QuickLog(minutes, TODAY - timedelta(days=back or 0), description)


@given(st.text(max_size=60))
def test_quick_log_never_fails_except_with_a_parse_error(text: str) -> None:
    try:
        got = parse_quick_log(text, TODAY)
    except ParseError:
        return
    assert 1 <= got.minutes <= DAY_MINUTES
    assert got.description == got.description.strip() and got.description


# --------------------------------------------------------------------------------------------
# The entry schema


def _entry(**kw):
    data = {"day": TODAY, "minutes": 60, "action": "volunteer", "description": "清扫"}
    data.update(kw)
    return new_entry(**data)


@given(st.integers(-(10**6), 10**6))
def test_entry_minutes_must_be_within_a_day(minutes: int) -> None:
    if 1 <= minutes <= DAY_MINUTES:
        assert _entry(minutes=minutes).minutes == minutes
    else:
        with pytest.raises(Invalid) as e:
            _entry(minutes=minutes)
        assert (e.value.key, e.value.params["field"]) == ("log.bad_minutes", "minutes")


@given(st.text(max_size=600))
@example("\x1f")  # invisible only: empty, not a description
@example("清扫\x00楼道\n")
def test_entry_description_is_stripped_and_1_to_500(text: str) -> None:
    stripped = "".join(c for c in text if c in "\n\t" or not (ord(c) < 32 or ord(c) == 127)).strip()
    if 1 <= len(stripped) <= 500:
        assert _entry(description=text).description == stripped
    else:
        with pytest.raises(Invalid) as e:
            _entry(description=text)
        assert e.value.key == "log.bad_description"


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("place", "地" * 101, "log.bad_place"),
        ("organizer", "o" * 201, "error.invalid"),
        ("person_in_charge", "p" * 101, "error.invalid"),
        ("evidence_file_id", "f" * 201, "error.invalid"),
        ("day", "not a day", "error.invalid"),
        ("action", "", "log.unknown_action"),
        ("surprise", 1, "error.invalid"),
    ],
)
def test_entry_refuses_bad_fields(field: str, value: object, key: str) -> None:
    with pytest.raises(Invalid) as e:
        _entry(**{field: value})
    assert e.value.key == key
