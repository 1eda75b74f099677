"""A test that fits only one database is collected on both and skipped with a reason on the other
(tests.dbutil.POSTGRES_ONLY / SQLITE_ONLY): defined under a module-level `if`, it would vanish
from a plain `make test` without a word."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def conditional_tests(source: str) -> list[str]:
    """Tests (and fixtures) defined inside a module-level if/try/with."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.If | ast.Try | ast.With):
            for inner in ast.walk(node):
                if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef) and (
                    inner.name.startswith("test_")
                    or any("fixture" in ast.unparse(d) for d in inner.decorator_list)
                ):
                    found.append(f"{inner.name} (line {inner.lineno})")
    return found


def test_the_check_sees_a_test_defined_under_an_if() -> None:
    src = "if dbutil.pg_requested():\n\n    async def test_only_here(session):\n        pass\n"
    assert conditional_tests(src) == ["test_only_here (line 3)"]


def test_no_test_is_defined_conditionally() -> None:
    offenders = {
        str(path.relative_to(TESTS)): found
        for path in sorted(TESTS.rglob("*.py"))
        if (found := conditional_tests(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}
