"""The CJK font every drawing uses: the Noto Sans CJK SC that the `mplfonts` package ships.

It comes with the project's own install, never from a font installed by hand on the machine, so
a chart, a PDF or an image shows the same glyphs everywhere. Finding it imports nothing heavy
(neither mplfonts, which pulls in matplotlib, nor docx or openpyxl): a bot process may call it
without loading what it does not use (tests/bot/test_lazy_imports.py).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

CJK_FONT = "NotoSansCJKsc-Regular.otf"


@cache
def cjk_font_path() -> Path:
    """The font file inside the installed `mplfonts` package (found without importing it)."""
    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the mplfonts package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / CJK_FONT
    if not path.is_file():
        raise RuntimeError(f"mplfonts does not ship {CJK_FONT}")
    return path
