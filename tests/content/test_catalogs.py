"""Every message id exists in every locale, with the same placeholders."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from content.i18n import LOCALES, LOCALES_DIR, catalog, placeholders, read_po, texts


def test_every_key_exists_in_every_locale() -> None:
    keys = {loc: set(catalog(loc)) for loc in LOCALES}
    union = set().union(*keys.values())
    missing = {loc: sorted(union - k) for loc, k in keys.items() if union - k}
    assert not missing


@pytest.mark.parametrize("key", sorted(catalog("zh")))
def test_same_placeholders_in_every_locale(key: str) -> None:
    found = {loc: placeholders(catalog(loc).get(key, "")) for loc in LOCALES}
    assert len({frozenset(v) for v in found.values()}) == 1, found


def test_catalogs_read_as_babel_reads_them() -> None:
    """content.i18n reads the .po files itself (Babel's reader brought its locale data into
    every bot process); Babel, which the translators' tools use, must read the same messages."""
    from babel.messages.pofile import read_po as babel_read_po

    files = sorted(LOCALES_DIR.glob("*/*.po"))
    assert files
    for po in files:
        with po.open("rb") as f:
            theirs = [(m.id, m.string) for m in babel_read_po(f, locale=po.parent.name) if m.id]
        assert [(key, text) for key, text in read_po(po) if key] == theirs, po


def test_arguments_are_html_escaped() -> None:
    assert texts("en")("error.invalid", field="<b>x</b>") == "Invalid input: &lt;b&gt;x&lt;/b&gt;."


def test_unknown_locale_falls_back_to_chinese() -> None:
    assert texts("fr").locale == "zh"
    assert texts("en-US").locale == "en"


# --- every key the code and the templates name exists -------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
# Calls whose first argument is a catalog key (texts, store errors) and the web templates' t().
KEY_CALLS = {"_", "t", "plain", "template", "Refused", "Forbidden", "NotFound", "Invalid", "ParseError"}
KEY_CALLS |= {"Stale"}
# handlers.kit.wizard: fresh(value, "key") and running(..., stale="key") name the stale-button alert.
KEY_SECOND_ARG = {"fresh"}
KEY_KEYWORDS = {"stale"}
KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")


def _keys_in_python(path: Path) -> set[tuple[str, int]]:
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and node.args:
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            arg = node.args[0]
            if name in KEY_CALLS and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if KEY.match(arg.value):
                    found.add((arg.value, node.lineno))
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            named = [k.value for k in node.keywords if k.arg in KEY_KEYWORDS]
            if name in KEY_SECOND_ARG and len(node.args) > 1:
                named.append(node.args[1])
            for v in named:
                if isinstance(v, ast.Constant) and isinstance(v.value, str) and KEY.match(v.value):
                    found.add((v.value, node.lineno))
        if isinstance(node, ast.Dict):  # json_schema_extra={"error_key": "..."}
            for k, v in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(k, ast.Constant)
                    and k.value == "error_key"
                    and isinstance(v, ast.Constant)
                    and isinstance(v.value, str)
                ):
                    found.add((v.value, node.lineno))
    return found


def _keys_in_templates() -> set[tuple[str, str]]:
    # A whole literal key: `t('web.x.y')` or `t('web.x.y', n=1)`, not `t('web.x.' ~ kind)`.
    pattern = re.compile(r"""\bt\(\s*['"]([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)['"]\s*[,)]""")
    return {
        (m.group(1), str(p.relative_to(ROOT)))
        for p in (ROOT / "admin" / "templates").rglob("*.html")
        for m in pattern.finditer(p.read_text(encoding="utf-8"))
    }


def test_every_key_named_in_the_code_exists() -> None:
    known = set(catalog("zh"))
    missing = []
    for folder in ("bot", "handlers", "storage", "admin", "content", "bridge", "demo"):
        for path in (ROOT / folder).rglob("*.py"):
            missing += [
                f"{path.relative_to(ROOT)}:{line}: {key}"
                for key, line in _keys_in_python(path)
                if key not in known
            ]
    missing += [f"{where}: {key}" for key, where in _keys_in_templates() if key not in known]
    assert missing == []


def test_the_key_scan_finds_keys() -> None:
    # The scan above must see real uses, or it proves nothing.
    assert any(k == "fallback.text" for k, _ in _keys_in_python(ROOT / "handlers" / "fallback.py"))
    in_commitments = {k for k, _ in _keys_in_python(ROOT / "handlers" / "commitments.py")}
    # running(..., stale="...") and fresh(value, "...")
    assert {"commit_chat.stale", "commit_chat.not_open"} <= in_commitments
    assert len(_keys_in_templates()) > 50


def test_chinese_texts_use_chinese_punctuation() -> None:
    # An ASCII comma or colon between Chinese words reads as a typo to a Chinese reader.
    cjk = "[\u3400-\u9fff\u3000-\u303f\uff01-\uff5e\u201c\u201d]"
    ascii_next_to_chinese = re.compile(rf"(?<={cjk})[,:;?!]|[,:;?!](?={cjk})")
    wrong = {key: text for key, text in catalog("zh").items() if ascii_next_to_chinese.search(text)}
    assert wrong == {}


@pytest.mark.parametrize(
    ("locale", "period", "label"),
    [
        ("zh", "2026-Q4", "2026年第四季度"),
        ("zh", "2027-Q1", "2027年第一季度"),
        ("zh", "2026-11", "2026年11月"),
        ("zh", "2026", "2026年全年"),
        ("en", "2026-Q4", "Q4 2026"),
        ("en", "2026-03", "3/2026"),
        ("zh", "odd", "odd"),  # an unknown form is shown as stored
    ],
)
def test_periods_are_written_as_people_write_them(locale: str, period: str, label: str) -> None:
    from content.i18n import period_label

    assert period_label(texts(locale).plain, period) == label


def test_one_term_for_each_thing_in_chinese() -> None:
    """Evaluating a commitment is 评诺 (亮诺、践诺、评诺); 评议 is left to 述职评议, the secretary's
    annual review, so the two are never confused. The categories a service is logged under are
    服务行动, as the notice names them (“……等服务行动”); 服务项目 is a concrete service (the
    branch's own projects, the service list). (The export for the national volunteer system
    keeps that system's own field name, 活动名称.)"""
    zh = catalog("zh")
    stray = {k: v for k, v in zh.items() if re.search(r"(?<!述职)评议", v)}
    assert stray == {}
    assert sum("评诺" in v for v in zh.values()) > 10
    assert zh["web.entries.action"] == "服务行动"
    assert "服务行动" in zh["web.reports.by_action"] and "服务行动" in zh["web.dash.chart_actions"]
    notice = ROOT / "content" / "packs" / "qh-2015" / "source-notice.txt"  # the notice, as quoted
    assert "等服务行动" in notice.read_text(encoding="utf-8")  # its own word for them
