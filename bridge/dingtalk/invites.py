"""Invites on DingTalk: the bot's invite link, rewritten into what a DingTalk person can use.

The bot's /invite (handlers/members.py, unchanged) sends a QR picture of
`https://t.me/<bot username>?start=<code>` with that link in its caption. On DingTalk the link
leads nowhere, and DingTalk documents no link that opens a robot's 1:1 chat (README §7 names
the pages read). So the bridge, passing the message on, makes of it:
- in the text, the link becomes 「在钉钉里给「支部助手」发送 /start CODE」 (what a person can do by
  hand: `/start CODE` typed in the robot chat works, README §7);
- the message becomes a card with a button 「发送 /start CODE」 that "types" the command for
  whoever presses it, in their own robot chat, as the command-menu card's buttons do. The card
  may be forwarded: a colleague who presses it joins the same way (the callback names the
  person who pressed);
- the picture becomes a QR code of the text `/start CODE`, with the same words printed under
  it: a printed poster says what to do without scanning at all, and DingTalk's scanner is
  expected to show the scanned text for copying (our expectation, not documented).
The bot's username comes from the front (what getMe answers), so only the bot's own links are
rewritten. The message as the bot sent it is what the bridge keeps (`dingtalk_cards`): after a
restart the card's button is recognised again from it.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from storage.fonts import cjk_font_path

# storage.invites.deep_link writes these; the code is CODE_PATTERN's alphabet.
_LINK = re.compile(r"https://t\.me/(?P<bot>[A-Za-z0-9_]{1,64})\?start=(?P<code>[A-Za-z0-9_-]{1,64})")
LABEL_SIZE = 26  # px
QR_BOX, QR_BORDER = 10, 4


@dataclass(frozen=True)
class Invite:
    link: str  # as the bot wrote it
    code: str

    @property
    def command(self) -> str:
        """What the person sends the robot to join."""
        return f"/start {self.code}"


def find(texts: list[str | None], bot_username: str) -> Invite | None:
    """The bot's own invite link in any of these texts (a message's text, caption, button
    urls), if there is one."""
    own = bot_username.lstrip("@").lower()
    for text in texts:
        for m in _LINK.finditer(text or ""):
            if m.group("bot").lower() == own:
                return Invite(m.group(0), m.group("code"))
    return None


def start_button_id(message_id: int) -> str:
    """The id of the card's 「发送 /start CODE」 button (other buttons are `m<id>b<n>`)."""
    return f"m{message_id}s"


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def replace_link(
    text: str, entities: list[dict[str, Any]], invite: Invite, line: str
) -> tuple[str, list[dict[str, Any]]]:
    """`text` with every occurrence of the invite link replaced by `line`, and the entities
    moved with it (offsets count UTF-16 code units). An entity that was the link itself (a
    url, a text_link) goes; one around it (bold, say) stretches."""
    out_entities = [dict(e) for e in entities]
    while True:
        at = text.find(invite.link)
        if at < 0:
            return text, out_entities
        start, old_end = _utf16(text[:at]), _utf16(text[:at]) + _utf16(invite.link)
        delta = _utf16(line) - _utf16(invite.link)
        kept: list[dict[str, Any]] = []
        for e in out_entities:
            e_start, e_end = int(e["offset"]), int(e["offset"]) + int(e["length"])
            if e_end <= start:
                kept.append(e)
            elif e_start >= old_end:
                kept.append({**e, "offset": e_start + delta})
            elif e_start <= start and e_end >= old_end:
                if e["type"] in ("url", "text_link") and (e_start, e_end) == (start, old_end):
                    continue  # the link itself
                kept.append({**e, "length": int(e["length"]) + delta})
            # an entity cut by the link's edge cannot stay meaningful: dropped
        text = text[:at] + line + text[at + len(invite.link) :]
        out_entities = kept


@lru_cache(maxsize=1)
def _font() -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(str(cjk_font_path()), LABEL_SIZE)


def qr_png(content: str, label: str) -> bytes:
    """A QR code of `content` with `label` under it, a line of the picture per line of the
    label (the picture widens for a long line rather than break a code in two), as PNG."""
    import qrcode
    from PIL import Image, ImageDraw

    q = qrcode.QRCode(border=QR_BORDER, box_size=QR_BOX)
    q.add_data(content)
    q.make(fit=True)
    code = q.make_image().get_image().convert("L")
    font = _font()
    margin = QR_BORDER * QR_BOX
    lines = label.split("\n")
    width = max(code.width, *(int(font.getlength(line)) + 2 * margin for line in lines))
    step = LABEL_SIZE + 8
    out = Image.new("L", (width, code.height + len(lines) * step + margin // 2), 255)
    out.paste(code, ((width - code.width) // 2, 0))
    draw = ImageDraw.Draw(out)
    y = code.height - margin // 2  # the code's quiet zone keeps its other half
    for line in lines:
        draw.text(((width - font.getlength(line)) / 2, y), line, fill=0, font=font)
        y += step
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


__all__ = ["Invite", "find", "qr_png", "replace_link", "start_button_id"]
