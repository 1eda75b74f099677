"""Locale catalogs: gettext .po files read with Babel, one file per area under
content/locales/<locale>/<area>.po. Message ids are keys ("log.recorded"); texts use
str.format placeholders ("{hours}").

Chat texts are HTML (Telegram parse_mode=HTML): `Texts.__call__` escapes every argument, so
a member's name or description can never inject markup. The web renders with Jinja2, which
escapes on its own, so it uses `Texts.plain`.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

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
        with po.open("rb") as f:
            cat = read_po(f, locale=locale)
        for msg in cat:
            if msg.id and isinstance(msg.id, str) and msg.string:
                if msg.id in out:
                    raise ValueError(f"{po}: message id {msg.id!r} is defined twice")
                out[msg.id] = str(msg.string)
    return out


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
