"""Message text formatting as Telegram does it: parse_mode HTML / MarkdownV2 / Markdown into
plain text plus MessageEntity dicts, whitespace trimming, and the entities Telegram detects
on its own in what people type (bot commands, mentions, hashtags, links, e-mails).

Offsets and lengths of entities are in UTF-16 code units, as in the Bot API. Parse errors
carry tdlib's wording ("Unsupported start tag "x" at byte offset 3"); the caller prefixes
"Bad Request: can't parse entities: ".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Trimmed from both ends of every message text and caption (tdlib trims these too).
_TRIM = " \t\n\r\v\f"


class ParseError(ValueError):
    """A formatting error, worded as Telegram words it."""


class UnsupportedParseMode(ValueError):
    pass


@dataclass
class Formatted:
    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)

    @property
    def length(self) -> int:
        """Length in characters (code points), the unit of Telegram's 4096/1024 limits."""
        return len(self.text)


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def format_text(text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None) -> Formatted:
    """Apply parse_mode (or take explicit entities), then trim surrounding whitespace."""
    mode = (parse_mode or "").lower()
    if not mode:
        result = Formatted(text, [dict(e) for e in entities or ()])
        _check_explicit(result)
    elif mode == "html":
        result = parse_html(text)
    elif mode == "markdownv2":
        result = parse_markdown_v2(text)
    elif mode == "markdown":
        result = parse_markdown(text)
    else:
        raise UnsupportedParseMode(parse_mode)
    return trim(result)


def trim(f: Formatted) -> Formatted:
    """Drop leading and trailing whitespace, moving and clipping entities to match."""
    stripped = f.text.strip(_TRIM)
    if stripped == f.text:
        return f
    lead = utf16_len(f.text[: len(f.text) - len(f.text.lstrip(_TRIM))])
    total = utf16_len(stripped)
    out = []
    for e in f.entities:
        start = max(e["offset"] - lead, 0)
        end = min(e["offset"] + e["length"] - lead, total)
        if end > start:
            out.append({**e, "offset": start, "length": end - start})
    return Formatted(stripped, out)


def _check_explicit(f: Formatted) -> None:
    total = utf16_len(f.text)
    for e in f.entities:
        if e.get("offset", -1) < 0 or e.get("length", 0) <= 0 or e["offset"] + e["length"] > total:
            raise ParseError(f"entity {e.get('type')!r} does not fit into the text")


