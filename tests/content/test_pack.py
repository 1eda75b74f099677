"""The content pack: the real pack quotes the notice, and every kind of broken pack is reported
with the file and line to fix."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from content.pack import PACKS_DIR, Pack, PackError, load_pack_dir

REAL = PACKS_DIR / "qh-2015"
# The notice the pack quotes, kept beside the pack so a clean checkout has it.
NOTICE = Path(__file__).resolve().parents[2] / "content" / "packs" / "qh-2015" / "source-notice.txt"


@pytest.fixture(scope="module")
def pack() -> Pack:
    return load_pack_dir(REAL)


CJK = "[\u3400-\u9fff\u3000-\u303f\uff01-\uff5e\u201c\u201d]"
FULL_WIDTH = {",": "\uff0c", ":": "\uff1a", ";": "\uff1b", "?": "\uff1f", "!": "\uff01"}


def full_width(text: str) -> str:
    """Chinese punctuation as printed: this copy of the notice has ASCII commas and colons
    between Chinese words, the pack (like the official text) has the full-width ones."""
    return re.sub(rf"(?<={CJK})[,:;?!]|[,:;?!](?={CJK})", lambda m: FULL_WIDTH[m.group(0)], text)


@pytest.fixture(scope="module")
def notice() -> str:
    return full_width(NOTICE.read_text(encoding="utf-8"))


def _quoted_list(notice: str, label: str) -> list[str]:
    """The items of a list the notice quotes before its label: “a、b、c”的“六有”."""
    m = re.search(r"“([^”]+)”的“" + re.escape(label) + "”", notice)
    assert m, label
    return [x for x in re.split(r"[、\uff0c]", m.group(1)) if x]


def test_six_haves_are_the_notices_six_items_in_order(pack: Pack, notice: str) -> None:
    titles = [i.title.zh for i in pack.checklist("six_haves").items]
    assert titles == _quoted_list(notice, "六有")
    assert len(titles) == 6


def test_five_standards_are_the_notices_five_items_in_order(pack: Pack, notice: str) -> None:
    titles = [i.title.zh for i in pack.checklist("five_standards").items]
    assert titles == _quoted_list(notice, "五化")
    assert len(titles) == 5


def test_six_grasps_are_the_notices_six_pairs_in_order(pack: Pack, notice: str) -> None:
    titles = [i.title.zh for i in pack.checklist("six_grasps").items]
    m = re.search(r"“([^”]+)”的“六抓六服务”", notice)
    assert m
    pairs = m.group(1).split("\uff0c")
    assert titles == pairs
    assert len(titles) == 6
    for t in titles:
        assert t in notice


def test_every_checklist_item_title_appears_in_the_notice(pack: Pack, notice: str) -> None:
    for checklist in pack.checklists:
        for item in checklist.items:
            assert item.title.zh in notice, item.id
            assert item.title.en and item.explanation.zh and item.explanation.en


def test_the_named_service_actions_and_the_branchs_own_projects(pack: Pack, notice: str) -> None:
    ids = [a.id for a in pack.actions]
    assert ids == ["volunteer", "integrity", "welfare_day", "walk_with_you", "branch_project"]
    for a in pack.actions[:4]:
        assert a.title.zh in notice, a.id
    assert pack.action("branch_project").title.zh == "本支部服务项目"


def test_categories_carry_the_notices_focus(pack: Pack, notice: str) -> None:
    assert [c.id for c in pack.categories] == ["trade", "academic", "nonenterprise", "foundation", "county"]
    for c in pack.categories:
        assert c.title.zh in notice, c.id
        assert c.focus.zh.rstrip("。") in notice, c.id


def test_directions_are_the_notices_four(pack: Pack, notice: str) -> None:
    assert [d.title.zh for d in pack.directions] == [
        "服务企业\uff0c促进发展",
        "服务农村\uff0c促进增收",
        "服务社区\uff0c促进和谐",
        "服务民生\uff0c促进保障",
    ]
    for d in pack.directions:
        assert d.title.zh in notice


def test_milestones_hold_the_notices_dates_and_a_separate_annual_cycle(pack: Pack) -> None:
    targets = {m.date for m in pack.milestones if m.kind == "target"}
    assert targets == {date(2016, 7, 31), date(2020, 12, 31)}
    cycle = [m for m in pack.milestones if m.kind == "cycle"]
    assert {m.date.year for m in cycle} == {2026, 2027}
    assert all("本支部年度安排" in m.title.zh and "annual cycle" in m.title.en for m in cycle)


def test_commitment_templates(pack: Pack) -> None:
    assert 6 <= len(pack.templates) <= 10
    for t in pack.templates:
        assert 1 <= t.default_days <= 730
        assert t.text.zh and t.text.en


def test_secretary_only_templates_are_the_branchs_own(pack: Pack) -> None:
    marked = {t.id for t in pack.templates if t.secretary_only}
    assert marked == {"branch_service_list", "branch_pairing"}
    assert all(t.text.zh.startswith("本支部") for t in pack.templates if t.secretary_only)
    assert {t.id for t in pack.templates_for(secretary=True)} == {t.id for t in pack.templates}
    assert marked.isdisjoint(t.id for t in pack.templates_for(secretary=False))


def test_the_field_not_the_id_decides_who_is_offered_a_template(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    _edit(folder, "templates.yaml", "- id: branch_pairing\n", "- id: joint_building\n")
    _edit(folder, "templates.yaml", "- id: welfare_day\n", "- id: branch_welfare_day\n")
    pack = load_pack_dir(folder)
    members = {t.id for t in pack.templates_for(secretary=False)}
    assert "joint_building" not in members and "branch_welfare_day" in members
    assert "joint_building" in {t.id for t in pack.templates_for(secretary=True)}


# ---- broken packs: each built by copying the real pack and breaking one thing ----


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "pack"
    shutil.copytree(REAL, folder)
    return folder


def _edit(folder: Path, name: str, old: str, new: str) -> int:
    """Replace `old` once in a pack file; return the 1-based line where `new` begins."""
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    at = text.index(old)
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[:at].count("\n") + 1 + new[: len(new) - len(new.lstrip("\n"))].count("\n")


def _append(folder: Path, name: str, block: str) -> int:
    """Append a block to a pack file; return the 1-based line of its first line."""
    path = folder / name
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    path.write_text(text + block, encoding="utf-8")
    return text.count("\n") + 1


def _invalid_yaml(f: Path) -> tuple[str, int | None]:
    return "actions.yaml", _edit(f, "actions.yaml", "- id: integrity\n", "- id: integrity: oops\n")


def _missing_file(f: Path) -> tuple[str, int | None]:
    (f / "checklists.yaml").unlink()
    return "checklists.yaml", None


def _missing_field(f: Path) -> tuple[str, int | None]:
    line = _append(f, "templates.yaml", "- id: no_text\n  title: {zh: 无正文, en: No text}\n")
    return "templates.yaml", line


def _unknown_field(f: Path) -> tuple[str, int | None]:
    line = _edit(f, "actions.yaml", "- id: welfare_day\n", "- id: welfare_day\n  colour: red\n")
    return "actions.yaml", line + 1


def _duplicate_id(f: Path) -> tuple[str, int | None]:
    return "actions.yaml", _edit(f, "actions.yaml", "- id: integrity\n", "- id: volunteer\n")


def _duplicate_item_id(f: Path) -> tuple[str, int | None]:
    return "checklists.yaml", _edit(f, "checklists.yaml", "    - id: core_team\n", "    - id: leadership\n")


def _duplicate_key(f: Path) -> tuple[str, int | None]:
    line = _edit(f, "categories.yaml", "- id: county\n", "- id: county\n  id: county2\n")
    return "categories.yaml", line + 1


def _bad_date(f: Path) -> tuple[str, int | None]:
    return "milestones.yaml", _edit(f, "milestones.yaml", "date: 2020-12-31", "date: 2020-13-31")


def _bad_published_date(f: Path) -> tuple[str, int | None]:
    return "meta.yaml", _edit(f, "meta.yaml", "published: 2015-05-11", "published: 2015-02-30")


def _empty_checklist(f: Path) -> tuple[str, int | None]:
    line = _append(
        f,
        "checklists.yaml",
        "- id: empty\n  title: {zh: 空, en: Empty}\n  description: {zh: 空, en: Empty}\n  items: []\n",
    )
    return "checklists.yaml", line + 3


def _empty_file(f: Path) -> tuple[str, int | None]:
    (f / "categories.yaml").write_text("# nothing yet\n", encoding="utf-8")
    return "categories.yaml", 1


def _bad_id(f: Path) -> tuple[str, int | None]:
    return "directions.yaml", _edit(f, "directions.yaml", "- id: rural\n", "- id: Rural Areas\n")


def _loose_secretary_only(f: Path) -> tuple[str, int | None]:
    line = _edit(
        f,
        "templates.yaml",
        "  default_days: 30\n  secretary_only: true\n",
        '  default_days: 30\n  secretary_only: "true"\n',
    )
    return "templates.yaml", line + 1


BREAKERS: dict[str, Callable[[Path], tuple[str, int | None]]] = {
    "invalid_yaml": _invalid_yaml,
    "missing_required_file": _missing_file,
    "missing_field": _missing_field,
    "unknown_field": _unknown_field,
    "duplicate_id": _duplicate_id,
    "duplicate_checklist_item_id": _duplicate_item_id,
    "duplicate_yaml_key": _duplicate_key,
    "bad_date": _bad_date,
    "bad_published_date": _bad_published_date,
    "empty_checklist": _empty_checklist,
    "empty_file": _empty_file,
    "bad_id": _bad_id,
    "secretary_only_not_a_bool": _loose_secretary_only,
}


@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_broken_pack_names_the_file_and_line(tmp_path: Path, case: str) -> None:
    folder = _copy(tmp_path)
    load_pack_dir(folder)  # the copy itself is fine
    file, line = BREAKERS[case](folder)
    with pytest.raises(PackError) as info:
        load_pack_dir(folder)
    err = info.value
    assert err.file == folder / file
    assert err.line == line
    where = f"{folder / file}:{line}" if line else str(folder / file)
    assert where in str(err)


def test_missing_pack_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="no such content pack folder"):
        load_pack_dir(tmp_path / "nowhere")


def test_problem_text_names_the_field(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    _missing_field(folder)
    with pytest.raises(PackError, match=r"text: Field required"):
        load_pack_dir(folder)


def test_a_name_is_a_shipped_pack_and_a_path_is_the_operators_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from content.pack import get_pack, pack_folder

    assert pack_folder("qh-2015") == REAL
    own = tmp_path / "gs-2016"
    shutil.copytree(REAL, own)
    assert pack_folder(str(own)) == own
    monkeypatch.chdir(tmp_path)
    assert pack_folder("./gs-2016") == Path("gs-2016")  # relative to where the process runs
    assert get_pack("./gs-2016") == get_pack("qh-2015")
    shutil.rmtree(own)
    with pytest.raises(PackError, match="no such content pack folder"):
        load_pack_dir(pack_folder("./gs-2016"))
