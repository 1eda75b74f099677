"""Settings from the environment or `.env` (names as in DESIGN.md).

A bad value stops start-up with one line naming the setting (see `load_settings`).
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SUPPORTED_LOCALES = ("zh", "en")
ADMIN_SECRET_MIN_BYTES = 32
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: str = Field(default="", description="Telegram bot token from @BotFather")
    bot_username: str = "branchbot_demo_bot"  # for invite deep links: t.me/<username>?start=<code>
    telegram_api_url: str = "https://api.telegram.org"
    database_url: str = "sqlite+aiosqlite:///./data/branchbot.db"
    redis_url: str | None = None
    # False: the gate does not pace messages to Telegram's 30/s per bot and 1/s per chat (a Bot
    # API server without those limits, such as the emulator in bench/throughput.py, which
    # measures the update path and not Telegram's limits); 429s are still obeyed.
    telegram_limits: bool = True
    # Updates a polling bot process has taken in and not finished: those of different chats are
    # handled at once, each needing one of the pool's connections (SQLite: one; PostgreSQL:
    # DB_POOL_SIZE, 10) while its transaction is open; those of one chat wait their turn. The
    # next batch is polled only as updates finish, and stored in the inbox before it is handled:
    # that store waits behind the updates in flight for a connection. On SQLite, with 32, the
    # process ran out of work meanwhile (busy 84-85% of a core under load, 196 polls for 3,020
    # updates); with 128 it stayed busy (93-94%, 55-57 polls) for about 5 MB more. On PostgreSQL
    # it did not change (docs/benchmarks.md, tenth round). Webhook processes do not use it.
    updates_in_flight: int = Field(default=128, ge=1, le=1000)
    webhook_url: str | None = None
    # Telegram sends it in X-Telegram-Bot-Api-Secret-Token with every update; without it anyone
    # who reaches the webhook port could post updates as any user, so webhook mode requires one.
    webhook_secret: str | None = Field(default=None, validate_default=True)
    webhook_host: str = "0.0.0.0"
    webhook_port: int = Field(default=8081, ge=1, le=65535)
    admin_host: str = "127.0.0.1"
    admin_port: int = Field(default=8080, ge=0, le=65535)
    admin_secret: str = Field(default="", description="key that signs admin cookies and sign-in links")
    # Admin web sessions end after this long without a request, and this long after sign-in.
    admin_session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    admin_session_hours: int = Field(default=8, ge=1, le=7 * 24)
    # Reverse proxies whose X-Forwarded-For names the client (addresses or networks, comma-
    # separated). From anyone else the header is ignored: it is the caller's to forge.
    admin_trusted_proxies: str = ""
    admin_public_url: str | None = None  # how people reach the admin web, if not http://ADMIN_HOST:ADMIN_PORT
    timezone: str = "Asia/Shanghai"
    default_locale: str = "zh"
    content_pack: str = "qh-2015"
    log_window_days: int = Field(default=90, ge=1, le=3650)
    evidence_dir: str = "./data/evidence"  # the folder that keeps members' evidence photos
    log_level: str = "INFO"
    # DingTalk bridge (`branchbot bridge dingtalk`; bridge/dingtalk/README.md): an internal app
    # with a robot in Stream mode. The bot then runs with TELEGRAM_API_URL=http://BRIDGE_HOST:BRIDGE_PORT.
    dingtalk_app_key: str = ""
    dingtalk_app_secret: str = ""
    dingtalk_robot_code: str = ""  # empty: the AppKey, as for an internal app's robot
    dingtalk_openapi_url: str = "https://api.dingtalk.com"
    dingtalk_oapi_url: str = "https://oapi.dingtalk.com"  # the older API: media upload
    bridge_host: str = "127.0.0.1"
    bridge_port: int = Field(default=8082, ge=0, le=65535)

    @field_validator("telegram_api_url", "dingtalk_openapi_url", "dingtalk_oapi_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _db(cls, v: str) -> str:
        if not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v

    @field_validator("default_locale")
    @classmethod
    def _locale(cls, v: str) -> str:
        if v not in SUPPORTED_LOCALES:
            raise ValueError(f"must be one of {', '.join(SUPPORTED_LOCALES)}")
        return v

    @field_validator("admin_secret")
    @classmethod
    def _admin_secret(cls, v: str) -> str:
        # Empty means "a random key per process" (sessions end on restart); a short one is a
        # mistake that would make the cookies' signature guessable, so it stops start-up.
        if v and len(v.encode("utf-8")) < ADMIN_SECRET_MIN_BYTES:
            raise ValueError(f"must be at least {ADMIN_SECRET_MIN_BYTES} bytes (e.g. `openssl rand -hex 32`)")
        return v

    @field_validator("admin_trusted_proxies")
    @classmethod
    def _proxies(cls, v: str) -> str:
        for part in filter(None, (p.strip() for p in v.split(","))):
            try:
                ip_network(part, strict=False)
            except ValueError as e:
                raise ValueError(f"not an address or network: {part!r}") from e
        return v

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v and not v.startswith("https://") and not v.startswith("http://"):
            raise ValueError("must be an http(s) URL")
        return v or None

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, v: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("webhook_url") and not v:
            raise ValueError("required when WEBHOOK_URL is set (1-256 characters: A-Z, a-z, 0-9, _ and -)")
        if v and not _SECRET_TOKEN.fullmatch(v):
            raise ValueError("1-256 characters of A-Z, a-z, 0-9, _ and - (what Telegram accepts)")
        return v or None

    @property
    def trusted_proxies(self) -> tuple[IPv4Network | IPv6Network, ...]:
        parts = (p.strip() for p in self.admin_trusted_proxies.split(","))
        return tuple(ip_network(p, strict=False) for p in parts if p)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def require_token(self) -> str:
        if not self.bot_token or ":" not in self.bot_token:
            raise SettingsError("BOT_TOKEN", "missing or not of the form 123456:ABC...")
        return self.bot_token


class SettingsError(Exception):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


def _first_error(e: ValidationError) -> SettingsError:
    err = e.errors()[0]
    name = str(err["loc"][0]).upper() if err.get("loc") else "settings"
    msg = err["msg"].removeprefix("Value error, ")
    return SettingsError(name, msg)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        raise _first_error(e) from None


def exit_on_bad_settings(e: SettingsError) -> None:
    """One line, exit code 2, no traceback: what a person starting the bot needs to see."""
    print(f"branchbot: bad setting {e}", file=sys.stderr)
    raise SystemExit(2)
