"""The content pack's one error, below both the pack's loader and its YAML reader."""

from __future__ import annotations

from pathlib import Path


class PackError(Exception):
    """A broken pack: names the file, the line and the problem."""

    def __init__(self, file: Path, line: int | None, problem: str) -> None:
        self.file, self.line, self.problem = file, line, problem
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"content pack error in {where}: {problem}")
