"""The throughput benchmark runs end to end at a tiny scale (no timing assertions: it must not rot)."""

from __future__ import annotations

from bench import throughput
from tests import dbutil


async def test_tiny_run_answers_every_update_of_both_bots() -> None:
    backend = "postgres" if dbutil.pg_requested() else "sqlite"
    # 32 lines: about 60 ms of our CPU, several of the kernel's 10 ms ticks (with 8, a run that
    # used under one tick would read as no CPU at all, as the echo bot's once did).
    args = throughput.parse_args(["--members", "4", "--per-member", "8", "--backend", backend, "--no-write"])
    results = await throughput.main_async(args)
    echo, ours = results[backend]
    assert echo.updates == ours.updates == 32
    assert len(echo.latencies) == len(ours.latencies) == 32
    assert ours.peak_rss_mb > 0 and ours.rate > 0 and ours.cpu_seconds > 0
    text = throughput.render(results, 4, 8)
    assert f"| {backend} | branchbot ({backend}) |" in text


def _run(label: str, rate: float, cpu_ms: float, runnable: float = 0.0) -> throughput.Run:
    n = 1000
    return throughput.Run(label, n, n / rate, [0.01, 0.02, 0.03], 100.0, cpu_ms * n / 1000, runnable)


def test_the_prose_states_this_runs_figures_only() -> None:
    slow = {"sqlite": (_run("echo", 1600, 0.6), _run("ours", 190, 5.0))}
    text = throughput.render(slow, 10, 1)
    assert "sqlite: 5.00 ms of CPU per update against the echo bot's 0.60 ms (8.3×)" in text
    assert "busy 95% of one core" in text and "CPU-bound" in text
    assert "Not reached in this run: 0.5 on sqlite" in text
    # Figures of earlier runs are not carried over as if measured now.
    assert "about 5 ms" not in text and "0.02" not in text and "0.6 ms" not in text
    waited = {"postgres": (_run("echo", 500, 1.0, 0.5), _run("ours", 100, 4.0, 7.0))}
    # 10 s measured: ours busy 40%, waiting for a CPU 70%; the echo bot (2 s) 50% and 25%.
    text = throughput.render(waited, 10, 1)
    assert "busy 40% of one core while measured and ready to run but waiting for a CPU 70%" in text
    assert "(the echo bot: busy 50%, waiting 25%)" in text
    fast = {"postgres": (_run("echo", 1000, 0.6), _run("ours", 600, 0.9))}
    text = throughput.render(fast, 10, 1)
    assert "postgres: 0.90 ms of CPU per update" in text and "busy 54% of one core" in text
    assert "CPU-bound" not in text and "Not reached" not in text
    assert "Reached in this run: 0.5 or more on every backend measured." in text


@dbutil.postgres_only("the processes share PostgreSQL (and Redis)")
async def test_tiny_scaling_run_answers_every_update_with_one_and_two_processes() -> None:
    # 32 lines, as above: enough CPU for the kernel's ticks to count it.
    args = throughput.parse_args(["--scaling", "--members", "4", "--per-member", "8", "--repeat", "1"])
    args.no_write = True
    results = await throughput.main_scaling(args)
    assert [r.processes for r in results] == [1, 2]
    assert all(r.run.updates == len(r.run.latencies) == 32 for r in results)
    assert [len(r.peak_rss_each) for r in results] == [1, 2] and all(r.run.cpu_seconds > 0 for r in results)


def test_the_scaling_table_states_each_run_and_the_factor_of_the_means() -> None:
    runs = [
        throughput.Scaled(1, _run("1 bot process", 100, 5.0), [220.0], 0.3, 2.5),
        throughput.Scaled(2, _run("2 bot processes", 150, 6.0), [219.0, 218.0], 0.4, 2.7),
        throughput.Scaled(1, _run("1 bot process", 120, 5.0), [221.0], 0.3, 2.6),
        throughput.Scaled(2, _run("2 bot processes", 180, 6.0), [220.0, 220.0], 0.4, 2.8),
    ]
    text = throughput.render_scaling(runs, 10, 1)
    assert "| 2 | 2 | 2.7 | 150 |" in text and "| 219, 218 |" in text
    assert "**1.50**" in text  # (150 + 180) / 2 over (100 + 120) / 2
    assert "5.00 ms with one process, 6.00 ms with two" in text and "peaked at 218–221 MB" in text
    assert "no idle core" not in text  # the idle share was not recorded (nan)
    saturated = [throughput.Scaled(r.processes, r.run, r.peak_rss_each, 0.3, 4.0, 0.01) for r in runs]
    assert "at most 1% of its CPU idle" in throughput.render_scaling(saturated, 10, 1)


def test_the_lines_are_split_evenly_into_the_turns() -> None:
    assert throughput.rounds_of(20, 4) == [5, 5, 5, 5]
    assert throughput.rounds_of(10, 4) == [3, 3, 2, 2]
    assert throughput.rounds_of(2, 4) == [1, 1]  # no turn without lines
    assert throughput.rounds_of(3, 1) == [3]


def test_a_bots_turns_add_up_to_one_run() -> None:
    a = throughput.Run("ours", 100, 2.0, [0.1], 120.0, 0.5, 0.1)
    b = throughput.Run("ours", 300, 4.0, [0.2, 0.3], 130.0, 1.0, 0.2)
    run = throughput.combined([a, b])
    assert (run.updates, run.seconds, run.latencies) == (400, 6.0, [0.1, 0.2, 0.3])
    assert (run.peak_rss_mb, run.cpu_seconds, run.runnable_seconds) == (130.0, 1.5, 0.1 + 0.2)
    assert run.rate == 400 / 6.0


def test_a_run_too_short_for_the_cpu_clock_is_written_without_a_ratio() -> None:
    """Regression: a tiny run in which the echo bot used no measurable CPU (under one tick of
    the kernel's clock) raised ZeroDivisionError while writing the notes."""
    tiny = {"sqlite": (_run("echo", 400, 0.0), _run("ours", 200, 2.5))}
    text = throughput.render(tiny, 4, 2)
    assert "sqlite: 2.50 ms of CPU per update against the echo bot's 0.00 ms (too short to tell)" in text
