"""Errors the store raises. Each carries a catalog key and its arguments, never a sentence:
the chat and the web each turn it into words in the reader's language."""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    """A rule said no. Nothing was written."""

    default_key = "error.refused"

    def __init__(self, key: str | None = None, **params: Any) -> None:
        self.key = key or self.default_key
        self.params = params
        super().__init__(self.key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r}, {self.params!r})"


class Forbidden(Refused):
    """The actor's role or scope does not allow this."""

    default_key = "error.forbidden"


class NotFound(Refused):
    """No such record, or not one the actor may see (the two look the same on purpose)."""

    default_key = "error.not_found"


class Invalid(Refused):
    """Input failed validation; `field` names what was wrong."""

    default_key = "error.invalid"
