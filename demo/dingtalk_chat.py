"""The terminal chat of `branchbot demo --platform dingtalk`: the newcomer is a DingTalk user of the
stand-in (bridge/dingtalk/standin.py) and sees what DingTalk would show them — robot messages
and interactive cards as the bridge made them — while typing, pressing card buttons by number and
sending pictures goes through the stand-in, the real `dingtalk-stream` client and the bridge.

The commands are the terminal chat's (`/as`, `/photo`, `/file`, a number presses a button…);
only where messages come from and go to differs.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bridge.dingtalk.standin import Card, DingTalkStandIn, DtUser, Sent, card_buttons
from demo.terminal_chat import BOLD, RESET, Handled, TerminalChat, _read, _sgr
from emulator.files import image_info
from storage.seed import DemoPerson

if TYPE_CHECKING:  # the SDK (imported by relay) must not load before the demo sets its endpoint
    from bridge.dingtalk.relay import DingTalkBridge

RELAY_TIMEOUT = 15.0
_ESCAPED = re.compile(r"\\(.)")


def plain_markdown(markdown: str) -> str:
    """DingTalk markdown as the chat shows it: line breaks, no escapes, no bold marks."""
    text = markdown.replace("  \n", "\n").replace("**", "").replace("`", "")
    return _ESCAPED.sub(r"\1", text)


@dataclass
class _Shown:
    sent: set[int] = field(default_factory=set)  # seq of robot messages shown
    cards: dict[str, tuple[int, str]] = field(default_factory=dict)  # outTrackId -> (updates, tips) shown
    numbers: dict[int, tuple[Card, str]] = field(default_factory=dict)  # n -> (card, button id)
    unread: int = 0


class DingTalkChat(TerminalChat):
    def __init__(
        self,
        standin: DingTalkStandIn,
        bridge: DingTalkBridge,
        people: Sequence[DemoPerson],
        dingtalk_users: dict[int, DtUser],  # telegram_id (the bridge's id) -> DingTalk user
        *,
        out: TextIO,
        files_dir: Path,
        locale: str = "zh",
        handled: Handled | None = None,
        color: bool | None = None,
        prompt: bool | None = None,
        bot_name: str | None = None,
    ) -> None:
        super().__init__(
            bridge.front,
            bridge.bot.id,
            people,
            out=out,
            files_dir=files_dir,
            locale=locale,
            handled=handled,
            color=color,
            prompt=prompt,
            bot_name=bot_name,
        )
        self.standin, self.bridge = standin, bridge
        self.dt_users = dingtalk_users
        self.shown: dict[int, _Shown] = {p.telegram_id: _Shown() for p in self.people}

    @property
    def dt_user(self) -> DtUser:
        return self.dt_users[self.current.telegram_id]

    # ---- what DingTalk shows ---------------------------------------------------------------------

    def _new_items(self, telegram_id: int) -> list[Sent | Card]:
        shown = self.shown[telegram_id]
        out: list[Sent | Card] = []
        for item in self.standin.inbox(self.dt_users[telegram_id]):
            if isinstance(item, Sent):
                if item.seq not in shown.sent and not item.recalled:
                    out.append(item)
            elif shown.cards.get(item.out_track_id) != (item.updates, str(item.data.get("tips", ""))):
                out.append(item)
        return out

    def _unread(self, telegram_id: int) -> int:
        """How many new messages and cards wait in someone else's chat. A command-menu card
        is not announced: at the start every person gets one (DingTalk has no command menu,
        README of the bridge), which would make as many notices as there are people; each is
        shown when the chat switches to its person."""
        shown = self.shown[telegram_id]
        return sum(
            1
            for i in self._new_items(telegram_id)
            if isinstance(i, Sent)
            or (i.out_track_id not in shown.cards and not self.bridge.is_menu(i.out_track_id))
        )

    async def drain(self) -> bool:
        """Show what DingTalk shows the current person since last time; count the rest."""
        printed = False
        for p in self.people:
            shown = self.shown[p.telegram_id]
            if p is self.current:
                items = self._new_items(p.telegram_id)
                if not items:
                    continue
                numbers: dict[int, tuple[Card, str]] = {}
                for item in items:
                    self._show(item, shown, numbers)
                if numbers:
                    shown.numbers = numbers
                shown.unread = 0
                printed = True
            else:
                count = self._unread(p.telegram_id)
                if count != shown.unread:
                    if count > shown.unread:
                        self.note(self._.plain("demo.unread", name=p.name, count=count))
                        printed = True
                    shown.unread = count
        return printed

    def _show(self, item: Sent | Card, shown: _Shown, numbers: dict[int, tuple[Card, str]]) -> None:
        header = self.bot_name
        if isinstance(item, Card):
            edited = item.out_track_id in shown.cards
            shown.cards[item.out_track_id] = (item.updates, str(item.data.get("tips", "")))
            if edited:
                header += " " + self._.plain("demo.edited")
            self.write(f"{_sgr(BOLD)}{header}{_sgr(RESET)}" if self.color else header)
            self.write("  ┌" + "─" * 30)
            for line in plain_markdown(str(item.data.get("markdown", ""))).split("\n"):
                self.write(f"  │ {line}")
            tips = str(item.data.get("tips", ""))
            if tips:
                self.write(f"  │ · {plain_markdown(tips)}")
            cells = []
            for b in card_buttons(item):
                n = len(numbers) + 1
                numbers[n] = (item, str(b.get("id") or b.get("url") or ""))
                cells.append(f"[{n}] {b.get('text', '')}")
            if cells:
                self.write("  │ " + "   ".join(cells))
            self.write("  └" + "─" * 30)
            return
        shown.sent.add(item.seq)
        self.write(f"{_sgr(BOLD)}{header}{_sgr(RESET)}" if self.color else header)
        if item.msg_key in ("sampleImageMsg", "sampleFile"):
            self.write(f"  {self._save(item)}")
            return
        body = str(item.param.get("text") or item.param.get("content") or "")
        for line in plain_markdown(body).split("\n"):
            self.write(f"  {line}")

    def _save(self, item: Sent) -> str:
        media_id = str(item.param.get("photoURL") or item.param.get("mediaId"))
        _kind, file_name, data = self.standin.media[media_id]
        photo = item.msg_key == "sampleImageMsg"
        name = Path(str(item.param.get("fileName") or file_name or "file")).name
        path = self.files_dir / f"{self.dt_user.user_id}-{item.seq}-{name}"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return self._.plain("demo.photo_saved" if photo else "demo.document_saved", path=str(path))

    async def show_waiting(self) -> None:
        if self._new_items(self.current.telegram_id):
            self.note(self._.plain("demo.backlog", name=self.current.name))
        await self.drain()

    async def watch(self) -> None:
        while True:
            if not self._busy and await self.drain():
                self.show_prompt()
            try:
                await self.standin.wait_for(self._anything_new, timeout=3600)
            except TimeoutError:
                continue

    def _anything_new(self) -> bool:
        if self._busy:
            return False
        return bool(self._new_items(self.current.telegram_id)) or any(
            self._unread(p.telegram_id) != self.shown[p.telegram_id].unread
            for p in self.people
            if p is not self.current
        )

    # ---- what the person does --------------------------------------------------------------------

    async def _after_frame(self) -> None:
        """The frame reached the bridge (acked: its update is queued); wait for the bot to handle
        it and for the bridge to relay what the bot did, then show it."""
        try:
            await self.standin.wait_for(lambda: not self.standin.pending(), RELAY_TIMEOUT)
            if self.handled is not None:
                await self.handled(self.bridge.bot.next_update_id - 1)
            await self.bridge.settled(RELAY_TIMEOUT)
        except TimeoutError:
            self.note(self._.plain("demo.no_reply"))
        await self.drain()

    async def send_text(self, text: str) -> None:
        await self.standin.send_text(self.dt_user, text)
        await self._after_frame()

    async def press(self, n: int) -> None:
        numbers = self.shown[self.current.telegram_id].numbers
        if n not in numbers:
            key = "demo.no_such_button" if numbers else "demo.no_buttons"
            self.write(self._.plain(key, n=n, count=len(numbers)))
            return
        card, button_id = numbers[n]
        button = next((b for b in card_buttons(card) if b.get("id") == button_id), None)
        if button is None:  # gone from the card since it was shown
            self.write(self._.plain("demo.no_such_button", n=n, count=len(numbers)))
            return
        if not button.get("request"):
            self.write(self._.plain("demo.url_button", url=button.get("url", "")))
            return
        self.note(self._.plain("demo.pressed", text=button.get("text", "")))
        await self.standin.press(self.dt_user, card, button_id)
        await self._after_frame()

    async def send_file(self, cmd: str, rest: str) -> None:
        usage = "demo.usage_photo" if cmd == "/photo" else "demo.usage_file"
        try:
            parts = shlex.split(rest)
        except ValueError:
            parts = []
        if not parts:
            self.write(self._.plain(usage))
            return
        path, data = _read(parts[0])
        if data is None:
            self.write(self._.plain("demo.file_missing", path=str(path)))
            return
        if cmd == "/photo":
            if image_info(data) is None:
                self.write(self._.plain("demo.not_an_image", path=str(path)))
                return
            await self.standin.send_picture(self.dt_user, data)
        else:
            await self.standin.send_file(self.dt_user, data, path.name)
        await self._after_frame()
