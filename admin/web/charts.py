"""Dashboard charts, drawn on the server with matplotlib as SVG.

Why server-side SVG: no JavaScript and no chart library to vendor, so the pages keep a strict
self-only Content-Security-Policy; the text is drawn as paths with the Noto Sans CJK SC font that
mplfonts ships, so Chinese labels look the same on every machine, with no font needed in the
browser; and SVG stays sharp when printed. Each chart is also shown as a table beside it.

matplotlib is not thread-safe and a chart takes tens of milliseconds, so drawing happens in a
worker thread behind one lock, and the results are cached by their data.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from storage.fonts import cjk_font_path

RED = "#a8323a"
RED_LIGHT = "#e9b9bc"
AMBER = "#c98a2b"
GREEN = "#3b7d5c"
BLUE = "#3f6c9b"
GRAY = "#9aa1ab"
INK = "#2b2f36"
GRID = "#e6e8ec"

_lock = threading.Lock()
_cache: OrderedDict[str, bytes] = OrderedDict()
CACHE_SIZE = 128
WIDTH, HEIGHT = 4.8, 2.5  # inches at 100 dpi: about the width of a dashboard card


@lru_cache(maxsize=1)
def _font() -> Any:
    from matplotlib import font_manager

    path = cjk_font_path()
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path))


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    note: str = ""  # printed at the end of the bar


def _fp(size: float) -> Any:
    from matplotlib import font_manager

    _font()
    return font_manager.FontProperties(fname=str(cjk_font_path()), size=size)


def _figure(
    width: float, height: float, rect: tuple[float, float, float, float] | None = None
) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    # Fixed sizes, no tight cropping: every chart scales by the same factor in its card.
    fig = Figure(figsize=(width, height), dpi=100, layout=None if rect else "constrained")
    fig.patch.set_alpha(0)
    ax = fig.add_axes(rect) if rect else fig.add_subplot()
    ax.set_facecolor("none")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color(GRID)
    ax.tick_params(colors=INK, labelsize=9, length=0)
    return fig, ax


def _svg(fig: Any) -> bytes:
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "branchbot"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def _labels(ax: Any, axis: str) -> None:
    font = _fp(9)
    for t in ax.get_xticklabels() if axis == "x" else ax.get_yticklabels():
        t.set_fontproperties(font)


def columns(bars: list[Bar], unit: str) -> bytes:
    """Vertical bars (hours per month)."""
    fig, ax = _figure(WIDTH, HEIGHT)
    xs = range(len(bars))
    values = [b.value for b in bars]
    ax.bar(xs, values, color=RED, width=0.62, zorder=2)
    ax.set_xticks(list(xs), [b.label for b in bars])
    ax.yaxis.grid(True, color=GRID, zorder=0)
    ax.set_ylim(0, max([*values, 1]) * 1.18)
    for x, b in zip(xs, bars, strict=True):
        if b.value:
            ax.text(x, b.value, f"{b.value:g}", ha="center", va="bottom", color=INK, fontproperties=_fp(8))
    _labels(ax, "x")
    return _svg(fig)


def hbars(bars: list[Bar], *, limit: float | None = None, color: str = BLUE, percent: bool = False) -> bytes:
    """Horizontal bars, first bar on top (participation by branch, scores by checklist)."""
    height = max(1.2, 0.36 * len(bars) + 0.35)
    fig, ax = _figure(WIDTH, height)
    ys = list(range(len(bars)))[::-1]
    values = [b.value for b in bars]
    top = limit if limit is not None else max([*values, 1])
    if limit is not None:
        ax.barh(ys, [limit] * len(bars), color=GRID, height=0.5, zorder=1)
    ax.barh(ys, values, color=color, height=0.5, zorder=2)
    ax.set_ylim(-0.6, len(bars) - 0.4)
    ax.set_yticks(ys, [b.label for b in bars])
    ax.set_xlim(0, top * 1.0001)
    ax.xaxis.set_visible(False)
    ax.spines["bottom"].set_visible(False)
    for y, b in zip(ys, bars, strict=True):
        text = b.note or (f"{b.value:.0f}%" if percent else f"{b.value:g}")
        ax.text(top * 1.01, y, text, va="center", ha="left", color=INK, fontproperties=_fp(8))
    _labels(ax, "y")
    return _svg(fig)


def donut(parts: list[tuple[str, float, str]], center: str) -> bytes:
    """A ring of (label, value, colour) with a figure in the middle and a legend beside it."""
    fig, ax = _figure(WIDTH, HEIGHT, rect=(0.02, 0.04, 0.46, 0.92))
    ax.axis("off")
    values = [v for _, v, _ in parts]
    if sum(values) <= 0:
        values, colors = [1], [GRID]
    else:
        colors = [c for _, _, c in parts]
    ax.pie(
        values,
        colors=colors,
        startangle=90,
        counterclock=False,
        wedgeprops={"width": 0.34, "edgecolor": "white"},
    )
    ax.set_aspect("equal")
    ax.text(0, 0, center, ha="center", va="center", color=INK, fontproperties=_fp(18))
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=f"{label}  {v:g}") for label, v, c in parts]
    legend = ax.legend(
        handles=handles,
        loc="center left",
        bbox_to_anchor=(1.08, 0.5),
        frameon=False,
        prop=_fp(10),
        handlelength=1.2,
        labelspacing=0.9,
    )
    for t in legend.get_texts():
        t.set_color(INK)
    return _svg(fig)


def _key(kind: str, data: Any) -> str:
    raw = json.dumps([kind, data], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def _draw_cached(key: str, draw: Callable[[], bytes]) -> bytes:
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
        svg = draw()
        _cache[key] = svg
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return svg


async def render(kind: str, data: Any, draw: Callable[[], bytes]) -> bytes:
    """The SVG for `data`, drawn off the event loop (the bot shares it) and cached."""
    key = _key(kind, data)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    return await asyncio.to_thread(_draw_cached, key, draw)
