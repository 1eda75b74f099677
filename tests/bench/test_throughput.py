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


def _run(label: str, rate: float, cpu_ms: float) -> throughput.Run:
    n = 1000
    return throughput.Run(label, n, n / rate, [0.01, 0.02, 0.03], 100.0, cpu_ms * n / 1000)


def test_the_prose_states_this_runs_figures_only() -> None:
    slow = {"sqlite": (_run("echo", 1600, 0.6), _run("ours", 190, 5.0))}
    text = throughput.render(slow, 10, 1)
    assert "sqlite: 5.00 ms of CPU per update against the echo bot's 0.60 ms (8.3×)" in text
    assert "busy 95% of one core" in text and "CPU-bound" in text
    assert "Not reached in this run: 0.5 on sqlite" in text
    # Figures of earlier runs are not carried over as if measured now.
    assert "about 5 ms" not in text and "0.02" not in text and "0.6 ms" not in text
    fast = {"postgres": (_run("echo", 1000, 0.6), _run("ours", 600, 0.9))}
    text = throughput.render(fast, 10, 1)
    assert "postgres: 0.90 ms of CPU per update" in text and "busy 54% of one core" in text
    assert "CPU-bound" not in text and "Not reached" not in text
    assert "Reached in this run: 0.5 or more on every backend measured." in text
