"""The broadcast benchmark runs end to end at a tiny scale (no timing assertions: it must not rot)."""

from __future__ import annotations

from pathlib import Path

from bench import broadcast
from tests import dbutil


async def test_tiny_run_loses_and_doubles_nothing_and_writes_its_section(tmp_path: Path) -> None:
    doc = tmp_path / "b.md"
    doc.write_text("# Benchmarks\n\n<!-- other:begin -->\nkept\n<!-- other:end -->\n", encoding="utf-8")
    pg = dbutil.pg_requested()
    backend = ["--backend", "postgres", "--pg", pg] if pg else ["--backend", "sqlite"]
    args = broadcast.parse_args(["--scale", "0.01", "--rate", "200", "--out", str(doc), *backend])
    r = await broadcast.main_async(args)
    assert (r.notice.recipients, r.notice.blocked) == (30, 1)
    assert r.notice.lost == r.notice.duplicates == 0 and r.notice.injected == 3
    assert r.notice.replies and all(w > 0 for w in r.notice.replies)  # answers timed during the wave
    assert r.slow.lost == r.slow.duplicates == 0 and r.slow.latency > 0
    assert r.baseline.lost == r.baseline.duplicates == 0
    assert r.reminders.reminders == 100 and r.reminders.lost == r.reminders.duplicates == 0
    text = doc.read_text(encoding="utf-8")
    assert "<!-- other:begin -->\nkept\n<!-- other:end -->" in text
    assert text.count("<!-- broadcast:begin -->") == 1 and text.count("<!-- broadcast:end -->") == 1
    assert "| delivery worker | 30 (1 blocked) |" in text


def test_the_reminder_prose_states_this_runs_delay() -> None:
    def b() -> broadcast.BroadcastResult:
        return broadcast.BroadcastResult(10, 1, 10, 1.0, 0.0, 30, 0, 0, 0, 3, 0, 0, 2, 0.1)

    rem = broadcast.ReminderResult(
        100, 30, 1.0, enqueued_after=3.0, first_send=3.25, total=5.0, lost=0, duplicates=0
    )
    args = broadcast.parse_args(["--scale", "0.01", "--rate", "30", "--backend", "sqlite"])
    text = broadcast.report(args, "sqlite", broadcast.Results(b(), b(), b(), rem))
    assert "sent the first 0.25 s after\nthat commit" in text
    assert "within milliseconds" not in text
