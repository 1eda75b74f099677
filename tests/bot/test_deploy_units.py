"""The systemd units in deploy/ start real `branchbot` commands: each ExecStart parses with the
command line's own parser, and the parts they start cover everything `branchbot run` runs."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from bot.cli import build_parser
from bot.runtime import PARTS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))


def exec_start(unit: Path) -> list[str]:
    cfg = configparser.ConfigParser(interpolation=None, strict=False)
    cfg.optionxform = str  # type: ignore[assignment,method-assign]
    cfg.read(unit, encoding="utf-8")
    line = cfg["Service"]["ExecStart"]
    argv = shlex.split(line.replace("%i", "8081"))
    assert Path(argv[0]).name == "branchbot", f"{unit.name}: ExecStart does not run branchbot"
    return argv[1:]


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_exec_start_is_a_branchbot_command(unit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(exec_start(unit))  # SystemExit on an unknown command/option
    assert callable(args.func)


def test_the_units_start_every_part_once() -> None:
    parts = [p for u in UNITS for p in build_parser().parse_args(exec_start(u)).only]
    assert sorted(parts) == sorted(PARTS)


def test_a_wrong_exec_start_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nExecStart=/opt/branchbot/.venv/bin/branchbot run --only robot\n")
    with pytest.raises(SystemExit):
        build_parser().parse_args(exec_start(bad))
