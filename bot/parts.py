"""The parts of `branchbot run` (`--only`), without importing any of them: the supervisor of
several bot processes reads them and starts, not runs, the bot."""

PARTS = ("bot", "worker", "scheduler", "admin")
