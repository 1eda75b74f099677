"""The store benchmark runs end to end at a tiny scale (no timing assertions: it must not rot)."""

from __future__ import annotations

from pathlib import Path

from bench import store
from bench.doc import markers
from tests import dbutil


def _args(tmp_path: Path, *more: str):
    pg = dbutil.pg_requested()
    backend = ["--backend", "postgres", "--pg", pg] if pg else ["--backend", "sqlite"]
    return store.parse_args(
        ["--scale", "0.0005", "--runs", "1", "--doc", str(tmp_path / "b.md"), *backend, *more]
    )


async def test_tiny_run_agrees_with_the_hand_written_queries_and_writes_its_section(tmp_path: Path) -> None:
    doc = tmp_path / "b.md"
    doc.write_text("# Benchmarks\n\n<!-- other:begin -->\nkept\n<!-- other:end -->\n", encoding="utf-8")
    # main_async raises SystemExit if the store and the hand-written SQL disagree.
    results = await store.main_async(_args(tmp_path))
    assert len(results) == 1
    r = results[0]
    assert r.rows == store.Scale.of(0.0005).entries and r.rate > 0
    assert set(r.timings) == {"branch monthly report", "province yearly summary"}
    await store.main_async(_args(tmp_path))  # a second run replaces the section
    text = doc.read_text(encoding="utf-8")
    begin, end = markers("store")
    assert text.count(begin) == 1 and text.count(end) == 1
    assert "kept" in text
    assert "province yearly summary" in text


def test_scale_options() -> None:
    full = store.Scale.of(1)
    assert (full.branches, full.members_per_branch, full.entries) == (100, 1000, 1_000_000)
    tiny = store.Scale.of(0.01)
    assert (tiny.branches, tiny.members_per_branch, tiny.entries) == (2, 10, 10_000)


def test_the_prose_states_this_runs_figures_only() -> None:
    r = store.Result("sqlite", "SQLite 3.99", rows=100, insert_seconds=1.0)
    r.timings = {store.BRANCH: (0.030, 0.010), store.SUBTREE: (0.5, 0.5)}
    text = store.render([r], store.Scale.of(0.01), 0.01, 3, [])
    assert "SQLite 3.99: 30.0 ms against 10.0 ms (ratio 3.00)" in text
    assert "its 10 people" in text  # the branch at this scale, not the full-scale 1,000
    # Figures of earlier runs are not carried over as if measured now.
    for stale in ("~10 ms", "above 1.2", "3.6 s", "±30%", "1,000 people"):
        assert stale not in text
