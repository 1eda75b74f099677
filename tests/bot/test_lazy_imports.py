"""A bot process carries only what it uses: the heavy libraries of charts, workbooks, PDFs and the
admin web are imported when first needed, not when the bot starts (issue 11, memory)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("matplotlib", "openpyxl", "docx", "fpdf", "starlette", "numpy", "PIL", "emulator", "prompt_toolkit")

# What `branchbot run --only bot` imports before its first update: the command line (which
# registers every area's subcommands), the app, the runtime and every router of the dispatcher.
_PROBE = """
import json, sys
import bot.app, bot.runtime
from bot.cli import build_parser
build_parser()
from handlers import routers
routers()
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
"""


def _loaded(probe: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", probe % (HEAVY,)], capture_output=True, text=True, check=True, timeout=120
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_bot_process_does_not_import_heavy_libraries() -> None:
    assert _loaded(_PROBE) == []
