"""The /my chart: a member's approved hours per month, as a PNG.

The Chinese labels need a CJK font. It comes with the project's own install (the `mplfonts`
package ships Noto Sans CJK SC), never from a font installed by hand on the machine, so the
chart renders the same everywhere. matplotlib runs headless (Agg) and is imported only when a
chart is first drawn, so the bot starts without paying for it.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from storage.fonts import cjk_font_path

BAR_COLOR = "#c0392b"

# matplotlib's global state (rcParams, the font manager) is not thread-safe: one chart at a time.
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class MonthChart:
    """What to draw, with every label already in the reader's language."""

    title: str
    ylabel: str
    month_labels: Sequence[str]  # 12 labels, January first
    hours: Sequence[float]  # 12 values, January first


@lru_cache(maxsize=1)
def cjk_font_family() -> str:
    """Register the bundled CJK font with matplotlib (once) and return its family name."""
    from matplotlib import font_manager

    path = cjk_font_path()
    manager = font_manager.fontManager
    manager.addfont(str(path))
    family = str(font_manager.FontProperties(fname=str(path)).get_name())
    # A machine may have the same family installed (Debian's fonts-noto-cjk has it in a .ttc):
    # matplotlib would pick either. Only the bundled file keeps the family's name here.
    manager.ttflist = [f for f in manager.ttflist if f.name != family or f.fname == str(path)]
    manager._findfont_cached.cache_clear()  # type: ignore[attr-defined]
    return family


def render_month_chart(chart: MonthChart) -> bytes:
    """The chart as PNG bytes. Blocking: call it through `render_month_chart_async` from handlers."""
    if len(chart.hours) != 12 or len(chart.month_labels) != 12:
        raise ValueError("a month chart needs 12 values and 12 labels")
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _lock:
        family = cjk_font_family()
        with matplotlib.rc_context({"font.family": [family], "axes.unicode_minus": False}):
            fig = Figure(figsize=(8, 4), dpi=100)
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
            x = list(range(12))
            bars = ax.bar(x, list(chart.hours), color=BAR_COLOR, width=0.6)
            ax.set_xticks(x, list(chart.month_labels))
            ax.set_title(chart.title)
            ax.set_ylabel(chart.ylabel)
            ax.set_ylim(0, max(1.0, max(chart.hours) * 1.2))
            ax.spines[["top", "right"]].set_visible(False)
            ax.bar_label(bars, labels=[f"{h:.1f}" if h else "" for h in chart.hours], fontsize=8)
            fig.tight_layout()
            out = io.BytesIO()
            fig.savefig(out, format="png")
    return out.getvalue()


async def render_month_chart_async(chart: MonthChart) -> bytes:
    """Draw in a worker thread, so the event loop keeps serving other chats meanwhile."""
    return await asyncio.to_thread(render_month_chart, chart)
