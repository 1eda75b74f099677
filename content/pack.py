"""The content pack: a notice's checklists, service actions, organization categories,
commitment templates and campaign milestones, as YAML validated at load.

Data only; this module only reads and checks it. Another province's notice is another folder,
under content/packs/ or anywhere the operator keeps it (CONTENT_PACK takes a folder's path).
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
    # The branch's own commitment (本支部承诺…): offered only to a secretary, and making one makes
    # the branch's commitment, not a personal one. Strict, so a "yes" or a typo stops the load.
    secretary_only: bool = Field(default=False, strict=True)


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


# The year's packet (述职报告 draft, 年检 summary): document outlines as data, so another
# province's format is another file. The renderer (storage/packet_files.py) knows the named
# tables and the figures the {placeholders} may use; the outline decides order and wording.
PACKET_TABLES = (
    "hours_by_action",  # approved hours per service action
    "members",  # members who took part, with their hours
    "commitments",  # commitments in force in the year, with fulfilment and rating
    "service_list",  # the branch's published service list
    "pairings",  # 共创共建 pairings and the hours credited through them
    "exemplars",  # exemplar records of the year
    "notices",  # notices sent and how many read them
    "submissions",  # reports submitted upward in the year
    "scores",  # each checklist's latest self-assessment score and its change over the year
)


class DocField(_Strict):
    """A labelled line of a form-like page (年检 summary): label and value, both with figures."""

    label: Bilingual
    value: Bilingual


class DocBlock(_Strict):
    """One block of a document: exactly one of text, table, checklist, blank or fields."""

    text: Bilingual | None = None  # a paragraph; {figure} placeholders are filled in
    table: Literal[PACKET_TABLES] | None = None  # type: ignore[valid-type]
    checklist: str | None = None  # each item of this checklist, with the self-assessment
    items: dict[str, list[DocBlock]] = Field(default_factory=dict)  # evidence per item id
    blank: Bilingual | None = None  # a marked place for the secretary's own words
    fields: list[DocField] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> DocBlock:
        kinds = [k for k in ("text", "table", "checklist", "blank", "fields") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("a block has exactly one of text, table, checklist, blank, fields")
        if self.items and not self.checklist:
            raise ValueError("items belong to a checklist block")
        return self


class DocSection(_Strict):
    heading: Bilingual
    blocks: list[DocBlock] = Field(min_length=1)


class DocFonts(_Strict):
    """Font names written into the .docx (Word substitutes what a machine lacks)."""

    title: str = "宋体"
    heading: str = "黑体"
    body: str = "仿宋"
    latin: str = "Times New Roman"


class DocOutline(_Strict):
    title: Bilingual
    subtitle: Bilingual | None = None
    sections: list[DocSection] = Field(min_length=1)
    closing: list[Bilingual] = Field(default_factory=list)  # signature and date, right-aligned
    fonts: DocFonts = Field(default_factory=DocFonts)


class PacketOutlines(_Strict):
    report: DocOutline  # 述职报告 draft
    inspection: DocOutline  # 年检 one-page summary


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
    packet: PacketOutlines | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Pack:
        for name in ("actions", "checklists", "categories", "templates", "milestones", "directions"):
            _require_unique([x.id for x in getattr(self, name)], f"{name} id")
        return self

    @model_validator(mode="after")
    def _packet_checklists(self) -> Pack:
        """Every checklist (and item) an outline names exists in this pack."""
        if self.packet is None:
            return self

        def walk(blocks: list[DocBlock]) -> None:
            for b in blocks:
                if b.checklist:
                    cl = self.checklist(b.checklist)
                    if cl is None:
                        raise ValueError(f"packet names unknown checklist {b.checklist!r}")
                    for item_id, more in b.items.items():
                        if cl.item(item_id) is None:
                            raise ValueError(f"packet names unknown item {item_id!r} of {cl.id!r}")
                        walk(more)

        for outline in (self.packet.report, self.packet.inspection):
            for section in outline.sections:
                walk(section.blocks)
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

    def templates_for(self, *, secretary: bool) -> list[CommitmentTemplate]:
        """The templates a person may pick: a secretary all, anyone else the personal ones."""
        return [t for t in self.templates if secretary or not t.secretary_only]

    def milestone(self, milestone_id: str) -> Milestone | None:
        return next((m for m in self.milestones if m.id == milestone_id), None)


def _require_unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {what} {i!r}")
        seen.add(i)


# One file per section; the file name is the section name.
SECTIONS = (
    "meta",
    "actions",
    "checklists",
    "categories",
    "templates",
    "milestones",
    "directions",
    "packet",
)
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
        if section not in ("meta", "packet"):
            scan(section, data.get(section), (), f"{section} id")
    for i, checklist in enumerate(data.get("checklists") or []):
        if isinstance(checklist, dict):
            scan("checklists", checklist.get("items"), (i, "items"), "item id")
    return out


def pack_folder(pack_id: str) -> Path:
    """A bare name is a pack shipped under content/packs/; anything with a slash is the path of a
    pack folder, so an operator's own pack need not live inside the installed source."""
    return Path(pack_id) if "/" in pack_id else PACKS_DIR / pack_id


@lru_cache(maxsize=8)
def get_pack(pack_id: str = DEFAULT_PACK_ID) -> Pack:
    """The pack named `pack_id` (loaded once). The fronts load the configured `CONTENT_PACK` and
    pass it down: the store never loads a pack itself (tests/storage/test_pack_parameter.py)."""
    return load_pack_dir(pack_folder(pack_id))
