"""What the Bot API methods and the webhook sender need from the emulator that runs them.

`core.Engine` is one such host. Typing against this protocol (rather than importing core) keeps
the emulator's parts in one direction: state, spec, ... ← host ← methods, webhook ← core ←
control ← server. Another back-end (a bridge to another messenger) can be a host too and reuse
request parsing, spec validation, the update queue and message ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from emulator.files import FileStore
from emulator.spec import Upload
from emulator.state import CallbackAnswer, Dialog, Signal, SimBot, SimGroup, SimUser
from emulator.stats import Stats


class WebhookControl(Protocol):
    async def set(self, bot: SimBot, params: dict[str, Any]) -> None: ...

    async def delete(self, bot: SimBot, drop_pending: bool) -> None: ...


class Host(Protocol):
    clock: Callable[[], float]
    files: FileStore
    stats: Stats
    changed: Signal
    callback_answers: list[CallbackAnswer]
    closing: bool

    @property
    def webhooks(self) -> WebhookControl: ...

    def loop_time(self) -> float: ...

    def find_chat(self, chat_id: int | None) -> SimUser | SimGroup | None: ...

    def dialog(self, bot_id: int, chat_id: int) -> Dialog: ...

    def is_blocked(self, bot_id: int, user_id: int) -> bool: ...

    def has_started(self, bot_id: int, user: SimUser) -> bool: ...

    async def execute(
        self, token: str, method: str, raw: dict[str, Any], files: dict[str, Upload] | None = None
    ) -> tuple[int, dict[str, Any] | str]: ...
