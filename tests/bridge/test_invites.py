"""The bot's invite link found and replaced in a message's text, its entities moved with it."""

from __future__ import annotations

from bridge.dingtalk.invites import Invite, find, replace_link
from bridge.dingtalk.markdown import to_markdown

CODE = "Ab3_d-EfGh1JkLmN0pQr"
LINK = f"https://t.me/branchbot_bot?start={CODE}"


def u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_only_the_bots_own_link_is_an_invite() -> None:
    assert find([None, f"加入：{LINK}"], "@BranchBot_bot") == Invite(LINK, CODE)
    assert find([f"https://t.me/other_bot?start={CODE}"], "branchbot_bot") is None
    assert find(["https://t.me/branchbot_bot", None], "branchbot_bot") is None


def test_the_link_is_replaced_and_the_entities_after_it_move() -> None:
    # 📨 counts two UTF-16 units: the offsets are Telegram's.
    head = "📨 邀请加入「一支部」"
    text = f"{head}\n{LINK}\n\n有效期至 12-04"
    entities = [
        {"type": "bold", "offset": 0, "length": u16(head)},
        {"type": "url", "offset": u16(head) + 1, "length": len(LINK)},
        {"type": "italic", "offset": u16(head) + 1 + len(LINK) + 2, "length": 4},
    ]
    line = f"发送 /start {CODE}"
    new_text, new_entities = replace_link(text, entities, Invite(LINK, CODE), line)
    assert new_text == f"{head}\n{line}\n\n有效期至 12-04"
    assert new_entities == [
        {"type": "bold", "offset": 0, "length": u16(head)},
        {"type": "italic", "offset": u16(head) + 1 + len(line) + 2, "length": 4},
    ]
    assert to_markdown(new_text, new_entities).endswith("*有效期至* 12-04")


def test_an_entity_around_the_link_stretches() -> None:
    text = f"看 {LINK} 吧"
    entities = [{"type": "bold", "offset": 0, "length": len(text)}]
    new_text, new_entities = replace_link(text, entities, Invite(LINK, CODE), "X")
    assert (new_text, new_entities) == ("看 X 吧", [{"type": "bold", "offset": 0, "length": 5}])
