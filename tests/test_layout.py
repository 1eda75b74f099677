"""The house's floors: which folder may import which (docs/architecture.md draws the same diagram).

Every import counts: at the top of a module, inside a function, under `if TYPE_CHECKING:`.
A lower floor that imports a higher one, or a circle of modules inside one folder, fails here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# folder -> the other folders it may import. Ground floors first.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "content": set(),
    "storage": {"content"},
    "handlers": {"storage", "content", "config"},
    "admin": {"storage", "content", "config"},
    "bot": {"handlers", "admin", "storage", "content", "config"},
    "demo": {"bot", "handlers", "admin", "emulator", "bridge", "storage", "content", "config"},
    "emulator": set(),
    # The chat bridges (bridge/dingtalk) serve the emulator's Bot API front;
    # their stand-ins (standin.py) import nothing of ours.
    "bridge": {"emulator", "storage", "content", "config"},
    # The benchmarks make their PostgreSQL database and run delivery worker processes with the
    # tests' helpers (tests/dbutil.py, tests/bot/worker_process.py); bench/dingtalk_outbox.py
    # measures the DingTalk bridge.
    "bench": {"bot", "handlers", "admin", "emulator", "bridge", "storage", "content", "config", "tests"},
    "tests": {
        "config",
        "content",
        "storage",
        "handlers",
        "admin",
        "bot",
        "demo",
        "emulator",
        "bench",
        "bridge",
    },
}
PACKAGES = set(ALLOWED)

# The emulator's own floors: a module imports only modules on lower floors.
EMULATOR_FLOORS: list[set[str]] = [
    {"errors", "spec", "state", "limits", "faults", "entities"},  # data and the Bot API's rules
    {"wire", "files", "stats", "validate"},
    {"host"},  # the protocol methods and webhook see instead of the engine
    {"methods", "webhook"},
    {"core"},  # Engine: the call pipeline, simulated people
    {"keys"},
    {"control"},  # the control API over HTTP
    {"server"},  # Emulator: the engine served over HTTP
    {"client", "__init__"},
    {"__main__"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            found[module_name(path)] = path
    return found


def imports_of(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file, resolved to a module when it is one of ours."""
    known = modules()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                # `from pkg import sub` imports the module pkg.sub when there is one.
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if sub in known else target


def ours(target: str) -> str | None:
    """The module of ours an import names (the longest known prefix), or None."""
    known = modules()
    parts = target.split(".")
    if parts[0] not in PACKAGES:
        return None
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in known:
            return candidate
    return None


@cache
def graph() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name, path in modules().items():
        out[name] = set()
        for _line, target in imports_of(name, path):
            mod = ours(target)
            if mod is not None and mod != name:
                out[name].add(mod)
    return out


def test_the_walk_sees_imports_inside_functions_and_type_checking() -> None:
    # Guards the walker itself: these imports sit in a function and under TYPE_CHECKING.
    assert "config.settings" in graph()["bot.cli"]
    assert "emulator.host" in graph()["emulator.methods"]


def test_no_folder_imports_a_higher_floor() -> None:
    wrong = []
    for name, path in sorted(modules().items()):
        here = name.split(".")[0]
        for line, target in imports_of(name, path):
            there = target.split(".")[0]
            if there in PACKAGES and there != here and there not in ALLOWED[here]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert wrong == []


def test_the_emulator_imports_in_one_direction() -> None:
    floor = {mod: i for i, mods in enumerate(EMULATOR_FLOORS) for mod in mods}
    emulator_modules = [m for m in modules() if m == "emulator" or m.startswith("emulator.")]
    short = {m: ("__init__" if m == "emulator" else m.removeprefix("emulator.")) for m in emulator_modules}
    unplaced = sorted(s for s in short.values() if s not in floor)
    assert unplaced == [], "give each emulator module a floor in EMULATOR_FLOORS"
    wrong = []
    for mod in emulator_modules:
        for target in graph()[mod]:
            if target in short and floor[short[target]] >= floor[short[mod]]:
                wrong.append(f"{mod} imports {target}")
    assert sorted(wrong) == []


@pytest.mark.parametrize("package", sorted(PACKAGES - {"tests"}))
def test_no_circle_of_modules_inside_a_folder(package: str) -> None:
    inside = {m: {t for t in ts if t.split(".")[0] == package} for m, ts in graph().items()}
    inside = {m: ts for m, ts in inside.items() if m.split(".")[0] == package}
    # Tarjan's strongly connected components: any with more than one module is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in inside.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(inside):
        if v not in index:
            visit(v)
    assert circles == []
