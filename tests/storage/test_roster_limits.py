"""Roster files with bounded work: limits checked before parsing (the zip's unpacked sizes, the
sheet's declared dimension), every row counted (empty ones too), a time limit, and CSVs in
another encoding refused instead of imported as garbage."""

from __future__ import annotations

import asyncio
import time

import pytest

from content.i18n import catalog
from storage.errors import Refused
from storage.roster import MAX_ROWS, parse_roster, parse_roster_off_loop
from tests.storage.hostile_files import huge_shared_strings, million_spaces, wide_roster, xlsx


def refusal(data: bytes, filename: str, **kw: float) -> tuple[str, float]:
    started = time.perf_counter()
    with pytest.raises(Refused) as e:
        parse_roster(data, filename, **kw)
    assert e.value.key in catalog("zh") and e.value.key in catalog("en")
    return e.value.key, time.perf_counter() - started


def test_a_million_rows_of_one_space_are_refused_from_the_zips_directory() -> None:
    data = million_spaces()
    assert len(data) < 100 * 1024
    key, seconds = refusal(data, "名册.xlsx")
    print(f"\nmillion rows of one space ({len(data) // 1024} KB): refused in {seconds:.2f} s")
    assert key == "roster.unpacks_too_big" and seconds < 5


def test_huge_shared_strings_are_refused_before_they_are_read() -> None:
    key, seconds = refusal(huge_shared_strings(), "名册.xlsx")
    assert key == "roster.unpacks_too_big" and seconds < 5


def test_every_row_counts_even_empty_ones() -> None:
    """100 000 rows of one space unpack to little; reading stops at the row limit."""
    data = xlsx(
        b'<row><c t="s"><v>0</v></c></row>' + b'<row><c t="s"><v>1</v></c></row>' * 100_000, ["姓名", " "]
    )
    key, seconds = refusal(data, "名册.xlsx")
    assert key == "roster.too_many_rows" and seconds < 10  # not the 100 000 rows (busy machine: generous)


def test_a_sheet_declaring_a_million_rows_is_refused_unread() -> None:
    data = xlsx(b'<row r="1"><c r="A1" t="s"><v>0</v></c></row>', ["姓名"], dimension="A1:A1000000")
    assert refusal(data, "名册.xlsx")[0] == "roster.too_many_rows"


def test_a_csv_of_empty_lines_is_refused_at_the_row_limit() -> None:
    key, _ = refusal("姓名\n".encode() + b" \n" * (MAX_ROWS * 10), "名册.csv")
    assert key == "roster.too_many_rows"


def test_reading_stops_at_the_deadline() -> None:
    key, seconds = refusal(wide_roster(600), "名册.xlsx", deadline=time.monotonic() - 1)
    assert key == "roster.too_slow" and seconds < 5


async def test_the_parse_runs_off_the_event_loop_and_is_stopped_in_time() -> None:
    """A legal but heavy roster (2000 rows × 50 columns: seconds of parsing) read with a 0.3 s
    limit: refused in time, and meanwhile the loop keeps ticking."""
    data = wide_roster(2000)
    await parse_roster_off_loop(wide_roster(2), "warm.xlsx")  # the fork server's one-time start
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    with pytest.raises(Refused) as e:
        await parse_roster_off_loop(data, "名册.xlsx", seconds=0.3)
    elapsed = time.perf_counter() - started
    done.set()
    await tick
    assert e.value.key == "roster.too_slow" and elapsed < 5
    assert gaps and max(gaps) < 0.5, max(gaps)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("姓名,角色\n佐藤太郎,党員\n鈴木花子,党員\n高橋一郎,党員\n", "shift_jis"),
        ("姓名,角色\n張偉,黨員\n陳靜,黨員\n黃強,黨員\n", "big5"),
    ],
)
def test_a_csv_in_shift_jis_or_big5_is_refused_with_a_hint(text: str, encoding: str) -> None:
    key, _ = refusal(text.encode(encoding), "名册.csv")
    assert key == "roster.wrong_encoding"
    assert "UTF-8" in catalog("zh")[key] and "UTF-8" in catalog("en")[key]


def test_private_use_characters_are_refused_even_in_utf8() -> None:
    key, _ = refusal("姓名\n张\ue000三\n".encode(), "名册.csv")
    assert key == "roster.wrong_encoding"


def test_gb18030_with_a_few_rare_name_characters_is_still_read() -> None:
    text = "姓名,角色\n张伟,党员\n王喆,党员\n李堃,党员\n刘洋,党员\n陈静,党员\n"
    preview = parse_roster(text.encode("gb18030"), "名册.csv")
    assert [r.name for r in preview.rows] == ["张伟", "王喆", "李堃", "刘洋", "陈静"]
