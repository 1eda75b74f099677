"""The throughput benchmark runs end to end at a tiny scale (no timing assertions: it must not rot)."""

from __future__ import annotations

from bench import throughput
from tests import dbutil


async def test_tiny_run_answers_every_update_of_both_bots() -> None:
    backend = "postgres" if dbutil.pg_requested() else "sqlite"
    args = throughput.parse_args(["--members", "4", "--per-member", "2", "--backend", backend, "--no-write"])
    results = await throughput.main_async(args)
    echo, ours = results[backend]
    assert echo.updates == ours.updates == 8
    assert len(echo.latencies) == len(ours.latencies) == 8
    assert ours.peak_rss_mb > 0 and ours.rate > 0 and ours.cpu_seconds > 0
    text = throughput.render(results, 4, 2)
    assert f"| {backend} | branchbot ({backend}) |" in text
