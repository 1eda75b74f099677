"""The Bot API specification (emulator/api.json, MIT, see api.LICENSE) as Python objects.

Two jobs: decode request parameters (form fields arrive as strings; complex values are JSON)
into typed values using each parameter's declared types, and check a decoded value against a
type expression ("Integer or String", "Array of Array of InlineKeyboardButton", an object type
with required and optional fields, an abstract type whose subtypes differ by a `type` field).
The same checker validates what the emulator itself returns (tests/emulator checks it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

API_JSON = Path(__file__).with_name("api.json")

PRIMITIVES = frozenset({"Integer", "String", "Boolean", "Float", "InputFile"})
# "Type of the media, must be photo" / "Type of the reaction, always "emoji""
_DISCRIMINATOR = re.compile(r"(?:must be|always) [\"“]?([a-z_]+)")
# "1-4096 characters" / "1-64 bytes" / "0-200 characters" in a field's description.
_LENGTH = re.compile(r"(\d+)-(\d+) (characters|bytes)")


@dataclass(frozen=True)
class Field:
    name: str
    types: tuple[str, ...]
    required: bool
    description: str

    @property
    def string_only(self) -> bool:
        return self.types == ("String",)

    @property
    def length_limit(self) -> tuple[int, int, str] | None:
        """(min, max, "characters"|"bytes") when the description states one."""
        m = _LENGTH.search(self.description)
        return (int(m[1]), int(m[2]), m[3]) if m else None

    @property
    def counted_after_parsing(self) -> bool:
        return "after entit" in self.description


@dataclass(frozen=True)
class MethodSpec:
    name: str
    fields: dict[str, Field]
    returns: tuple[str, ...]


@dataclass(frozen=True)
class TypeSpec:
    name: str
    fields: dict[str, Field]
    subtypes: tuple[str, ...]

    @property
    def discriminator(self) -> tuple[str, str] | None:
        """(field, value) that tells this subtype apart, e.g. ("type", "chat")."""
        if not self.fields:
            return None
        first = next(iter(self.fields.values()))
        m = _DISCRIMINATOR.search(first.description)
        return (first.name, m[1]) if m else None


class Upload:
    """A file part of a multipart request."""

    def __init__(self, data: bytes, filename: str | None, content_type: str | None) -> None:
        self.data = data
        self.filename = filename
        self.content_type = content_type

    def __repr__(self) -> str:
        return f"Upload({self.filename!r}, {len(self.data)} bytes)"


class DecodeError(ValueError):
    pass


class Spec:
    """api.json, indexed. Method names are case-insensitive, as in the Bot API."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.version: str = data.get("version", "")
        self.methods: dict[str, MethodSpec] = {}
        for m in data["methods"].values():
            spec = MethodSpec(m["name"], _fields(m), tuple(m.get("returns", ())))
            self.methods[m["name"].lower()] = spec
        self.types: dict[str, TypeSpec] = {
            t["name"]: TypeSpec(t["name"], _fields(t), tuple(t.get("subtypes", ())))
            for t in data["types"].values()
        }

    def method(self, name: str) -> MethodSpec | None:
        return self.methods.get(name.lower())

    # -- decoding ---------------------------------------------------------------------------

    def decode(self, field: Field, raw: Any, files: dict[str, Upload]) -> Any:
        """A raw request value (a form string, a JSON value, or an Upload) as the declared type.

        Form and query values are strings; anything not declared as a plain String is JSON
        encoded by clients (aiogram sends `123`, `true`, `{"inline_keyboard": ...}`). A string
        that is not JSON stays a string when String is one of the declared types
        (chat_id "@channel"). `attach://name` refers to a file part of the same request.
        """
        if isinstance(raw, Upload) or (isinstance(raw, str) and field.string_only):
            return raw
        if isinstance(raw, str) and raw.startswith("attach://") and "InputFile" in field.types:
            name = raw.removeprefix("attach://")
            if name not in files:
                raise DecodeError(f"file part {name!r} referenced by {field.name} is missing")
            return files[name]
        if isinstance(raw, str):
            try:
                return _resolve_attachments(json.loads(raw), files)
            except (ValueError, RecursionError):
                if "String" in field.types:
                    return raw
                raise DecodeError(f"{field.name} must be {' or '.join(field.types)}") from None
        return _resolve_attachments(raw, files)

    # -- structural checks ------------------------------------------------------------------

    def problem(self, types: tuple[str, ...], value: Any, path: str) -> str | None:
        """Why `value` is not one of `types`, or None when it is."""
        problems = []
        for t in types:
            p = self._problem_one(t, value, path)
            if p is None:
                return None
            problems.append(p)
        if len(problems) == 1:
            return problems[0]
        # With several candidates, the object type whose checks got furthest explains best.
        nested = [p for p in problems if not p.startswith(f"{path}: expected")]
        return nested[0] if nested else f"{path}: expected {' or '.join(types)}"

    def _problem_one(self, t: str, value: Any, path: str) -> str | None:
        if t.startswith("Array of "):
            if not isinstance(value, list):
                return f"{path}: expected {t}"
            inner = t.removeprefix("Array of ")
            for i, item in enumerate(value):
                p = self._problem_one(inner, item, f"{path}[{i}]")
                if p:
                    return p
            return None
        match t:
            case "Integer":
                ok = isinstance(value, int) and not isinstance(value, bool)
            case "Float":
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            case "Boolean":
                ok = isinstance(value, bool)
            case "String":
                ok = isinstance(value, str)
            case "InputFile":
                ok = isinstance(value, Upload)
            case _:
                return self._object_problem(t, value, path)
        return None if ok else f"{path}: expected {t}"

    def _object_problem(self, t: str, value: Any, path: str) -> str | None:
        spec = self.types.get(t)
        if spec is None:
            return f"{path}: unknown type {t}"
        if not isinstance(value, dict):
            return f"{path}: expected {t}"
        if spec.subtypes:
            if all(self.types[sub].discriminator is None for sub in spec.subtypes):
                # e.g. MaybeInaccessibleMessage: Message or InaccessibleMessage, told apart by shape
                return self.problem(spec.subtypes, value, path)
            for sub in spec.subtypes:
                d = self.types[sub].discriminator
                if d and value.get(d[0]) == d[1]:
                    return self._object_problem(sub, value, path)
            return f"{path}: no {t} subtype matches {value.get('type')!r}"
        for name in value:
            if name not in spec.fields:
                return f"{path}: unknown field {name!r} for {t}"
        for f in spec.fields.values():
            if f.name not in value:
                if f.required:
                    return f"{path}: {t} requires {f.name!r}"
                continue
            p = self.problem(f.types, value[f.name], f"{path}.{f.name}")
            if p:
                return p
            p = length_problem(f, value[f.name], f"{path}.{f.name}")
            if p:
                return p
        d = spec.discriminator
        if d and value.get(d[0]) != d[1]:
            return f"{path}.{d[0]}: must be {d[1]!r}"
        return None


def length_problem(field: Field, value: Any, path: str) -> str | None:
    """The description's "a-b characters|bytes" limit, for String values that are not formatted
    text (formatted text is counted after entity parsing, by the caller)."""
    limit = field.length_limit
    if limit is None or not isinstance(value, str) or field.counted_after_parsing:
        return None
    lo, hi, unit = limit
    n = len(value.encode()) if unit == "bytes" else len(value)
    if lo <= n <= hi:
        return None
    return f"{path}: {n} {unit}, must be {lo}-{hi}"


def _fields(item: dict[str, Any]) -> dict[str, Field]:
    return {
        f["name"]: Field(f["name"], tuple(f["types"]), bool(f["required"]), f.get("description", ""))
        for f in item.get("fields", ())
    }


def _resolve_attachments(value: Any, files: dict[str, Upload]) -> Any:
    """InputMedia and similar objects name file parts as "attach://<part>" inside JSON."""
    if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
        return files[value[9:]]
    if isinstance(value, list):
        return [_resolve_attachments(v, files) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_attachments(v, files) for k, v in value.items()}
    return value


@cache
def load(path: Path = API_JSON) -> Spec:
    return Spec(json.loads(path.read_text(encoding="utf-8")))
