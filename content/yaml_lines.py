"""YAML loading that remembers line numbers, so a broken pack can point at the line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from content.errors import PackError


class _PackLoader(yaml.SafeLoader):
    """SafeLoader that leaves dates as strings: pydantic parses them, so a bad date such as
    2016-13-01 becomes a located validation error instead of a bare ValueError from PyYAML."""


_PackLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_with_lines(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file; return the data and its node tree (for `locate`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PackError(path, None, f"not UTF-8 text: {e.reason}") from None
    try:
        node = yaml.compose(text, Loader=_PackLoader)
        if node is not None:
            _check_duplicate_keys(path, node)
        data = yaml.load(text, Loader=_PackLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        raise PackError(path, mark.line + 1 if mark else None, str(e.problem or e)) from None
    return data, node


def _check_duplicate_keys(path: Path, node: yaml.Node) -> None:
    # PyYAML keeps the last of two equal keys without a word; a pack author would never notice.
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for k, v in node.value:
            key = getattr(k, "value", None)
            if isinstance(key, str):
                if key in seen:
                    raise PackError(path, k.start_mark.line + 1, f"duplicate key {key!r}")
                seen.add(key)
            _check_duplicate_keys(path, v)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _check_duplicate_keys(path, v)


def locate(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """The 1-based line of the deepest node along a pydantic error location."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line
