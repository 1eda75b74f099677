"""Start-up refuses bad configuration with one line and exit code 2, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def base_env(tmp_path: Path) -> dict[str, str]:
    import os

    return {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}


def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    r = run("db", "upgrade", env={**base_env(tmp_path), "TIMEZONE": "Mars/Olympus"})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "branchbot: bad setting TIMEZONE: unknown time zone 'Mars/Olympus'"
    ]


def test_run_without_a_token_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in base_env(tmp_path).items() if k != "BOT_TOKEN"}
    r = run("run", env={**env, "BOT_TOKEN": ""})
    assert r.returncode == 2
    assert "BOT_TOKEN" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_broken_content_pack_names_file_and_line(tmp_path: Path) -> None:
    # The broken copy is kept in the test's own folder (CONTENT_PACK takes a path): one written
    # under content/packs/ would be seen by any other run of the suite from the same checkout.
    broken = tmp_path / "zz-broken-test-pack"
    shutil.copytree(ROOT / "content" / "packs" / "qh-2015", broken)
    (broken / "actions.yaml").write_text(
        "- id: volunteer\n  title: {zh: 志愿, en: x}\n  nonsense: 1\n", encoding="utf-8"
    )
    r = run(
        "run",
        env={
            **base_env(tmp_path),
            "BOT_TOKEN": "1:x",
            "CONTENT_PACK": str(broken),
            "TELEGRAM_API_URL": "http://127.0.0.1:9",
        },
    )
    assert r.returncode == 2, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert "zz-broken-test-pack/actions.yaml:1:" in line and "description: Field required" in line


def test_every_command_has_its_owner_listed_so_a_named_command_loads_only_its_module() -> None:
    from bot.cli import OWNERS, build_parser

    full = build_parser()
    (sub,) = [a for a in full._actions if a.dest == "cmd"]
    assert set(sub.choices) == set(OWNERS)  # type: ignore[arg-type]
    for name in OWNERS:
        one = build_parser([name])
        (only,) = [a for a in one._actions if a.dest == "cmd"]
        assert name in only.choices  # type: ignore[operator]


def test_an_admin_command_does_not_import_the_bot() -> None:
    import subprocess
    import sys

    probe = (
        "import sys; from bot.cli import build_parser; build_parser(['org']); print('aiogram' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_a_short_admin_secret_stops_start_up(tmp_path: Path) -> None:
    r = run("db", "upgrade", env={**base_env(tmp_path), "ADMIN_SECRET": "x"})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "branchbot: bad setting ADMIN_SECRET: must be at least 32 bytes (e.g. `openssl rand -hex 32`)"
    ]
    # 32 bytes are enough (here 11 characters of 3 bytes each, as UTF-8 counts them).
    ok = run("db", "upgrade", env={**base_env(tmp_path), "ADMIN_SECRET": "密" * 11})
    assert ok.returncode == 0, ok.stderr


def test_webhook_mode_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in base_env(tmp_path).items() if k != "WEBHOOK_SECRET"}
    r = run(
        "run",
        env={
            **env,
            "BOT_TOKEN": "1:x",
            "WEBHOOK_URL": "https://bot.example.org/tg",
            "TELEGRAM_API_URL": "http://127.0.0.1:9",
        },
    )
    assert r.returncode == 2, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("branchbot: bad setting WEBHOOK_SECRET: required when WEBHOOK_URL is set")


def test_a_command_on_a_never_migrated_database_says_to_migrate(tmp_path: Path) -> None:
    r = run("org", "list", env=base_env(tmp_path))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "branchbot: problem: the database has no schema -> run `branchbot db upgrade`"
    ]


def test_a_command_on_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    # Port 9 (discard) has no PostgreSQL: the connection is refused at once.
    env = {**base_env(tmp_path), "DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:9/x"}
    r = run("org", "list", env=env)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "unreachable" in line and "DATABASE_URL" in line


def test_a_migrated_database_lists_without_complaint(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    assert run("db", "upgrade", env=env).returncode == 0
    r = run("org", "list", env=env)
    assert r.returncode == 0, r.stderr
    assert "problem" not in r.stderr


def test_several_bot_processes_need_a_webhook_and_redis(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "BOT_TOKEN": "1:x", "TELEGRAM_API_URL": "http://127.0.0.1:9"}
    env = {k: v for k, v in env.items() if k not in ("WEBHOOK_URL", "WEBHOOK_SECRET", "REDIS_URL")}
    r = run("run", "--only", "bot", "--processes", "2", env=env)
    assert r.returncode == 2, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("branchbot: bad setting WEBHOOK_URL: required for --processes")
    hooked = {**env, "WEBHOOK_URL": "https://bot.example.org/tg", "WEBHOOK_SECRET": "s3cret"}
    r = run("run", "--only", "bot", "--processes", "2", env=hooked)
    assert r.returncode == 2, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("branchbot: bad setting REDIS_URL: required for --processes")
    r = run("run", "--processes", "2", env={**hooked, "REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert r.returncode == 2, r.stderr
    assert "add --only bot" in r.stderr
