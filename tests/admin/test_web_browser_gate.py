"""The browser tests' gate (tests/browser/conftest.py): without chromium a newcomer's run says
plainly that it left them out; CI (BRANCHBOT_REQUIRE_BROWSER=1) fails instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pytest(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "BRANCHBOT_REQUIRE_BROWSER")
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/browser"],
        cwd=ROOT,
        env={**clean, "BRANCHBOT_CHROMIUM": "/nonexistent/chromium", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_chromium_the_browser_tests_are_left_out_plainly() -> None:
    r = _pytest()
    assert r.returncode == 5, r.stdout + r.stderr  # nothing collected: not a pass, not a skip
    assert "browser tests left out: chromium is not installed" in r.stdout
    assert "skipped" not in r.stdout


def test_ci_fails_when_chromium_is_missing() -> None:
    r = _pytest(BRANCHBOT_REQUIRE_BROWSER="1")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "BRANCHBOT_REQUIRE_BROWSER=1" in r.stdout + r.stderr
