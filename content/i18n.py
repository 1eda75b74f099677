"""Locale catalogs: gettext .po files, one file per area under
content/locales/<locale>/<area>.po. Message ids are keys ("log.recorded"); texts use
str.format placeholders ("{hours}").

Chat texts are HTML (Telegram parse_mode=HTML): `Texts.__call__` escapes every argument, so
a member's name or description can never inject markup. The web renders with Jinja2, which
escapes on its own, so it uses `Texts.plain`.
"""

from __future__ import annotations

import ast
import html
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

LOCALES_DIR = Path(__file__).parent / "locales"
LOCALES = ("zh", "en")
FALLBACK = "zh"


class Raw(str):
    """An argument already in HTML (built from other catalog texts): not escaped again."""

    __slots__ = ()


@lru_cache(maxsize=len(LOCALES))
def catalog(locale: str) -> Mapping[str, str]:
    out: dict[str, str] = {}
    folder = LOCALES_DIR / locale
    for po in sorted(folder.glob("*.po")):
        for key, text in read_po(po):
            if key and text:
                if key in out:
                    raise ValueError(f"{po}: message id {key!r} is defined twice")
                out[key] = text
    return out


def read_po(path: Path) -> list[tuple[str, str]]:
    """(msgid, msgstr) of each message of a .po file as these catalogs are written: `#` comments,
    `msgid` and `msgstr` each a quoted string continued by quoted lines, C escapes. (Babel's
    reader, used before, brought Babel's locale data into every bot process: about 1 MB; the
    tests compare the two on every catalog.)"""
    pairs: list[tuple[str, str]] = []
    field: str | None = None
    parts: dict[str, list[str]] = {}

    def flush() -> None:
        if "msgid" in parts:
            pairs.append(("".join(parts["msgid"]), "".join(parts.get("msgstr", []))))
        parts.clear()

    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword in ("msgid", "msgstr"):
            if keyword == "msgid":
                flush()
            field, line = keyword, rest.strip()
        if field is None or not (len(line) >= 2 and line[0] == line[-1] == '"'):
            raise ValueError(f"{path}:{n}: not a line of a .po file as written here: {raw!r}")
        parts.setdefault(field, []).append(ast.literal_eval(line))
    flush()
    return pairs


def placeholders(text: str) -> set[str]:
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(text) if name}


def normalize_locale(code: str | None, default: str = FALLBACK) -> str:
    if not code:
        return default
    code = code.lower().replace("_", "-")
    base = code.split("-")[0]
    return base if base in LOCALES else default


@dataclass(frozen=True, slots=True)
class Texts:
    locale: str

    def template(self, key: str) -> str:
        text = catalog(self.locale).get(key)
        if text is None and self.locale != FALLBACK:
            text = catalog(FALLBACK).get(key)
        return text if text is not None else key

    def __call__(self, key: str, **params: Any) -> str:
        safe = {
            k: v if isinstance(v, Raw | int | float) else html.escape(str(v), quote=False)
            for k, v in params.items()
        }
        return self.template(key).format(**safe)

    def plain(self, key: str, **params: Any) -> str:
        return self.template(key).format(**params)

    def has(self, key: str) -> bool:
        return key in catalog(self.locale)


_PERIOD = re.compile(r"^(\d{4})(?:-Q([1-4])|-(\d{2}))?$")


def period_label(t: Callable[..., str], period: str) -> str:
    """A self-assessment period as people write it: "2026-Q4" -> 2026年第四季度 (2026, Q4),
    "2026-11" -> 2026年11月, "2026" -> 2026年. `t` is a catalog lookup (`Texts` or `.plain`);
    a period in no known form is shown as stored."""
    m = _PERIOD.match(period or "")
    if m is None:
        return period
    year, quarter, month = m.groups()
    if quarter:
        return t("period.quarter", year=year, quarter=t(f"period.q{quarter}"))
    if month:
        return t("period.month", year=year, month=int(month))
    return t("period.year", year=year)


def texts(locale: str | None) -> Texts:
    return Texts(normalize_locale(locale))
