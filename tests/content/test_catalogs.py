"""Every message id exists in every locale, with the same placeholders."""

from __future__ import annotations

import pytest

from content.i18n import LOCALES, catalog, placeholders, texts


def test_every_key_exists_in_every_locale() -> None:
    keys = {loc: set(catalog(loc)) for loc in LOCALES}
    union = set().union(*keys.values())
    missing = {loc: sorted(union - k) for loc, k in keys.items() if union - k}
    assert not missing


@pytest.mark.parametrize("key", sorted(catalog("zh")))
def test_same_placeholders_in_every_locale(key: str) -> None:
    found = {loc: placeholders(catalog(loc).get(key, "")) for loc in LOCALES}
    assert len({frozenset(v) for v in found.values()}) == 1, found


def test_arguments_are_html_escaped() -> None:
    assert texts("en")("error.invalid", field="<b>x</b>") == "Invalid input: &lt;b&gt;x&lt;/b&gt;."


def test_unknown_locale_falls_back_to_chinese() -> None:
    assert texts("fr").locale == "zh"
    assert texts("en-US").locale == "en"
