"""The demo's terminal chat, without a terminal: a real aiogram Bot writes to people through the
emulator, and the chat's output goes to a StringIO."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiogram import Bot
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from demo.terminal_chat import TerminalChat, merge_changes, render, stdin_lines
from emulator import Emulator
from storage.models import Role
from storage.seed import DemoPerson
from tests.emulator.conftest import PNG, TOKEN, close_bot, make_bot

ZHANG = DemoPerson(1, 7_700_000_011, "张伟", "zh", Role.MEMBER, "餐饮协会党支部")
LI = DemoPerson(2, 7_700_000_003, "李建华", "zh", Role.SECRETARY, "餐饮协会党支部")
LIU = DemoPerson(3, 7_700_000_012, "刘洋", "zh", Role.MEMBER, "餐饮协会党支部")


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as e:
        e.add_bot(TOKEN, first_name="支部助手")
        yield e


@pytest.fixture
async def bot(emu: Emulator) -> AsyncIterator[Bot]:
    b = make_bot(emu)
    yield b
    await close_bot(b)


@pytest.fixture
def out() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def chat(emu: Emulator, out: io.StringIO, tmp_path: Path) -> TerminalChat:
    return TerminalChat(emu, emu.bot().id, [ZHANG, LI, LIU], out=out, files_dir=tmp_path / "files")


def keyboard(*labels: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=f"b:{i}") for i, t in enumerate(labels)]]
    )


def test_render_shows_links_and_styles_only_on_a_tty() -> None:
    text = "😀 请 批准 详情"
    # Offsets count UTF-16 units: the emoji is two.
    ents = [
        {"type": "bold", "offset": 5, "length": 2},
        {"type": "text_link", "offset": 8, "length": 2, "url": "https://x.cn/a"},
    ]
    assert render(text, ents, color=False) == "😀 请 批准 详情 (https://x.cn/a)"
    assert render(text, ents, color=True) == "😀 请 \x1b[1m批准\x1b[22m 详情 (https://x.cn/a)"


async def test_bot_message_is_printed_with_numbered_buttons_and_a_number_presses(chat, emu, bot, out) -> None:
    await bot.send_message(
        ZHANG.telegram_id,
        "<b>待审核</b> 1 条 <a href='https://example.org/e/1'>详情</a>",
        parse_mode="HTML",
        reply_markup=keyboard("批准", "驳回"),
    )
    assert await chat.drain()
    assert "  待审核 1 条 详情 (https://example.org/e/1)" in chat.transcript
    assert "  [1] 批准   [2] 驳回" in chat.transcript
    assert "\x1b[" not in out.getvalue()  # not a TTY: no escape codes

    assert await chat.handle_line("2")
    (update,) = emu.pending_updates()
    assert update["callback_query"]["data"] == "b:1"
    assert update["callback_query"]["from"]["id"] == ZHANG.telegram_id
    assert "（按下「驳回」）" in chat.transcript


async def test_bad_button_number_explains_and_backslash_sends_the_number(chat, emu, bot) -> None:
    await chat.handle_line("3")
    assert chat.transcript[-1].startswith("现在没有可以按的按钮")
    await bot.send_message(ZHANG.telegram_id, "请选择", reply_markup=keyboard("是", "否"))
    await chat.drain()
    await chat.handle_line("3")
    assert "没有第 3 个按钮（一共 2 个）" in chat.transcript[-1]
    assert emu.pending_updates() == []
    await chat.handle_line("\\3")
    (update,) = emu.pending_updates()
    assert update["message"]["text"] == "3"


async def test_photo_from_the_bot_is_saved_and_its_path_printed(chat, bot, tmp_path) -> None:
    await bot.send_photo(ZHANG.telegram_id, BufferedInputFile(PNG, "chart.png"), caption="本月服务时长")
    await chat.drain()
    saved = list((tmp_path / "files").iterdir())
    assert len(saved) == 1 and saved[0].read_bytes() == PNG
    assert f"  [图片已保存：{saved[0]}]" in chat.transcript
    assert "  本月服务时长" in chat.transcript


async def test_edit_shows_the_message_again_and_its_new_buttons(chat, emu, bot) -> None:
    msg = await bot.send_message(ZHANG.telegram_id, "第一步", reply_markup=keyboard("下一步"))
    await chat.drain()
    await bot.edit_message_text(
        "第二步", chat_id=ZHANG.telegram_id, message_id=msg.message_id, reply_markup=keyboard("完成", "返回")
    )
    await chat.drain()
    assert "支部助手 （修改了之前的消息）" in chat.transcript
    assert chat.transcript[-1] == "  [1] 完成   [2] 返回"
    await chat.handle_line("1")
    assert emu.pending_updates()[-1]["callback_query"]["data"] == "b:0"


async def test_messages_to_someone_else_wait_until_you_switch_to_them(chat, bot) -> None:
    await bot.send_message(LI.telegram_id, "有 1 条服务记录待审核")
    await chat.drain()
    assert chat.transcript[-1] == "（李建华 收到 1 条新消息，输入 /as 李建华 查看）"
    assert "  有 1 条服务记录待审核" not in chat.transcript

    await chat.handle_line("/as 李书记")
    assert chat.current is LI
    assert "你现在的身份是 李建华（书记 · 餐饮协会党支部）。" in chat.transcript
    assert chat.transcript[-1] == "  有 1 条服务记录待审核"


async def test_as_without_a_name_lists_people_and_finds_by_number_or_part(chat) -> None:
    await chat.handle_line("/as")
    assert "  1. 张伟  党员 · 餐饮协会党支部  ← 当前" in chat.transcript
    assert "  2. 李建华(李书记)  书记 · 餐饮协会党支部" in chat.transcript
    await chat.handle_line("/as 3")
    assert chat.current is LIU
    await chat.handle_line("/as 王")
    assert chat.transcript[-1] == "没有找到“王”。输入 /as 查看所有人。"
    assert chat.current is LIU


async def test_photo_and_file_are_sent_as_the_current_person(chat, emu, tmp_path) -> None:
    pic, doc, txt = tmp_path / "a.png", tmp_path / "名单.csv", tmp_path / "not.png"
    pic.write_bytes(PNG)
    doc.write_bytes("姓名\n张三\n".encode())
    txt.write_bytes(b"hello")
    await chat.handle_line(f"/photo {pic} 活动照片")
    await chat.handle_line(f"/file {doc}")
    await chat.handle_line(f"/photo {txt}")
    await chat.handle_line(f"/photo {tmp_path / 'missing.png'}")
    photo, document = emu.pending_updates()
    assert photo["message"]["caption"] == "活动照片" and photo["message"]["photo"]
    assert document["message"]["document"]["file_name"] == "名单.csv"
    assert chat.transcript[-2] == f"{txt} 不是图片（支持 PNG、JPEG、GIF、WebP）。"
    assert chat.transcript[-1] == f"找不到文件：{tmp_path / 'missing.png'}"


async def test_text_goes_to_the_bot_and_quit_leaves(chat, emu) -> None:
    assert await chat.handle_line("/help\n")
    (update,) = emu.pending_updates()
    assert update["message"]["text"] == "/help"
    assert update["message"]["entities"][0]["type"] == "bot_command"
    assert await chat.handle_line("   ")
    assert not await chat.handle_line("/quit")


async def test_run_reads_until_end_of_input_and_prints_replies_as_they_come(chat, emu, bot) -> None:
    async def lines() -> AsyncIterator[str | None]:
        yield "你好"
        update = await emu.wait_for(lambda: emu.pending_updates(), 5)
        assert update[0]["message"]["text"] == "你好"
        await bot.send_message(ZHANG.telegram_id, "收到")
        await chat.wait_output("  收到", 5)
        yield None
        yield "never read"

    await chat.run(lines())
    assert len(emu.pending_updates()) == 1


def test_merge_keeps_one_entry_per_message_as_sent() -> None:
    a, b = SimpleNamespace(message_id=1), SimpleNamespace(message_id=2)
    merged = merge_changes([("sent", a), ("sent", b), ("edited", a)])  # type: ignore[list-item]
    assert [(k, m.message_id) for k, m in merged] == [("sent", 2), ("sent", 1)]


async def test_stdin_lines_reads_a_stream_in_a_thread() -> None:
    got = [line async for line in stdin_lines(io.StringIO("/as 李书记\n/pending\n"))]
    assert got == ["/as 李书记\n", "/pending\n", None]


async def test_a_reply_of_two_messages_numbers_its_buttons_on_from_one_to_the_next(chat, emu, bot) -> None:
    async def reply_twice() -> None:
        await emu.wait_for(lambda: emu.pending_updates(), 5)
        await bot.send_message(ZHANG.telegram_id, "待审核", reply_markup=keyboard("通过 1", "退回 1"))
        await bot.send_message(ZHANG.telegram_id, "待评议", reply_markup=keyboard("评议 1"))

    replier = asyncio.create_task(reply_twice())

    async def wait_handled(update_id: int) -> None:
        await replier  # the bot is done once both messages are out

    chat.handled = wait_handled
    watcher = asyncio.create_task(chat.watch())
    try:
        await chat.handle_line("/pending")
    finally:
        watcher.cancel()
    assert "  [1] 通过 1   [2] 退回 1" in chat.transcript
    assert "  [3] 评议 1" in chat.transcript
    await chat.handle_line("3")
    assert emu.pending_updates()[-1]["callback_query"]["data"] == "b:0"
    assert emu.pending_updates()[-1]["callback_query"]["message"]["text"] == "待评议"


async def test_buttons_that_went_away_cannot_be_pressed(chat, emu, bot) -> None:
    msg = await bot.send_message(ZHANG.telegram_id, "请选择", reply_markup=keyboard("是"))
    await chat.drain()
    await bot.edit_message_text("已选择", chat_id=ZHANG.telegram_id, message_id=msg.message_id)
    await chat.drain()
    await chat.handle_line("1")
    assert chat.transcript[-1].startswith("现在没有可以按的按钮")
    assert emu.pending_updates() == []


async def test_english_chrome_lists_names_the_english_way(emu, tmp_path) -> None:
    li_ming = DemoPerson(4, 7_700_000_005, "李明", "zh", Role.SECRETARY, "地理学会党支部")
    chat = TerminalChat(
        emu, emu.bot().id, [ZHANG, LI, li_ming], out=io.StringIO(), files_dir=tmp_path, locale="en"
    )
    await chat.handle_line("/as 李")
    assert chat.transcript[-1] == '"李" could be several people: 李建华, 李明. Please be more specific.'
    await chat.handle_line("/as 李书记")  # both are 李书记
    assert chat.transcript[-1].startswith('"李书记" could be several people: 李建华, 李明.')
    await chat.handle_line("/as 李建华")  # an exact name is one person
    assert chat.transcript[-1] == "You are now 李建华 (secretary · 餐饮协会党支部)."
