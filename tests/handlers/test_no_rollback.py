"""No handler rolls back the update's transaction: it holds the update's claim (the row that
makes a redelivery a no-op) and, on PostgreSQL, the claim's lock. A step the store may refuse
runs in a savepoint (`async with session.begin_nested()`), whose rollback undoes that step only;
a refusal that ends the update is raised to the guard, which records the update as handled."""

from __future__ import annotations

import ast
from pathlib import Path

HANDLERS = Path(__file__).resolve().parents[2] / "handlers"


def rollbacks(source: str) -> list[int]:
    """Lines that call a `.rollback(...)` method."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "rollback"
    ]


def test_the_check_finds_a_rollback() -> None:
    assert rollbacks("async def f(s):\n    await s.rollback()\n") == [2]
    assert rollbacks("async def f(s):\n    async with s.begin_nested():\n        pass\n") == []


def test_no_handler_rolls_back_the_updates_transaction() -> None:
    found = {
        str(path.relative_to(HANDLERS.parent)): lines
        for path in sorted(HANDLERS.rglob("*.py"))
        if (lines := rollbacks(path.read_text(encoding="utf-8")))
    }
    assert found == {}
