"""A local Telegram Bot API emulator for tests, benchmarks and the offline demo.

See emulator/README.md. The main entry point is `Emulator` (core.py)."""

from emulator.errors import SimError
from emulator.server import Emulator
from emulator.state import CallbackAnswer, ChatMessage, SimBot, SimGroup, SimUser

__all__ = ["CallbackAnswer", "ChatMessage", "Emulator", "SimBot", "SimError", "SimGroup", "SimUser"]
