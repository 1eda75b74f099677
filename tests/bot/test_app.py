"""bot.app.create_app: the settings that shape one bot process."""

from __future__ import annotations

from bot.app import create_app
from config.settings import Settings


def _settings(**kw: object) -> Settings:
    return Settings(_env_file=None, bot_token="42:TEST", database_url="sqlite+aiosqlite://", **kw)  # type: ignore[arg-type]


async def test_updates_in_flight_bounds_the_intake() -> None:
    # The setting, not a constant, decides; 128 by default (config/settings.py says why).
    for settings, expected in ((_settings(), 128), (_settings(updates_in_flight=5), 5)):
        app = create_app(settings)
        try:
            assert app.intake.max_in_flight == expected
        finally:
            await app.bot.session.close()
            await app.engine.dispose()
