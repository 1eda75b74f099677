"""The /my chart renders its Chinese labels with the bundled CJK font, no glyph missing."""

from __future__ import annotations

import io
import warnings

import pytest

from handlers.kit.charts import MonthChart, cjk_font_family, render_month_chart, render_month_chart_async
from storage.fonts import cjk_font_path

ZH = MonthChart(
    title="张三 2026 年每月服务时长",
    ylabel="小时",
    month_labels=[f"{m}月" for m in range(1, 13)],
    hours=[0, 1.5, 0, 0, 2, 0, 0, 0, 0, 0, 4.5, 0],
)


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_chinese_labels_render_without_missing_glyphs() -> None:
    with warnings.catch_warnings():
        # matplotlib warns "Glyph ... missing from font(s) ..." for every character it cannot draw.
        warnings.simplefilter("error")
        data = render_month_chart(ZH)
    assert png_size(data) == (800, 400)


def test_the_font_is_the_bundled_cjk_one() -> None:
    from matplotlib import font_manager

    path = cjk_font_path()
    assert "mplfonts" in path.parts and path.name == "NotoSansCJKsc-Regular.otf"
    family = cjk_font_family()
    assert family == "Noto Sans CJK SC"
    found = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    assert found == str(path)


def test_a_font_of_the_same_family_on_the_machine_does_not_take_its_place(monkeypatch, tmp_path) -> None:
    """Regression: with Debian's fonts-noto-cjk installed, matplotlib found the system's Noto Sans
    CJK SC (loaded before the bundled file, and as good a match) and drew with it."""
    import dataclasses
    import shutil

    from matplotlib import font_manager

    manager = font_manager.fontManager
    bundled = str(cjk_font_path())
    other = tmp_path / "NotoSansCJK-Regular.otf"
    shutil.copy(bundled, other)  # a real file of the same family, elsewhere
    family = cjk_font_family()
    first = next(f for f in manager.ttflist if f.fname == bundled)
    monkeypatch.setattr(manager, "ttflist", [dataclasses.replace(first, fname=str(other)), *manager.ttflist])
    manager._findfont_cached.cache_clear()
    cjk_font_family.cache_clear()
    try:
        assert cjk_font_family() == family
        found = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        assert found == bundled
    finally:
        cjk_font_family.cache_clear()
        manager._findfont_cached.cache_clear()


def test_a_font_without_chinese_would_be_caught() -> None:
    """The check above can fail: the default font has no Chinese glyphs, and matplotlib says so."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    fig.add_subplot().set_title("小时", fontfamily="DejaVu Sans")
    with pytest.warns(UserWarning, match="missing from font"):
        fig.savefig(io.BytesIO(), format="png")


async def test_rendering_in_a_thread_gives_the_same_kind_of_image() -> None:
    data = await render_month_chart_async(ZH)
    assert png_size(data) == (800, 400)


def test_a_chart_needs_twelve_months() -> None:
    with pytest.raises(ValueError):
        render_month_chart(MonthChart("t", "y", ["1"] * 11, [0.0] * 11))
