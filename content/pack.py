"""The content pack: a notice's checklists, service actions, organization categories,
commitment templates and campaign milestones, as YAML validated at load.

Data only; this module only reads and checks it. Another province's notice is another folder
under content/packs/.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from content.errors import PackError

PACKS_DIR = Path(__file__).parent / "packs"
# The pack a store operation uses when its caller passes none (the default of CONTENT_PACK).
DEFAULT_PACK_ID = "qh-2015"
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bilingual(_Strict):
    """A text in Chinese with English alongside."""

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, locale: str) -> str:
        return self.en if locale == "en" else self.zh


class ServiceAction(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: Bilingual
    description: Bilingual


class ChecklistItem(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: Bilingual
    explanation: Bilingual


class Checklist(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: Bilingual
    description: Bilingual
    items: list[ChecklistItem] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_items(self) -> Checklist:
        _require_unique([i.id for i in self.items], "item id")
        return self

    def item(self, item_id: str) -> ChecklistItem | None:
        return next((i for i in self.items if i.id == item_id), None)


class Category(_Strict):
    """An organization type, which decides the branch's focus."""

    id: str = Field(pattern=ID_PATTERN)
    title: Bilingual
    focus: Bilingual


class CommitmentTemplate(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: Bilingual
    text: Bilingual
    default_days: int = Field(default=90, ge=1, le=730)


class Milestone(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    # "target": a date the notice itself sets; "cycle": the branch's yearly calendar (annual review,
    # annual inspection), an example a province edits.
    kind: Literal["target", "cycle"] = "target"
    title: Bilingual
    date: date
    remind_days_before: list[int] = Field(default_factory=lambda: [30, 7, 1])

    @model_validator(mode="after")
    def _positive_days(self) -> Milestone:
        if any(d < 0 for d in self.remind_days_before):
            raise ValueError("remind_days_before must not be negative")
        return self


class Direction(_Strict):
    """One of the notice's "serve …, promote …" directions."""

    id: str = Field(pattern=ID_PATTERN)
    title: Bilingual


class PackMeta(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: Bilingual
    source: Bilingual
    published: date


class Pack(_Strict):
    meta: PackMeta
    actions: list[ServiceAction] = Field(min_length=1)
    checklists: list[Checklist] = Field(min_length=1)
    categories: list[Category] = Field(min_length=1)
    templates: list[CommitmentTemplate] = Field(default_factory=list)
    milestones: list[Milestone] = Field(default_factory=list)
    directions: list[Direction] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> Pack:
        for name in ("actions", "checklists", "categories", "templates", "milestones", "directions"):
            _require_unique([x.id for x in getattr(self, name)], f"{name} id")
        return self

    @property
    def id(self) -> str:
        return self.meta.id

    def action(self, action_id: str) -> ServiceAction | None:
        return next((a for a in self.actions if a.id == action_id), None)

    def checklist(self, checklist_id: str) -> Checklist | None:
        return next((c for c in self.checklists if c.id == checklist_id), None)

    def category(self, category_id: str | None) -> Category | None:
        return next((c for c in self.categories if c.id == category_id), None)

    def template(self, template_id: str) -> CommitmentTemplate | None:
        return next((t for t in self.templates if t.id == template_id), None)

    def milestone(self, milestone_id: str) -> Milestone | None:
        return next((m for m in self.milestones if m.id == milestone_id), None)


def _require_unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {what} {i!r}")
        seen.add(i)


# One file per section; the file name is the section name.
SECTIONS = ("meta", "actions", "checklists", "categories", "templates", "milestones", "directions")
REQUIRED_SECTIONS = ("meta", "actions", "checklists", "categories")


def load_pack_dir(folder: Path) -> Pack:
    from content.yaml_lines import load_with_lines, locate

    if not folder.is_dir():
        raise PackError(folder, None, "no such content pack folder")
    data: dict[str, Any] = {}
    nodes: dict[str, Any] = {}
    for section in SECTIONS:
        path = folder / f"{section}.yaml"
        if not path.exists():
            if section in REQUIRED_SECTIONS:
                raise PackError(path, None, "required file is missing")
            continue
        data[section], nodes[section] = load_with_lines(path)
        if data[section] is None:
            raise PackError(path, 1, "the file is empty")
    # Duplicates first, on the raw data: the models' own checks could not say which line.
    for section, loc, problem in _duplicate_ids(data):
        raise PackError(folder / f"{section}.yaml", locate(nodes[section], loc), problem)
    try:
        return Pack.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err.get("loc", ()))
        section = str(loc[0]) if loc else "meta"
        path = folder / f"{section}.yaml"
        line = locate(nodes.get(section), loc[1:]) if section in nodes else None
        field = ".".join(str(p) for p in loc[1:]) or section
        msg = err["msg"].removeprefix("Value error, ")
        raise PackError(path, line, f"{field}: {msg}") from None


def _duplicate_ids(data: dict[str, Any]) -> list[tuple[str, tuple[Any, ...], str]]:
    """(section, location of the second occurrence, problem) for every repeated id."""
    out: list[tuple[str, tuple[Any, ...], str]] = []

    def scan(section: str, rows: Any, prefix: tuple[Any, ...], what: str) -> None:
        if not isinstance(rows, list):
            return
        seen: set[str] = set()
        for i, row in enumerate(rows):
            rid = row.get("id") if isinstance(row, dict) else None
            if not isinstance(rid, str):
                continue
            if rid in seen:
                out.append((section, (*prefix, i, "id"), f"duplicate {what} {rid!r}"))
            seen.add(rid)

    for section in SECTIONS:
        if section != "meta":
            scan(section, data.get(section), (), f"{section} id")
    for i, checklist in enumerate(data.get("checklists") or []):
        if isinstance(checklist, dict):
            scan("checklists", checklist.get("items"), (i, "items"), "item id")
    return out


@lru_cache(maxsize=8)
def get_pack(pack_id: str = DEFAULT_PACK_ID) -> Pack:
    """The pack named `pack_id` (loaded once). The fronts pass the configured `CONTENT_PACK`;
    a store operation called without a pack gets the default pack."""
    return load_pack_dir(PACKS_DIR / pack_id)
