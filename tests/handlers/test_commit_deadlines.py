"""The deadline step offers each date once and only dates after today."""

from __future__ import annotations

from datetime import date

from content.i18n import texts
from content.pack import get_pack
from handlers.commitments import deadline_prompt


def _dates(today: date, template_id: str | None) -> list[str]:
    data = {"wid": 1, "template_id": template_id}
    _, markup = deadline_prompt(texts("zh"), get_pack(), "zh", today, data)
    days = [b.callback_data.rsplit(":", 1)[-1] for row in markup.inline_keyboard for b in row]
    return [d for d in days if d != "cancel"]


def test_a_suggestion_on_the_years_last_day_is_offered_once() -> None:
    # 90 days after 2 October is 31 December, the year's end.
    dates = _dates(date(2026, 10, 2), "volunteer_monthly")
    assert dates.count("2026-12-31") == 1
    assert len(dates) == len(set(dates)) == 4
    assert dates[0] == "2026-12-31"  # the suggestion stays first


def test_late_in_december_the_years_end_comes_before_a_month_from_now() -> None:
    dates = _dates(date(2026, 12, 6), None)
    assert dates == sorted(dates) and dates[0] == "2026-12-31"


def test_on_the_years_last_day_its_end_is_not_offered() -> None:
    dates = _dates(date(2026, 12, 31), None)
    assert "2026-12-31" not in dates and len(dates) == 3
