"""The store takes the content pack as a parameter: the fronts load the configured CONTENT_PACK and
pass it down, so no store operation silently works with another pack."""

from __future__ import annotations

import ast
from pathlib import Path

STORAGE = Path(__file__).resolve().parents[2] / "storage"
# Every store module takes the pack it uses (the demo seed too: the demo passes the pack it is
# written for). A module listed here would still load one itself.
NOT_YET: set[str] = set()


# What a module would load a pack (or name the default one) with.
LOADERS = {"get_pack", "load_pack_dir", "DEFAULT_PACK_ID", "PACKS_DIR"}


def _loads_a_pack(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "content.pack":
            if any(a.name in LOADERS for a in node.names):
                return True
        if isinstance(node, ast.Import) and any(a.name == "content.pack" for a in node.names):
            return True  # `content.pack.get_pack()`, past the names above
    return False


def test_store_operations_take_the_pack_they_use() -> None:
    loading = {p.name for p in STORAGE.rglob("*.py") if _loads_a_pack(p)}
    assert loading <= NOT_YET, sorted(loading - NOT_YET)
