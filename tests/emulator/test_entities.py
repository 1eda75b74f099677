"""Telegram formatting: HTML, MarkdownV2 and Markdown parsing, trimming, entity detection."""

from __future__ import annotations

import pytest

from emulator.entities import ParseError, UnsupportedParseMode, detect, format_text, utf16_len


def test_html_gives_plain_text_and_entities_with_decoded_character_references():
    f = format_text(
        '<b>你好</b> &lt;x&gt; &amp; &quot; &#39; &#x1F600; <a href="https://e.org/?a=1&amp;b=2">l</a>',
        "HTML",
        None,
    )
    assert f.text == "你好 <x> & \" ' 😀 l"
    assert f.entities == [
        {"type": "bold", "offset": 0, "length": 2},
        {"type": "text_link", "offset": 16, "length": 1, "url": "https://e.org/?a=1&b=2"},
    ]


def test_html_tags_map_to_entity_types_and_nest():
    f = format_text(
        "<strong>a<i>b</i></strong><em>c</em><u>d</u><ins>e</ins><s>f</s><del>g</del><strike>h</strike>"
        '<tg-spoiler>i</tg-spoiler><span class="tg-spoiler">j</span><code>k</code>'
        '<pre><code class="language-python">l</code></pre><blockquote>m</blockquote>'
        "<blockquote expandable>n</blockquote>",
        "html",
        None,
    )
    assert f.text == "abcdefghijklmn"
    kinds = [(e["type"], e["offset"]) for e in f.entities]
    assert kinds == [
        ("bold", 0), ("italic", 1), ("italic", 2), ("underline", 3), ("underline", 4),
        ("strikethrough", 5), ("strikethrough", 6), ("strikethrough", 7), ("spoiler", 8), ("spoiler", 9),
        ("code", 10), ("pre", 11), ("blockquote", 12), ("expandable_blockquote", 13),
    ]  # fmt: skip
    assert f.entities[11]["language"] == "python"


def test_html_bare_ampersand_and_unknown_named_entity_stay_literal():
    assert format_text("a & b &nbsp; c", "HTML", None).text == "a & b &nbsp; c"


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("你<b", "Unclosed start tag at byte offset 3"),
        ('<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        (
            "<a href>y</a>",
            'Expected equal sign in declaration of an attribute of the tag "a" at byte offset 0',
        ),
        ("<br/>", 'Unsupported start tag "br/" at byte offset 0'),
    ],
)
def test_malformed_html_is_refused_with_telegrams_message(html, error):
    with pytest.raises(ParseError) as e:
        format_text(html, "HTML", None)
    assert str(e.value) == error


def test_html_link_that_is_not_a_url_leaves_plain_text():
    assert format_text('<a href="not a url">y</a>', "HTML", None).entities == []


def test_offsets_count_utf16_code_units():
    f = format_text("😀<b>x</b>", "HTML", None)
    assert f.entities == [{"type": "bold", "offset": 2, "length": 1}]
    assert utf16_len("😀x") == 3


def test_surrounding_whitespace_is_trimmed_and_entities_follow():
    f = format_text("\n  <b>hi</b> there  \n", "HTML", None)
    assert f.text == "hi there"
    assert f.entities == [{"type": "bold", "offset": 0, "length": 2}]


def test_markdown_v2_entities_and_escapes():
    f = format_text(r"*b* _i_ __u__ ~s~ ||p|| `c` [l](https://a.b) 1\.5\!", "MarkdownV2", None)
    assert f.text == "b i u s p c l 1.5!"
    assert [e["type"] for e in f.entities] == [
        "bold", "italic", "underline", "strikethrough", "spoiler", "code", "text_link",
    ]  # fmt: skip


def test_markdown_v2_pre_with_language_and_block_quote():
    f = format_text("```python\nx = 1```\n>quoted\n>more\nplain", "MarkdownV2", None)
    assert f.text == "x = 1\nquoted\nmore\nplain"
    assert f.entities[0] == {"type": "pre", "offset": 0, "length": 5, "language": "python"}
    assert f.entities[1]["type"] == "blockquote"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("Done.", "Character '.' is reserved and must be escaped with the preceding '\\'"),
        ("2-3", "Character '-' is reserved and must be escaped with the preceding '\\'"),
        ("*bold", "Can't find end of Bold entity at byte offset 0"),
        ("a _b", "Can't find end of Italic entity at byte offset 2"),
    ],
)
def test_markdown_v2_unescaped_reserved_characters_are_refused(text, error):
    with pytest.raises(ParseError) as e:
        format_text(text, "MarkdownV2", None)
    assert str(e.value) == error


def test_legacy_markdown():
    f = format_text("*b* _i_ `c` [t](http://x.y) 1.5", "Markdown", None)
    assert f.text == "b i c t 1.5"
    assert [e["type"] for e in f.entities] == ["bold", "italic", "code", "text_link"]
    with pytest.raises(ParseError, match="Can't find end of the entity starting at byte offset 0"):
        format_text("*open", "Markdown", None)


def test_unknown_parse_mode():
    with pytest.raises(UnsupportedParseMode):
        format_text("x", "BBCode", None)


def test_explicit_entities_must_fit_the_text():
    ok = format_text("hello", None, [{"type": "bold", "offset": 0, "length": 5}])
    assert ok.entities == [{"type": "bold", "offset": 0, "length": 5}]
    with pytest.raises(ParseError):
        format_text("hello", None, [{"type": "bold", "offset": 3, "length": 5}])


def test_detect_finds_commands_with_deep_link_args_mentions_tags_links():
    text = "/start abc /log@my_bot 2 今天 @someone #标签 https://e.org/x. me@x.cn"
    found = {(e["type"], text[e["offset"] : e["offset"] + e["length"]]) for e in detect(text)}
    assert found == {
        ("bot_command", "/start"),
        ("bot_command", "/log@my_bot"),
        ("mention", "@someone"),
        ("hashtag", "#标签"),
        ("url", "https://e.org/x"),
        ("email", "me@x.cn"),
    }


def test_detect_ignores_slashes_inside_words_and_paths():
    assert detect("a/b 1/2") == []
