"""Telegram's formatted text (text + entities, as the Bot API front parsed the bot's HTML) to
DingTalk markdown, with everything the person wrote escaped so it shows as typed."""

from __future__ import annotations

import re
from typing import Any

# Characters DingTalk's markdown would read as markup; a backslash makes them plain. Dashes,
# dots and brackets are left alone: dates and "1. " lists in the bot's texts must read naturally.
_SPECIAL = re.compile(r"([\\`*_\[\]#|>~<])")

# entity type -> (opening, closing) markdown
_WRAP: dict[str, tuple[str, str]] = {
    "bold": ("**", "**"),
    "italic": ("*", "*"),
    "underline": ("**", "**"),  # no underline in DingTalk markdown: bold is the closest stress
    "strikethrough": ("~~", "~~"),
    "code": ("`", "`"),
    "spoiler": ("", ""),
    "blockquote": ("> ", ""),
    "expandable_blockquote": ("> ", ""),
}


def escape(text: str) -> str:
    """Plain text that DingTalk's markdown shows as is; line breaks stay line breaks."""
    return _SPECIAL.sub(r"\\\1", text).replace("\n", "  \n")


def to_markdown(text: str | None, entities: list[dict[str, Any]] | None = None) -> str:
    """Telegram text with entities (offsets in UTF-16 code units) -> DingTalk markdown."""
    if not text:
        return ""
    units = text.encode("utf-16-le")

    def part(start: int, end: int) -> str:
        return units[start * 2 : end * 2].decode("utf-16-le")

    opens: dict[int, list[str]] = {}
    closes: dict[int, list[str]] = {}
    code_ranges: list[tuple[int, int]] = []
    for e in sorted(entities or [], key=lambda e: (e["offset"], -e["length"])):
        start, end, kind = e["offset"], e["offset"] + e["length"], e["type"]
        if kind == "text_link":
            opens.setdefault(start, []).append("[")
            closes.setdefault(end, []).insert(0, f"]({_url(e.get('url', ''))})")
        elif kind == "pre":
            opens.setdefault(start, []).append("\n```\n")
            closes.setdefault(end, []).insert(0, "\n```\n")
            code_ranges.append((start, end))
        elif kind in _WRAP:
            left, right = _WRAP[kind]
            opens.setdefault(start, []).append(left)
            closes.setdefault(end, []).insert(0, right)
            if kind == "code":
                code_ranges.append((start, end))
    out: list[str] = []
    cuts = sorted({0, len(units) // 2, *opens, *closes})
    for i, at in enumerate(cuts):
        out.extend(closes.get(at, []))
        out.extend(opens.get(at, []))
        if i + 1 < len(cuts):
            chunk = part(at, cuts[i + 1])
            in_code = any(s <= at < e for s, e in code_ranges)
            out.append(chunk if in_code else escape(chunk))
    return "".join(out)


def _url(url: str) -> str:
    # A ")" or space would end the link early in markdown.
    return url.replace(" ", "%20").replace(")", "%29")