def _sorted(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


# -- HTML ---------------------------------------------------------------------------------------

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "tg-time": "date_time",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_SPACE = " \t\r\n\v\0"


def _decode_entity(text: str, i: int) -> tuple[str, int] | None:
    """`&...;` at text[i] -> (character, index after ';'), or None to keep '&' literally
    (Telegram keeps a bare ampersand; only lt, gt, amp, quot and numeric entities decode)."""
    end = text.find(";", i + 1, i + 12)
    if end < 0:
        return None
    body = text[i + 1 : end]
    if body.startswith("#"):
        hexadecimal = body[1:2] in ("x", "X")
        digits = body[2:] if hexadecimal else body[1:]
        allowed = "0123456789abcdefABCDEF" if hexadecimal else "0123456789"
        if not digits or any(c not in allowed for c in digits):
            return None
        code = int(digits, 16 if hexadecimal else 10)
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        return chr(code), end + 1
    if body in _NAMED_ENTITIES:
        return _NAMED_ENTITIES[body], end + 1
    return None


def _byte_offset(text: str, i: int) -> int:
    return len(text[:i].encode())


@dataclass
class _Open:
    tag: str
    attrs: dict[str, str]
    offset: int  # UTF-16 offset in the result
    result_pos: int  # index in the result string (for <a> without href)


def parse_html(text: str) -> Formatted:
    """Telegram's HTML subset, following tdlib's parser (and its error messages)."""
    out: list[str] = []
    u16 = 0
    entities: list[dict[str, Any]] = []
    stack: list[_Open] = []
    n = len(text)
    i = 0

    def at(j: int) -> str:
        return text[j] if j < n else "\0"

    while i < n:
        c = text[i]
        if c == "&":
            decoded = _decode_entity(text, i)
            if decoded:
                out.append(decoded[0])
                u16 += utf16_len(decoded[0])
                i = decoded[1]
                continue
        if c != "<":
            out.append(c)
            u16 += 2 if ord(c) > 0xFFFF else 1
            i += 1
            continue
        begin = i
        pos = _byte_offset(text, begin)
        i += 1
        if at(i) != "/":
            while at(i) not in _HTML_SPACE and at(i) != ">":
                i += 1
            if i >= n:
                raise ParseError(f"Unclosed start tag at byte offset {pos}")
            tag = text[begin + 1 : i].lower()
            if tag not in _HTML_TAGS:
                raise ParseError(f'Unsupported start tag "{tag}" at byte offset {pos}')
            attrs: dict[str, str] = {}
            while at(i) != ">":
                while i < n and at(i) in _HTML_SPACE:
                    i += 1
                if at(i) == ">":
                    break
                name_start = i
                while at(i) not in _HTML_SPACE and at(i) not in "=>":
                    i += 1
                name = text[name_start:i]
                if not name:
                    raise ParseError(f'Empty attribute name in the tag "{tag}" at byte offset {pos}')
                while i < n and at(i) in _HTML_SPACE:
                    i += 1
                if at(i) != "=":
                    if tag == "blockquote" and name == "expandable":
                        attrs[name] = ""  # a flag attribute, the only one Telegram allows
                        continue
                    raise ParseError(
                        f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                        f"at byte offset {pos}"
                    )
                i += 1
                while i < n and at(i) in _HTML_SPACE:
                    i += 1
                if i >= n:
                    raise ParseError(f'Unclosed start tag "{tag}" at byte offset {pos}')
                if at(i) not in "'\"":
                    token_start = i
                    while at(i).isascii() and (at(i).isalnum() or at(i) in ".-"):
                        i += 1
                    value = text[token_start:i].lower()
                    if at(i) not in _HTML_SPACE and at(i) != ">":
                        raise ParseError(
                            f"Unexpected end of name token at byte offset {_byte_offset(text, token_start)}"
                        )
                else:
                    quote = text[i]
                    i += 1
                    chars = []
                    while i < n and text[i] != quote:
                        if text[i] == "&" and (decoded := _decode_entity(text, i)):
                            chars.append(decoded[0])
                            i = decoded[1]
                            continue
                        chars.append(text[i])
                        i += 1
                    value = "".join(chars)
                    if i < n:
                        i += 1
                if i >= n:
                    raise ParseError(f"Unclosed start tag at byte offset {pos}")
                attrs[name.lower()] = value
            if tag == "span" and attrs.get("class") != "tg-spoiler":
                raise ParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {pos}')
            stack.append(_Open(tag, attrs, u16, len(out)))
            i += 1
            continue
        # an end tag
        if not stack:
            raise ParseError(f"Unexpected end tag at byte offset {pos}")
        while at(i) not in _HTML_SPACE and at(i) != ">":
            i += 1
        end_name = text[begin + 2 : i].lower()
        while i < n and at(i) in _HTML_SPACE:
            i += 1
        if at(i) != ">":
            raise ParseError(f"Unclosed end tag at byte offset {pos}")
        i += 1
        top = stack.pop()
        if end_name and end_name != top.tag:
            raise ParseError(
                f'Unmatched end tag at byte offset {pos}, expected "</{top.tag}>", found "</{end_name}>"'
            )
        if u16 > top.offset:
            entity = _html_entity(top, u16 - top.offset, "".join(out[top.result_pos :]), entities)
            if entity:
                entities.append(entity)
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    for e in entities:
        e.pop("_language", None)
    return Formatted("".join(out), _sorted(entities))


def _html_entity(
    top: _Open, length: int, inner: str, entities: list[dict[str, Any]]
) -> dict[str, Any] | None:
    kind = _HTML_TAGS[top.tag]
    e: dict[str, Any] = {"type": kind, "offset": top.offset, "length": length}
    if kind == "text_link":
        url = top.attrs.get("href") or inner
        m = re.fullmatch(r"tg://user\?id=(\d+)", url)
        if m:
            return {**e, "type": "text_mention", "user": {"id": int(m[1]), "is_bot": False, "first_name": ""}}
        if not _looks_like_url(url):
            return None  # Telegram leaves the text plain when the link is not a URL
        e["url"] = url
    elif kind == "code":
        lang = top.attrs.get("class", "")
        if lang.startswith("language-"):
            e["_language"] = lang.removeprefix("language-")
    elif kind == "pre":
        # <pre><code class="language-x">...</code></pre> is one pre entity with a language.
        last = entities[-1] if entities else None
        if last and last["type"] == "code" and last["offset"] == top.offset and last["length"] == length:
            entities.pop()
            if last.get("_language"):
                e["language"] = last["_language"]
    elif kind == "blockquote" and "expandable" in top.attrs:
        e["type"] = "expandable_blockquote"
    elif kind == "custom_emoji":
        if not top.attrs.get("emoji-id"):
            return None
        e["custom_emoji_id"] = top.attrs["emoji-id"]
    elif kind == "date_time":
        if not top.attrs.get("unix", "").isdigit():
            return None
        e["unix_time"] = int(top.attrs["unix"])
        if top.attrs.get("format"):
            e["date_time_format"] = top.attrs["format"]
    return e


def _looks_like_url(url: str) -> bool:
    return bool(re.match(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://\S+|[\w-]+(?:\.[\w-]+)+(?:[/?#]\S*)?)$", url))


# -- MarkdownV2 ---------------------------------------------------------------------------------

_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MDV2_NAMES = {
    "italic": "Italic",
    "underline": "Underline",
    "bold": "Bold",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def parse_markdown_v2(text: str) -> Formatted:
    """MarkdownV2: every reserved character outside an entity must be escaped with '\\'.

    Supported: *bold* _italic_ __underline__ ~strike~ ||spoiler|| `code` ```lang pre```
    [text](url) ![emoji](tg://emoji?id=..) and '>' block quotes at line starts.
    """
    out: list[str] = []
    u16 = 0
    entities: list[dict[str, Any]] = []
    # (type, utf16 offset, byte offset of the opening mark, index in `out`, pre language)
    stack: list[tuple[str, int, int, int, str]] = []
    quote_start: int | None = None
    n = len(text)
    i = 0

    def emit(ch: str) -> None:
        nonlocal u16
        out.append(ch)
        u16 += 2 if ord(ch) > 0xFFFF else 1

    def close_quote() -> None:
        nonlocal quote_start
        if quote_start is not None and u16 > quote_start:
            entities.append({"type": "blockquote", "offset": quote_start, "length": u16 - quote_start})
        quote_start = None

    while i < n:
        c = text[i]
        in_code = bool(stack) and stack[-1][0] in ("code", "pre")
        line_start = i == 0 or text[i - 1] == "\n"
        if c == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            emit(text[i + 1])
            i += 2
            continue
        if line_start and not in_code and not stack:
            if c == ">":
                if quote_start is None:
                    quote_start = u16
                i += 1
                continue
            if quote_start is not None:
                # the quote ended with the previous line (its newline belongs to it)
                close_quote()
        if in_code and c != "`":
            emit(c)
            i += 1
            continue
        if c not in _MDV2_RESERVED:
            emit(c)
            i += 1
            continue
        pos = _byte_offset(text, i)
        top = stack[-1][0] if stack else None
        ends = (
            (top == "bold" and c == "*")
            or (top == "italic" and c == "_" and text[i + 1 : i + 2] != "_")
            or (top == "underline" and text[i : i + 2] == "__")
            or (top == "strikethrough" and c == "~")
            or (top == "spoiler" and text[i : i + 2] == "||")
            or (top == "code" and c == "`")
            or (top == "pre" and text[i : i + 3] == "```")
            or (top in ("text_link", "custom_emoji") and c == "]")
        )
        if (
            quote_start is not None
            and not stack
            and text[i : i + 2] == "||"
            and text[i + 2 : i + 3] in ("", "\n")
        ):
            i += 2  # "||" closing an expandable block quote
            continue
        if not ends:
            if c == "_":
                kind, step = ("underline", 2) if text[i + 1 : i + 2] == "_" else ("italic", 1)
            elif c == "*":
                kind, step = "bold", 1
            elif c == "~":
                kind, step = "strikethrough", 1
            elif c == "|" and text[i + 1 : i + 2] == "|":
                kind, step = "spoiler", 2
            elif c == "[":
                kind, step = "text_link", 1
            elif c == "!" and text[i + 1 : i + 2] == "[":
                kind, step = "custom_emoji", 2
            elif c == "`" and text[i : i + 3] == "```":
                kind, step = "pre", 3
            elif c == "`":
                kind, step = "code", 1
            else:
                raise ParseError(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
            i += step
            language = ""
            if kind == "pre":
                nl = text.find("\n", i)
                tick = text.find("`", i)
                if nl >= 0 and (tick < 0 or nl < tick):
                    language = text[i:nl].strip()
                    i = nl + 1
            stack.append((kind, u16, pos, len(out), language))
            continue
        kind, offset, _, start, language = stack.pop()
        i += {"underline": 2, "spoiler": 2, "pre": 3}.get(kind, 1)
        e: dict[str, Any] = {"type": kind, "offset": offset, "length": u16 - offset}
        if kind in ("text_link", "custom_emoji"):
            url = ""
            if text[i : i + 1] == "(":
                j = i + 1
                chars = []
                while j < n and text[j] != ")":
                    if text[j] == "\\" and j + 1 < n:
                        j += 1
                    chars.append(text[j])
                    j += 1
                if j >= n:
                    raise ParseError(f"Can't find end of a URL at byte offset {_byte_offset(text, i)}")
                url = "".join(chars)
                i = j + 1
            if kind == "custom_emoji":
                m = re.fullmatch(r"tg://emoji\?id=(\d+)", url)
                if not m:
                    raise ParseError(
                        f"Custom emoji entity must contain a tg://emoji URL at byte offset {offset}"
                    )
                e["custom_emoji_id"] = m[1]
            else:
                url = url or "".join(out[start:])  # [text] alone links to its own text
                if not _looks_like_url(url):
                    continue
                e["url"] = url
        if kind == "pre" and language:
            e["language"] = language
        if e["length"] > 0:
            entities.append(e)
    if stack:
        kind, _, pos, _, _ = stack[-1]
        raise ParseError(f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset {pos}")
    close_quote()
    return Formatted("".join(out), _sorted(entities))


# -- legacy Markdown ----------------------------------------------------------------------------

_MD_KINDS = {"*": "bold", "_": "italic", "`": "code", "[": "text_link"}


def parse_markdown(text: str) -> Formatted:
    """Legacy Markdown: *bold* _italic_ `code` ```pre``` [text](url); no nesting."""
    out: list[str] = []
    u16 = 0
    entities: list[dict[str, Any]] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "\\" and text[i + 1 : i + 2] in ("_", "*", "`", "["):
            out.append(text[i + 1])
            u16 += 1
            i += 2
            continue
        if c not in _MD_KINDS:
            out.append(c)
            u16 += utf16_len(c)
            i += 1
            continue
        pos = _byte_offset(text, i)
        kind = _MD_KINDS[c]
        closer = "]" if c == "[" else c
        i += 1
        language = ""
        if text[i - 1 : i + 2] == "```":
            kind, closer = "pre", "```"
            i += 2
            nl = text.find("\n", i)
            tick = text.find("`", i)
            if nl >= 0 and (tick < 0 or nl < tick):
                language = text[i:nl].strip()
                i = nl + 1
        end = text.find(closer, i)
        if end < 0:
            raise ParseError(f"Can't find end of the entity starting at byte offset {pos}")
        inner = text[i:end]
        i = end + len(closer)
        e: dict[str, Any] = {"type": kind, "offset": u16, "length": utf16_len(inner)}
        if kind == "text_link":
            url = ""
            if text[i : i + 1] == "(":
                close = text.find(")", i)
                if close < 0:
                    raise ParseError(f"Can't find end of a URL at byte offset {_byte_offset(text, i)}")
                url = text[i + 1 : close]
                i = close + 1
            if _looks_like_url(url):
                e["url"] = url
            else:
                e = {}
        if kind == "pre" and language:
            e["language"] = language
        out.append(inner)
        u16 += utf16_len(inner)
        if e and e["length"] > 0:
            entities.append(e)
    return Formatted("".join(out), _sorted(entities))


# -- entities Telegram finds in typed text ------------------------------------------------------

_AUTO = re.compile(
    r"(?P<url>\bhttps?://[^\s<>\"]+[^\s<>\".,;:!?)\]'])"
    r"|(?P<email>\b[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
    r"|(?P<bot_command>(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/]))"
    r"|(?P<mention>(?<![\w@])@[A-Za-z0-9_]{3,32}(?!\w))"
    r"|(?P<hashtag>(?<![\w#])#\w*[^\W\d]\w*)"
)


def detect(text: str) -> list[dict[str, Any]]:
    """Entities Telegram adds to a message a person typed: bot_command, mention, hashtag,
    url, email (simplified patterns; enough for `/log 2 today` and deep links)."""
    out = []
    for m in _AUTO.finditer(text):
        kind = m.lastgroup
        assert kind is not None
        out.append({"type": kind, "offset": utf16_len(text[: m.start()]), "length": utf16_len(m[0])})
    return out
