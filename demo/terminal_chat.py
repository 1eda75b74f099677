"""The demo's chat in a terminal: a person talks to the bot through the local emulator.

Lines typed are sent as the current person's messages; the bot's messages to that person are
printed as they arrive, its HTML already parsed by the emulator into plain text and entities,
which are shown as a terminal can (bold with ANSI on a TTY, links as text and address).
Inline buttons are listed as [1] [2] ...; typing a number presses that button. Numbering starts
again with each reply that has buttons and runs on across its messages (a reply of two messages
with buttons shows [1]..[9] and [10] [11]), so a number always means one button of the latest
buttons shown. Pictures and files the bot sends are saved to a folder.

Demo commands (never sent to the bot): /as <name>, /who, /menu, /photo <path>, /file <path>,
/demo, /quit. `TerminalChat` writes to any text stream, so tests drive it without a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from content.i18n import Texts, texts
from emulator import Emulator
from emulator.files import image_info
from emulator.state import ChatMessage, SimUser
from storage.seed import DemoPerson

Handled = Callable[[int], Awaitable[None]]

BOLD, ITALIC, UNDERLINE, STRIKE, DIM, RESET = "1", "3", "4", "9", "2", "0"
_STYLE = {"bold": BOLD, "italic": ITALIC, "underline": UNDERLINE, "strikethrough": STRIKE}
_UNSTYLE = {BOLD: "22", ITALIC: "23", UNDERLINE: "24", STRIKE: "29", DIM: "22"}
QUIT = ("/quit", "/exit")
MAX_BUTTON_DIGITS = 2


# ---- rendering the bot's text --------------------------------------------------------------------


def _utf16_index(text: str) -> list[int]:
    """Python index for each UTF-16 offset (entities count UTF-16 code units), plus the end."""
    out: list[int] = []
    for i, ch in enumerate(text):
        out.extend([i] * (2 if ord(ch) > 0xFFFF else 1))
    out.append(len(text))
    return out


def _sgr(code: str) -> str:
    return f"\x1b[{code}m"


def render(text: str, entities: Sequence[dict[str, Any]], *, color: bool) -> str:
    """Message text as a terminal shows it: styles as ANSI (if `color`), links as "text (url)"."""
    if not entities:
        return text
    index = _utf16_index(text)
    opens: dict[int, list[str]] = {}
    closes: dict[int, list[str]] = {}
    for e in entities:
        start = index[min(int(e["offset"]), len(index) - 1)]
        end = index[min(int(e["offset"]) + int(e["length"]), len(index) - 1)]
        kind = e.get("type")
        if kind == "text_link" and e.get("url"):
            closes.setdefault(end, []).append(f" ({e['url']})")
        elif kind == "text_mention" and e.get("user"):
            closes.setdefault(end, []).append(f" (tg://user?id={e['user'].get('id')})")
        code = _STYLE.get(str(kind)) if color else None
        if code:
            opens.setdefault(start, []).append(_sgr(code))
            closes.setdefault(end, []).insert(0, _sgr(_UNSTYLE[code]))
    out: list[str] = []
    for i, ch in enumerate(text):
        out.extend(closes.get(i, ()))
        out.extend(opens.get(i, ()))
        out.append(ch)
    out.extend(closes.get(len(text), ()))
    return "".join(out)


def merge_changes(changes: Sequence[tuple[str, ChatMessage]]) -> list[tuple[str, ChatMessage]]:
    """One entry per message, in the order each last changed: the message as it is now is what
    is shown, so a message sent and then edited shows once, as sent."""
    got: dict[int, tuple[str, ChatMessage]] = {}
    for kind, msg in changes:
        earlier = got.pop(msg.message_id, None)
        if earlier is not None and earlier[0] == "sent" and kind == "edited":
            kind = "sent"
        got[msg.message_id] = (kind, msg)
    return list(got.values())


def button_rows(message: ChatMessage) -> list[list[dict[str, Any]]]:
    markup = message.reply_markup or {}
    return [list(r) for r in (markup.get("inline_keyboard") or markup.get("keyboard") or [])]


# ---- the chat ----------------------------------------------------------------------------------


@dataclass
class _Seen:
    """Per person: messages not shown yet (while someone else was talking), and which button each
    number shown last presses."""

    backlog: list[tuple[str, ChatMessage]] = field(default_factory=list)
    numbers: dict[int, tuple[int, int]] = field(default_factory=dict)  # n -> (message id, button index)
    saved: set[tuple[int, str]] = field(default_factory=set)  # (message id, file id) already saved


class TerminalChat:
    def __init__(
        self,
        emulator: Emulator,
        bot_id: int,
        people: Sequence[DemoPerson],
        *,
        out: TextIO,
        files_dir: Path,
        locale: str = "zh",
        handled: Handled | None = None,
        color: bool | None = None,
        prompt: bool | None = None,
        bot_name: str | None = None,
    ) -> None:
        if not people:
            raise ValueError("the demo needs at least one person to talk as")
        self.emu = emulator
        self.bot_id = bot_id
        self.people = list(people)
        self.out = out
        self.files_dir = files_dir
        self._: Texts = texts(locale)
        self.handled = handled
        tty = bool(getattr(out, "isatty", lambda: False)())
        self.color = tty if color is None else color
        self.prompt = tty if prompt is None else prompt
        self.bot_name = bot_name or emulator.bot(bot_id).first_name
        self.users: dict[int, SimUser] = {
            p.telegram_id: emulator.users.get(p.telegram_id)
            or emulator.add_user(p.name, id=p.telegram_id, language_code=p.locale or "zh")
            for p in self.people
        }
        self.seen: dict[int, _Seen] = {p.telegram_id: _Seen() for p in self.people}
        self.current = self.people[0]
        self.transcript: list[str] = []
        self._written = asyncio.Event()
        self._at_prompt = False
        # While a typed line waits for the bot, the watcher holds back: the whole reply is then
        # shown (and its buttons numbered) as one, however its messages trickled in.
        self._busy = 0

    # ---- output --------------------------------------------------------------------------------

    def write(self, text: str = "") -> None:
        if self._at_prompt:
            self.out.write("\n")
            self._at_prompt = False
        self.out.write(text + "\n")
        self.out.flush()
        self.transcript.append(text)
        self._written.set()

    def note(self, text: str) -> None:
        self.write(f"{_sgr(DIM)}{text}{_sgr(RESET)}" if self.color else text)

    def show_prompt(self) -> None:
        if self.prompt and not self._at_prompt:
            self.out.write(f"{self.current.name} › ")
            self.out.flush()
            self._at_prompt = True

    @property
    def output(self) -> str:
        return "\n".join(self.transcript)

    async def wait_output(self, contains: str, timeout: float = 10.0) -> str:
        """Wait until the transcript mentions `contains` (for tests and scripted sessions)."""
        async with asyncio.timeout(timeout):
            while contains not in self.output:
                self._written.clear()
                await self._written.wait()
        return self.output

    # ---- people --------------------------------------------------------------------------------

    @property
    def user(self) -> SimUser:
        return self.users[self.current.telegram_id]

    def _role(self, p: DemoPerson) -> str:
        return self._.plain(f"role.{p.role.value}")

    def show_who(self) -> None:
        p = self.current
        self.write(self._.plain("demo.talking_as", name=p.name, role=self._role(p), org=p.org_name))

    def show_people(self) -> None:
        self.write(self._.plain("demo.people_title"))
        for n, p in enumerate(self.people, 1):
            aliases = f"({self._.plain('demo.list_separator').join(p.aliases)})" if p.aliases else ""
            line = self._.plain(
                "demo.person_line", n=n, name=p.name, aliases=aliases, role=self._role(p), org=p.org_name
            )
            mark = f"  {self._.plain('demo.current')}" if p is self.current else ""
            self.write(f"  {line}{mark}")

    def find_person(self, query: str) -> list[DemoPerson]:
        q = query.strip()
        if q.isdigit() and 1 <= int(q) <= len(self.people):
            return [self.people[int(q) - 1]]
        exact = [p for p in self.people if q == p.name or q in p.aliases]
        return exact or [p for p in self.people if q and (q in p.name or any(q in a for a in p.aliases))]

    def pick_person(self, query: str) -> DemoPerson | None:
        """The one person `query` names; else None, and the chat says why."""
        found = self.find_person(query)
        if not found:
            self.write(self._.plain("demo.no_such_person", name=query))
            return None
        if len(found) > 1:
            names = self._.plain("demo.list_separator").join(p.name for p in found)
            self.write(self._.plain("demo.ambiguous_person", name=query, names=names))
            return None
        return found[0]

    async def switch_to(self, query: str) -> None:
        found = self.pick_person(query)
        if found is None:
            return
        self.current = found
        self.show_who()
        await self.show_waiting()

    async def show_waiting(self) -> None:
        """What came for the person just switched to while someone else was talking."""
        await self.drain()
        seen = self.seen[self.current.telegram_id]
        if seen.backlog:
            self.note(self._.plain("demo.backlog", name=self.current.name))
            backlog, seen.backlog = merge_changes(seen.backlog), []
            self.show_batch(backlog)

    # ---- the bot's side ------------------------------------------------------------------------

    async def drain(self) -> bool:
        """Show what the bot did in the current person's chat since last time; count the rest.

        Runs without yielding to the loop (reading with timeout 0 never waits), so output from
        two callers cannot interleave. True if anything was printed.
        """
        printed = False
        for p in self.people:
            changes = await self._take_changes(self.users[p.telegram_id])
            if not changes:
                continue
            if p is self.current:
                self.show_batch(changes)
                printed = True
            else:
                seen = self.seen[p.telegram_id]
                seen.backlog.extend(changes)
                count = len({m.message_id for k, m in seen.backlog if k == "sent"})
                if count and any(k == "sent" for k, _ in changes):
                    self.note(self._.plain("demo.unread", name=p.name, count=count))
                    printed = True
        return printed

    async def _take_changes(self, user: SimUser) -> list[tuple[str, ChatMessage]]:
        """Everything in the person's chat not read yet (timeout 0: returns at once)."""
        got: list[tuple[str, ChatMessage]] = []
        while True:
            try:
                got.append(await self.emu.next_change(user, timeout=0, bot=self.bot_id))
            except TimeoutError:
                return merge_changes(got)

    def show_batch(self, changes: Sequence[tuple[str, ChatMessage]]) -> None:
        """Show changes in one chat; if any has buttons, they become what numbers press."""
        numbers: dict[int, tuple[int, int]] = {}
        for kind, msg in changes:
            self.show_change(kind, msg, numbers)
        if not changes:
            return
        seen = self.seen[changes[0][1].chat_id]
        if numbers:
            seen.numbers = numbers
        else:  # buttons shown earlier may have just gone (a message edited without them)
            shown = {m.message_id for _k, m in changes}
            seen.numbers = {n: b for n, b in seen.numbers.items() if b[0] not in shown}

    def show_change(self, kind: str, msg: ChatMessage, numbers: dict[int, tuple[int, int]]) -> None:
        if kind == "deleted":
            self.note(self._.plain("demo.deleted", bot=self.bot_name))
            return
        header = self.bot_name + (" " + self._.plain("demo.edited") if kind == "edited" else "")
        self.write(f"{_sgr(BOLD)}{header}{_sgr(RESET)}" if self.color else header)
        saved = self._save_file(msg)
        if saved:
            self.write(f"  {saved}")
        body = msg.text if msg.text is not None else msg.caption
        ents = msg.entities if msg.text is not None else msg.caption_entities
        if body:
            for line in render(body, ents, color=self.color).split("\n"):
                self.write(f"  {line}")
        index = 0
        for row in button_rows(msg):
            cells = []
            for b in row:
                n = len(numbers) + 1
                numbers[n] = (msg.message_id, index)
                index += 1
                cells.append(f"[{n}] {b.get('text', '')}")
            self.write("  " + "   ".join(cells))

    def _save_file(self, msg: ChatMessage) -> str | None:
        f = msg.photo or msg.document
        if f is None:
            return None
        if msg.photo is not None:
            name = f"photo.{f.file_path.rpartition('.')[2] or 'jpg'}"
        else:
            name = Path(f.file_name or f.file_path).name
        path = self.files_dir / f"{msg.chat_id}-{msg.message_id}-{name}"
        seen = self.seen[msg.chat_id]
        if (msg.message_id, f.file_id) not in seen.saved:
            self.files_dir.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f.data)
            seen.saved.add((msg.message_id, f.file_id))
        key = "demo.photo_saved" if msg.photo is not None else "demo.document_saved"
        return self._.plain(key, path=str(path))

    async def watch(self) -> None:
        """Print the bot's messages as they arrive, until cancelled."""
        while True:
            if not self._busy and await self.drain():
                self.show_prompt()
            # No await between the drain and registering for the next change: nothing is missed.
            await self.emu.changed.wait(None)

    # ---- the person's side -----------------------------------------------------------------------

    async def handle_line(self, line: str) -> bool:
        """Act on one typed line. False when the person asked to leave."""
        self._busy += 1
        try:
            return await self._handle(line)
        finally:
            self._busy -= 1

    async def _handle(self, line: str) -> bool:
        text = line.rstrip("\r\n")
        stripped = text.strip()
        if not stripped:
            return True
        word, _sp, rest = stripped.partition(" ")
        cmd = word.lower()
        if cmd in QUIT:
            return False
        if cmd == "/as":
            if rest.strip():
                await self.switch_to(rest)
            else:
                self.show_people()
        elif cmd == "/who":
            self.show_who()
        elif cmd == "/demo":
            self.write(self._.plain("demo.commands", files=str(self.files_dir)))
        elif cmd == "/menu":
            self.show_menu()
        elif cmd in ("/photo", "/file"):
            await self.send_file(cmd, rest)
        elif stripped.isdigit() and len(stripped) <= MAX_BUTTON_DIGITS:
            await self.press(int(stripped))
        else:
            if stripped.startswith("\\"):
                stripped = stripped[1:]  # "\2" sends "2" as text rather than pressing button 2
            if stripped:
                await self.send_text(stripped)
        return True

    async def _after(self, update: dict[str, Any]) -> None:
        """Wait for the bot to handle the update, then show what it did."""
        if self.handled is not None:
            try:
                await self.handled(int(update["update_id"]))
            except TimeoutError:
                self.note(self._.plain("demo.no_reply"))
        await self.drain()

    async def send_text(self, text: str) -> None:
        update = await self.emu.send_text(self.user, text, bot=self.bot_id)
        await self._after(update)

    def _button(self, n: int) -> tuple[ChatMessage, dict[str, Any]] | None:
        """The message and button that number `n` stands for, if it is still there."""
        numbers = self.seen[self.current.telegram_id].numbers
        if n not in numbers:
            return None
        message_id, index = numbers[n]
        chat = self.emu.chat(self.user, bot=self.bot_id)
        msg = next((m for m in chat if m.message_id == message_id), None)
        if msg is None or index >= len(msg.buttons):
            return None
        return msg, msg.buttons[index]

    async def press(self, n: int) -> None:
        numbers = self.seen[self.current.telegram_id].numbers
        found = self._button(n)
        if found is None:
            key = "demo.no_such_button" if numbers else "demo.no_buttons"
            self.write(self._.plain(key, n=n, count=len(numbers)))
            return
        msg, b = found
        if b.get("url"):
            self.write(self._.plain("demo.url_button", url=b["url"]))
            return
        self.note(self._.plain("demo.pressed", text=b.get("text", "")))
        data = b.get("callback_data")
        update = await self.emu.press(self.user, msg, data=data, text=None if data else b.get("text"))
        await self._after(update)
        query = update.get("callback_query")
        if query is not None:
            answer = next((a for a in self.emu.callback_answers if a.query_id == query["id"]), None)
            if answer is not None and answer.text:
                self.note(self._.plain("demo.alert" if answer.show_alert else "demo.toast", text=answer.text))

    async def send_file(self, cmd: str, rest: str) -> None:
        usage = "demo.usage_photo" if cmd == "/photo" else "demo.usage_file"
        try:
            parts = shlex.split(rest)
        except ValueError:
            parts = []
        if not parts:
            self.write(self._.plain(usage))
            return
        path, data = await asyncio.to_thread(_read, parts[0])
        caption = " ".join(parts[1:]) or None
        if data is None:
            self.write(self._.plain("demo.file_missing", path=str(path)))
            return
        if cmd == "/photo":
            if image_info(data) is None:
                self.write(self._.plain("demo.not_an_image", path=str(path)))
                return
            update = await self.emu.send_photo(self.user, data, caption, bot=self.bot_id)
        else:
            update = await self.emu.send_document(self.user, data, path.name, caption, bot=self.bot_id)
        await self._after(update)

    def show_menu(self) -> None:
        commands = self.emu.menu(self.user, bot=self.bot_id)
        self.write(self._.plain("demo.menu_title", name=self.current.name))
        if not commands:
            self.write("  " + self._.plain("demo.menu_empty"))
        for c in commands:
            self.write(f"  /{c.get('command')}  {c.get('description', '')}")

    # ---- the loop ------------------------------------------------------------------------------

    async def run(self, lines: AsyncIterator[str | None]) -> None:
        """Read lines until /quit or the end of input, printing the bot's messages meanwhile."""
        watcher = asyncio.create_task(self.watch(), name="terminal-chat-watch")
        try:
            self.show_prompt()
            async for line in lines:
                self._at_prompt = False  # the Enter that ended the line left the prompt's line
                if line is None or not await self.handle_line(line):
                    break
                self.show_prompt()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if self._at_prompt:
                self.out.write("\n")
                self._at_prompt = False


def _read(raw: str) -> tuple[Path, bytes | None]:
    path = Path(raw).expanduser()
    try:
        return path, path.read_bytes()
    except OSError:
        return path, None


async def stdin_lines(stream: TextIO | None = None) -> AsyncIterator[str | None]:
    """Lines from stdin without blocking the event loop: a reader thread feeds a queue.

    On a terminal `input()` gives line editing; None marks the end of input (Ctrl-D).
    """
    stream = stream or sys.stdin
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    interactive = stream is sys.stdin and stream.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())

    def read() -> None:
        while True:
            try:
                line: str | None = input() if interactive else stream.readline() or None
            except (EOFError, OSError, ValueError):
                line = None
            try:
                loop.call_soon_threadsafe(queue.put_nowait, line)
            except RuntimeError:  # the loop has closed: the demo is over
                return
            if line is None:
                return

    # A daemon thread: a pending read must not keep the process alive after /quit.
    threading.Thread(target=read, name="demo-stdin", daemon=True).start()
    while True:
        item = await queue.get()
        yield item
        if item is None:
            return
