"""Telegram text + entities -> DingTalk markdown."""

from __future__ import annotations

from bridge.dingtalk.markdown import escape, to_markdown


def test_what_people_typed_is_escaped() -> None:
    assert escape("a*b_c [x] #1 <tag>") == r"a\*b\_c \[x\] \#1 \<tag\>"
    assert escape("2026-12-06, 1. 第一项") == "2026-12-06, 1. 第一项"


def test_line_breaks_stay() -> None:
    assert to_markdown("一\n二") == "一  \n二"


def test_bold_italic_code_and_links() -> None:
    text = "姓名 张三 *号 链接 code"
    entities = [
        {"type": "bold", "offset": 0, "length": 2},
        {"type": "italic", "offset": 3, "length": 2},
        {"type": "text_link", "offset": 9, "length": 2, "url": "https://example.org/a b"},
        {"type": "code", "offset": 12, "length": 4},
    ]
    assert to_markdown(text, entities) == "**姓名** *张三* \\*号 [链接](https://example.org/a%20b) `code`"


def test_offsets_count_utf16_units() -> None:
    # 👍 is two UTF-16 units: the bold that follows must still land on "好".
    assert to_markdown("👍好", [{"type": "bold", "offset": 2, "length": 1}]) == "👍**好**"


def test_nested_entities_close_in_order() -> None:
    entities = [{"type": "bold", "offset": 0, "length": 4}, {"type": "italic", "offset": 0, "length": 2}]
    assert to_markdown("abcd", entities) == "***ab*cd**"
