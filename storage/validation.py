"""Turn pydantic validation failures into the store's own error, with a catalog key."""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from storage.errors import Invalid

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], /, **data: Any) -> M:
    """Validate `data` as `model`; on failure raise `Invalid` naming the first bad field.

    A field may choose its own message key through `json_schema_extra={"error_key": "..."}`;
    otherwise the key is "error.invalid", with the field's name as its `field` parameter.
    """
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else "input"
        info = model.model_fields.get(field)
        extra = (
            info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
        )
        key = extra.get("error_key") if extra else None
        ctx = {k: v for k, v in (err.get("ctx") or {}).items() if isinstance(v, int | float | str)}
        raise Invalid(str(key) if key else "error.invalid", field=field, **ctx) from None


# ---- strict scalars (ids, whole numbers, days) and text without control characters --------

# Ids are INTEGER columns (32-bit on PostgreSQL): a larger number is no id of ours.
ID_MAX = 2**31 - 1
# Days people mean: far enough either way for any record, near enough that date arithmetic
# (a day after, a zone's midnight in UTC) never leaves what Python and the databases hold.
DAY_MIN = date(1900, 1, 1)
DAY_MAX = date(2200, 12, 31)
_ASCII_DIGITS = frozenset("0123456789")


def ascii_int(raw: str, *, lo: int = 0, hi: int = ID_MAX) -> int | None:
    """`raw` as a whole number in [lo, hi], or None. Only ASCII digits: str.isdigit() also takes
    "²" and "٣", which int() then refuses or reads as another number."""
    raw = raw.strip()
    if not raw or len(raw) > len(str(hi)) or not set(raw) <= _ASCII_DIGITS:
        return None
    n = int(raw)
    return n if lo <= n <= hi else None


def strict_day(raw: str) -> date | None:
    """An ISO day (YYYY-MM-DD, ASCII) in [DAY_MIN, DAY_MAX], or None."""
    raw = raw.strip()
    if len(raw) != 10 or not set(raw) <= _ASCII_DIGITS | {"-"}:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None
    return day if DAY_MIN <= day <= DAY_MAX else None


def control_chars(text: str, *, allow_newlines: bool = True) -> bool:
    """Does `text` hold a control character (NUL included) that no person types on purpose?
    Tabs and (if allowed) line breaks are fine; PostgreSQL refuses NUL, and the others garble
    chat, print and spreadsheets."""
    allowed = {"\t", "\n", "\r"} if allow_newlines else {"\t"}
    return any(
        (unicodedata.category(ch) in ("Cc", "Cs") and ch not in allowed) or ch in "\u2028\u2029"
        for ch in text
    )
